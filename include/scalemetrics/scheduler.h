/* SPDX-License-Identifier: MIT */
#ifndef SM_SCHEDULER_H
#define SM_SCHEDULER_H

#include "scalemetrics/error.h"

struct sm_config;
struct sm_store;
struct sm_scheduler;

/* Runs every configured source on its interval, on a small pool of collector threads
 * (never a serving thread), publishing each round's result (batch or failure) to the store.
 * A failed source retries with exponential backoff and jitter: the k-th failure in a row
 * waits min(interval x 2^(k-1), max(interval, 10s)) x a random factor in [0.5, 1.0].
 * Creates every collector state (ops->create) before starting; on a failure there returns it
 * (-EINVAL, -ENOMEM) with nothing started. Only the scheduler logs about rounds. */
int sm_scheduler_start(const struct sm_config *cfg, struct sm_store *store,
                       struct sm_scheduler **ret) SM_MUSTCHECK;
/* Stops the threads (waking sleepers at once), waits for running rounds (bounded by their
 * timeouts), destroys collector states. Accepts NULL. */
void sm_scheduler_stop(struct sm_scheduler *s);

#endif
