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
/* Switches to a reloaded config: cfg (borrowed, like the running one, until the scheduler
 * stops) and store, a new store for it. from[i] is, for each source i of cfg, the index of
 * the running source it equals (sm_config_match_sources) or SIZE_MAX. Unchanged sources keep
 * their collector state (connections, rates, backoff) and go on publishing into store;
 * new and changed ones get a new state and run at once; the states of removed and changed
 * ones are destroyed once their running round ends (bounded by their timeouts: this call
 * waits for it). store takes over from the running store (sm_store_take_over) at the moment
 * of the switch. The caller keeps the old config alive (kept states borrow from it) and
 * makes store the one the API answers from afterwards. Returns 0, or -ENOMEM/-EINVAL (a new
 * source could not be set up; logged) with nothing changed. Not thread-safe against itself
 * or sm_scheduler_stop: one thread starts, reloads and stops. */
int sm_scheduler_reload(struct sm_scheduler *s, const struct sm_config *cfg, struct sm_store *store,
                        const size_t *from) SM_MUSTCHECK;
/* Stops the threads (waking sleepers at once), waits for running rounds (bounded by their
 * timeouts), destroys collector states. Accepts NULL. */
void sm_scheduler_stop(struct sm_scheduler *s);

#endif
