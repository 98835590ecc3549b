/* SPDX-License-Identifier: MIT */
#ifndef SM_CLOCK_H
#define SM_CLOCK_H

#include <stdint.h>
#include <time.h>

/* The clocks, in one place. Monotonic for durations, deadlines and staleness; wall only for
 * what leaves the process (timestamps in answers, logs, Redis scores). 0 if a clock fails. */
int64_t sm_time_mono_ms(void);
int64_t sm_time_mono_us(void); /* the same monotonic clock, in microseconds */
int64_t sm_time_wall_ms(void);

/* The monotonic time ms from now, for pthread_cond_timedwait on a condition variable whose
 * clock is CLOCK_MONOTONIC (pthread_condattr_setclock). */
struct timespec sm_time_mono_deadline(int64_t ms);

#endif
