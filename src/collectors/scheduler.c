/* SPDX-License-Identifier: MIT */
/* Runs each configured source's rounds on its interval on a small pool of collector threads,
 * publishes each result to the store, and backs off failing sources.
 *
 * Design: one slot per source, all guarded by one mutex. A worker picks the slot that is not
 * running and is due first (a linear scan: sources are few), marks it running, and does the
 * round's I/O without the lock, so a source is never collected by two threads at once and
 * a slow source holds up only its own worker. Workers sleep on one condition variable (on
 * CLOCK_MONOTONIC) until the next due time; stop sets a flag and broadcasts, so sleepers
 * leave at once and a running round ends within its own timeouts. Only this module logs
 * about rounds: on state changes (first failure, recovery, a new per-series problem).
 *
 * Reloads: slots are allocated one by one, so a slot (and a worker's pointer to it) lives
 * across a reload that keeps its source. A round publishes under the read side of `gate`,
 * reading the store and its slot index there; sm_scheduler_reload takes the write side to
 * make the new store take over (sm_store_take_over), switch the slot list and retire the
 * slots of removed and changed sources in one step. A retired slot's round still running
 * then publishes nothing; the reload waits for it (bounded by its timeouts) before destroying
 * its state. So every publish lands either in the old store before the switch or in the new
 * one after it, never lost between the two and never in the wrong slot. */

#include "scalemetrics/scheduler.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "scalemetrics/clock.h"
#include "scalemetrics/config.h"
#include "scalemetrics/log.h"
#include "scalemetrics/series.h"
#include "scalemetrics/source.h"
#include "scalemetrics/store.h"

#include "scheduler-internal.h"

#define MAX_THREADS 4

struct slot {
	size_t idx;                         /* in the config and the store; under gate + lock */
	const struct sm_source_config *src; /* under lock; equal to the one state was made from */
	const struct sm_source_ops *ops;
	void *state;
	int64_t due_mono_ms;
	bool running;
	bool retired;      /* its source is gone or changed: publishes nothing; under gate + lock */
	unsigned failures; /* consecutive failed rounds */
	char logged_error[512]; /* the failure last logged, "" while healthy */
	char logged_note[512];  /* the per-series problem last logged */
	bool logged_drops;
};

struct sm_scheduler {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	/* Read side around every publish, write side around a reload's switch: never held
	 * across a round's I/O. Taken before lock when both are needed. */
	pthread_rwlock_t gate;
	bool stop;
	uint64_t rng;           /* xorshift64 state; under lock */
	struct sm_store *store; /* borrowed; under gate (publishes) and lock */
	struct slot **slots;    /* under lock */
	size_t n_slots;
	pthread_t threads[MAX_THREADS];
	size_t n_threads;
	bool lock_init, cond_init, gate_init;
};

static void abs_deadline(int64_t due_mono_ms, struct timespec *ts)
{
	int64_t left = due_mono_ms - sm_time_mono_ms();

	*ts = sm_time_mono_deadline(left > 0 ? left : 0);
}

/* Under lock: the idle slot due first, or NULL. */
static struct slot *next_slot(struct sm_scheduler *s)
{
	struct slot *best = NULL;

	for (size_t i = 0; i < s->n_slots; i++) {
		struct slot *sl = s->slots[i];

		if (sl->running)
			continue;
		if (!best || sl->due_mono_ms < best->due_mono_ms)
			best = sl;
	}
	return best;
}

/* Logging of a round's outcome; without the lock (only this worker touches the slot's
 * logging fields while it runs). */
static void log_success(struct slot *sl, const struct sm_source_config *src,
                        const struct sm_batch *batch, const char *note)
{
	const char *name = src->name;
	size_t dropped = sm_batch_dropped(batch);

	if (sl->logged_error[0])
		sm_log_info(name, "source recovered after %u failed rounds: %zu series",
		            sl->failures, sm_batch_count(batch));
	sl->logged_error[0] = '\0';

	if (note[0] && strcmp(note, sl->logged_note) != 0) {
		sm_log_warn(name, "%s", note);
		snprintf(sl->logged_note, sizeof(sl->logged_note), "%s", note);
	} else if (!note[0]) {
		sl->logged_note[0] = '\0';
	}

	if (dropped > 0 && !sl->logged_drops)
		sm_log_warn(name,
		            "%zu series dropped: max_series (%u) reached, serving the first %zu",
		            dropped, src->max_series, sm_batch_count(batch));
	sl->logged_drops = dropped > 0;
}

