/* SPDX-License-Identifier: MIT */
#ifndef SM_SCHEDULER_INTERNAL_H
#define SM_SCHEDULER_INTERNAL_H

/* The scheduler's backoff arithmetic (scheduler-backoff.c), pure so that it can be tested: how
 * long a failing source waits, and its jitter. Only scheduler.c and its unit test include
 * it. */

#include <stdint.h>

#define SM_SCHEDULER_BACKOFF_FLOOR_MS 10000 /* backoff grows to max(interval, this) */

/* One xorshift64 step of *rng (which must not be 0): uniform in [0.5, 1.0]. */
double sm_scheduler_jitter(uint64_t *rng);

/* The wait after the k-th failed round in a row (k >= 1):
 * min(interval x 2^(k-1), max(interval, SM_SCHEDULER_BACKOFF_FLOOR_MS)) x jitter, in ms, at
 * least 1. */
int64_t sm_scheduler_backoff_ms(int64_t interval_ms, unsigned k, double jitter);

#endif
