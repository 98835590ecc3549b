/* SPDX-License-Identifier: MIT */
/* The scheduler's backoff arithmetic: the wait after failures and its jitter
 * (scheduler-internal.h). */
#include <stdint.h>

#include "scheduler-internal.h"

double sm_scheduler_jitter(uint64_t *rng)
{
	uint64_t x = *rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*rng = x;
	return 0.5 + 0.5 * ((double)(x >> 11) / (double)(UINT64_C(1) << 53));
}

int64_t sm_scheduler_backoff_ms(int64_t interval_ms, unsigned k, double jitter)
{
	int64_t cap = interval_ms > SM_SCHEDULER_BACKOFF_FLOOR_MS ? interval_ms
	                                                          : SM_SCHEDULER_BACKOFF_FLOOR_MS;
	int64_t d = interval_ms;

	for (unsigned i = 1; i < k && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	d = (int64_t)((double)d * jitter);
	return d > 0 ? d : 1;
}