static void log_failure(struct slot *sl, const struct sm_source_config *src, const char *error,
                        int64_t delay_ms)
{
	const char *name = src->name;

	if (strcmp(error, sl->logged_error) != 0) {
		sm_log_warn(name, "round failed: %s; retrying in %.1fs", error,
		            (double)delay_ms / 1000.0);
		snprintf(sl->logged_error, sizeof(sl->logged_error), "%s", error);
	} else {
		sm_log_debug(name, "round failed again (%u in a row): %s; retrying in %.1fs",
		             sl->failures, error, (double)delay_ms / 1000.0);
	}
}

/* Publishes a round's result (batch NULL: a failure with error) to the slot's source in the
 * current store, or drops it when a reload retired the slot meanwhile. Takes batch. */
static int publish(struct sm_scheduler *s, struct slot *sl, struct sm_batch *batch,
                   const char *error, int64_t round_us, int64_t now)
{
	int r = 0;

	(void)pthread_rwlock_rdlock(&s->gate);
	if (sl->retired) {
		sm_batch_free(batch);
	} else {
		sm_store_note_round_us(s->store, sl->idx, round_us);
		if (batch)
			r = sm_store_publish_success(s->store, sl->idx, batch, now,
			                             sm_time_wall_ms());
		else
			r = sm_store_publish_failure(s->store, sl->idx, error, now);
	}
	(void)pthread_rwlock_unlock(&s->gate);
	return r;
}

/* One round of sl, without the lock held; src is sl's source as the round began. Returns
 * the next due time. */
static int64_t run_round(struct sm_scheduler *s, struct slot *sl,
                         const struct sm_source_config *src)
{
	struct sm_error err = {0};
	struct sm_batch *batch = NULL;
	int64_t start = sm_time_mono_ms();
	int64_t start_us = sm_time_mono_us();
	int64_t now, delay;
	char error[sizeof(err.message)];
	int r;

	batch = sm_batch_new(src->max_series);
	if (!batch) {
		r = -ENOMEM;
		sm_error_set(&err, "out of memory");
	} else {
		r = sl->ops->collect(sl->state, batch, &err);
	}
	now = sm_time_mono_ms();

	if (r >= 0) {
		char note[sizeof(err.message)];

		snprintf(note, sizeof(note), "%s", err.message);
		log_success(sl, src, batch, note);
		sl->failures = 0;
		r = publish(s, sl, batch, NULL, sm_time_mono_us() - start_us, now);
		if (r < 0)
			sm_log_error(src->name, "cannot publish the round: %s", strerror(-r));
		return start + src->interval_ms;
	}

	sm_batch_free(batch);
	if (err.message[0])
		snprintf(error, sizeof(error), "%s", err.message);
	else
		snprintf(error, sizeof(error), "%s", strerror(-r));
	sl->failures++;
	pthread_mutex_lock(&s->lock);
	delay =
	    sm_scheduler_backoff_ms(src->interval_ms, sl->failures, sm_scheduler_jitter(&s->rng));
	pthread_mutex_unlock(&s->lock);
	log_failure(sl, src, error, delay);
	r = publish(s, sl, NULL, error, sm_time_mono_us() - start_us, now);
	if (r < 0)
		sm_log_error(src->name, "cannot publish the failure: %s", strerror(-r));
	return now + delay;
}

