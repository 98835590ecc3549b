/* SPDX-License-Identifier: MIT */
/* The monotonic and wall clocks (see the header for which to use when). */
#include "scalemetrics/clock.h"

#include <time.h>

static int64_t clock_us(clockid_t id)
{
	struct timespec ts;

	if (clock_gettime(id, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t sm_time_mono_ms(void)
{
	return clock_us(CLOCK_MONOTONIC) / 1000;
}

int64_t sm_time_mono_us(void)
{
	return clock_us(CLOCK_MONOTONIC);
}

int64_t sm_time_wall_ms(void)
{
	return clock_us(CLOCK_REALTIME) / 1000;
}

struct timespec sm_time_mono_deadline(int64_t ms)
{
	struct timespec ts = {0};

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}