static void *worker(void *arg)
{
	struct sm_scheduler *s = arg;
	sigset_t pipe_set;

	/* hiredis writes with write(2): a peer that went away must be an EPIPE error for this
	 * round, not a SIGPIPE for the process. Blocked here, it stays pending on this thread. */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);

	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		struct slot *sl = next_slot(s);
		const struct sm_source_config *src;
		struct timespec ts;
		int64_t due;

		if (!sl) {
			pthread_cond_wait(&s->wake, &s->lock);
			continue;
		}
		if (sl->due_mono_ms > sm_time_mono_ms()) {
			abs_deadline(sl->due_mono_ms, &ts);
			(void)pthread_cond_timedwait(&s->wake, &s->lock, &ts);
			continue; /* rescan: another worker may have taken it */
		}
		sl->running = true;
		src = sl->src;
		pthread_mutex_unlock(&s->lock);

		due = run_round(s, sl, src);

		pthread_mutex_lock(&s->lock);
		sl->due_mono_ms = due;
		sl->running = false;
		/* A sleeper may have been waiting for this slot while it ran. */
		pthread_cond_broadcast(&s->wake);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static void slot_free(struct slot *sl)
{
	if (!sl)
		return;
	if (sl->ops && sl->state)
		sl->ops->destroy(sl->state);
	free(sl);
}

/* A slot for source idx of a config, its collector state created (no I/O yet). */
static int slot_new(const struct sm_source_config *src, size_t idx, struct slot **ret)
{
	struct slot *sl = calloc(1, sizeof(*sl));
	int r;

	if (!sl)
		return -ENOMEM;
	sl->idx = idx;
	sl->src = src;
	sl->ops = src->ops ? src->ops : sm_source_ops_find(src->type);
	sl->due_mono_ms = sm_time_mono_ms();
	if (!sl->ops) {
		sm_log_error(src->name, "unknown source type '%s'", src->type);
		free(sl);
		return -EINVAL;
	}
	r = sl->ops->create(src, &sl->state);
	if (r < 0) {
		sm_log_error(src->name, "cannot set up the source: %s", strerror(-r));
		free(sl);
		return r;
	}
	*ret = sl;
	return 0;
}

static void scheduler_free(struct sm_scheduler *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_slots; i++)
		slot_free(s->slots[i]);
	free(s->slots);
	if (s->gate_init)
		pthread_rwlock_destroy(&s->gate);
	if (s->cond_init)
		pthread_cond_destroy(&s->wake);
	if (s->lock_init)
		pthread_mutex_destroy(&s->lock);
	free(s);
}

static void stop_threads(struct sm_scheduler *s)
{
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_broadcast(&s->wake);
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < s->n_threads; i++)
		pthread_join(s->threads[i], NULL);
	s->n_threads = 0;
}

/* Up to min(n_slots, MAX_THREADS) workers. Called by the thread that starts, reloads and
 * stops the scheduler, the only one that changes n_threads. */
static int add_threads(struct sm_scheduler *s, size_t n_slots)
{
	size_t want = n_slots < MAX_THREADS ? n_slots : MAX_THREADS;
	int r;

	while (s->n_threads < want) {
		r = -pthread_create(&s->threads[s->n_threads], NULL, worker, s);
		if (r < 0)
			return r;
		s->n_threads++;
	}
	return 0;
}

int sm_scheduler_start(const struct sm_config *cfg, struct sm_store *store,
                       struct sm_scheduler **ret)
{
	struct sm_scheduler *s = NULL;
	pthread_condattr_t attr;
	struct timespec now;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->store = store;
	r = -pthread_mutex_init(&s->lock, NULL);
	if (r < 0)
		goto fail;
	s->lock_init = true;
	r = -pthread_rwlock_init(&s->gate, NULL);
	if (r < 0)
		goto fail;
	s->gate_init = true;
	r = -pthread_condattr_init(&attr);
	if (r < 0)
		goto fail;
	r = -pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (r == 0)
		r = -pthread_cond_init(&s->wake, &attr);
	pthread_condattr_destroy(&attr);
	if (r < 0)
		goto fail;
	s->cond_init = true;

	clock_gettime(CLOCK_REALTIME, &now);
	s->rng = (uint64_t)now.tv_sec * 1000000007ULL ^ (uint64_t)now.tv_nsec ^
	         ((uint64_t)getpid() << 32) ^ (uint64_t)sm_time_mono_ms();
	if (s->rng == 0)
		s->rng = 0x9e3779b97f4a7c15ULL;

	if (cfg->n_sources > 0) {
		s->slots = calloc(cfg->n_sources, sizeof(*s->slots));
		if (!s->slots) {
			r = -ENOMEM;
			goto fail;
		}
	}
	for (size_t i = 0; i < cfg->n_sources; i++) {
		r = slot_new(&cfg->sources[i], i, &s->slots[i]);
		if (r < 0)
			goto fail;
		s->n_slots = i + 1;
	}
	r = add_threads(s, s->n_slots);
	if (r < 0)
		goto fail;
	*ret = s;
	return 0;

fail:
	if (s->n_threads > 0)
		stop_threads(s);
	scheduler_free(s);
	return r;
}

int sm_scheduler_reload(struct sm_scheduler *s, const struct sm_config *cfg, struct sm_store *store,
                        const size_t *from)
{
	struct slot **slots = NULL, **retired = NULL;
	size_t n = cfg->n_sources, n_retired = 0, n_old;
	bool *kept = NULL;
	int r = 0;

	slots = calloc(n ? n : 1, sizeof(*slots));
	/* Only this thread changes the slot list, so it may read it without the lock. */
	n_old = s->n_slots;
	retired = calloc(n_old ? n_old : 1, sizeof(*retired));
	kept = calloc(n_old ? n_old : 1, sizeof(*kept));
	if (!slots || !retired || !kept) {
		r = -ENOMEM;
		goto out;
	}
	/* New and changed sources: states made before anything changes, so a failure here
	 * leaves the running sources as they are. */
	for (size_t i = 0; i < n; i++) {
		if (from[i] != SIZE_MAX) {
			kept[from[i]] = true;
			continue;
		}
		r = slot_new(&cfg->sources[i], i, &slots[i]);
		if (r < 0)
			goto out;
	}

	(void)pthread_rwlock_wrlock(&s->gate);
	r = sm_store_take_over(store, s->store, from);
	if (r < 0) {
		(void)pthread_rwlock_unlock(&s->gate);
		goto out;
	}
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < n; i++) {
		if (from[i] == SIZE_MAX)
			continue;
		slots[i] = s->slots[from[i]];
		slots[i]->idx = i;
		slots[i]->src = &cfg->sources[i];
	}
	for (size_t j = 0; j < n_old; j++) {
		if (kept[j])
			continue;
		s->slots[j]->retired = true;
		retired[n_retired++] = s->slots[j];
	}
	free(s->slots);
	s->slots = slots;
	s->n_slots = n;
	slots = NULL;
	s->store = store;
	/* New slots are due now; sleepers rescan. */
	pthread_cond_broadcast(&s->wake);
	pthread_mutex_unlock(&s->lock);
	(void)pthread_rwlock_unlock(&s->gate);

	if (add_threads(s, n) < 0)
		sm_log_warn("scheduler",
		            "cannot start more collector threads: %zu sources share %zu", n,
		            s->n_threads);

	/* A retired slot's round may still be running: wait for it (its timeouts bound it),
	 * then close its connections. */
	pthread_mutex_lock(&s->lock);
	for (size_t j = 0; j < n_retired; j++)
		while (retired[j]->running)
			pthread_cond_wait(&s->wake, &s->lock);
	pthread_mutex_unlock(&s->lock);
	for (size_t j = 0; j < n_retired; j++)
		slot_free(retired[j]);
	r = 0;
out:
	/* On failure: the slots made for new sources (kept ones are not in the array yet). */
	for (size_t i = 0; slots && i < n; i++)
		if (from[i] == SIZE_MAX)
			slot_free(slots[i]);
	free(slots);
	free(retired);
	free(kept);
	return r;
}

void sm_scheduler_stop(struct sm_scheduler *s)
{
	if (!s)
		return;
	stop_threads(s);
	scheduler_free(s);
}
