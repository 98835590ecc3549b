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
 * about rounds: on state changes (first failure, recovery, a new per-series problem). */

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

#include "scalemetrics/config.h"
#include "scalemetrics/log.h"
#include "scalemetrics/series.h"
#include "scalemetrics/source.h"
#include "scalemetrics/store.h"

#define MAX_THREADS      4
#define BACKOFF_FLOOR_MS 10000 /* backoff grows to max(interval, this) */

struct slot {
	size_t idx; /* in the config and the store */
	const struct sm_source_config *src;
	const struct sm_source_ops *ops;
	void *state;
	int64_t due_mono_ms;
	bool running;
	unsigned failures;      /* consecutive failed rounds */
	char logged_error[512]; /* the failure last logged, "" while healthy */
	char logged_note[512];  /* the per-series problem last logged */
	bool logged_drops;
};

struct sm_scheduler {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;
	uint64_t rng; /* xorshift64 state; under lock */
	struct sm_store *store;
	struct slot *slots;
	size_t n_slots;
	pthread_t *threads;
	size_t n_threads;
	bool lock_init, cond_init;
};

/* Under lock. Uniform in [0.5, 1.0]. */
static double jitter(struct sm_scheduler *s)
{
	uint64_t x = s->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	s->rng = x;
	return 0.5 + 0.5 * ((double)(x >> 11) / (double)(UINT64_C(1) << 53));
}

/* The k-th failure in a row waits min(interval x 2^(k-1), max(interval, 10s)) x jitter. */
static int64_t backoff_ms(struct sm_scheduler *s, int64_t interval_ms, unsigned k)
{
	int64_t cap = interval_ms > BACKOFF_FLOOR_MS ? interval_ms : BACKOFF_FLOOR_MS;
	int64_t d = interval_ms;

	for (unsigned i = 1; i < k && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	d = (int64_t)((double)d * jitter(s));
	return d > 0 ? d : 1;
}

static void abs_deadline(int64_t due_mono_ms, struct timespec *ts)
{
	int64_t left = due_mono_ms - sm_time_mono_ms();

	if (left < 0)
		left = 0;
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)(left / 1000);
	ts->tv_nsec += (long)(left % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Under lock: the idle slot due first, or NULL. */
static struct slot *next_slot(struct sm_scheduler *s)
{
	struct slot *best = NULL;

	for (size_t i = 0; i < s->n_slots; i++) {
		struct slot *sl = &s->slots[i];

		if (sl->running)
			continue;
		if (!best || sl->due_mono_ms < best->due_mono_ms)
			best = sl;
	}
	return best;
}

/* Logging of a round's outcome; without the lock (only this worker touches the slot's
 * logging fields while it runs). */
static void log_success(struct slot *sl, const struct sm_batch *batch, const char *note)
{
	const char *name = sl->src->name;
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
		            dropped, sl->src->max_series, sm_batch_count(batch));
	sl->logged_drops = dropped > 0;
}

static void log_failure(struct slot *sl, const char *error, int64_t delay_ms)
{
	const char *name = sl->src->name;

	if (strcmp(error, sl->logged_error) != 0) {
		sm_log_warn(name, "round failed: %s; retrying in %.1fs", error,
		            (double)delay_ms / 1000.0);
		snprintf(sl->logged_error, sizeof(sl->logged_error), "%s", error);
	} else {
		sm_log_debug(name, "round failed again (%u in a row): %s; retrying in %.1fs",
		             sl->failures, error, (double)delay_ms / 1000.0);
	}
}

/* One round of sl, without the lock held. Returns the next due time. */
static int64_t run_round(struct sm_scheduler *s, struct slot *sl)
{
	const struct sm_source_config *src = sl->src;
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
	sm_store_note_round_us(s->store, sl->idx, sm_time_mono_us() - start_us);

	if (r >= 0) {
		char note[sizeof(err.message)];

		snprintf(note, sizeof(note), "%s", err.message);
		log_success(sl, batch, note);
		sl->failures = 0;
		r = sm_store_publish_success(s->store, sl->idx, batch, now, sm_time_wall_ms());
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
	delay = backoff_ms(s, src->interval_ms, sl->failures);
	pthread_mutex_unlock(&s->lock);
	log_failure(sl, error, delay);
	r = sm_store_publish_failure(s->store, sl->idx, error, now);
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
		pthread_mutex_unlock(&s->lock);

		due = run_round(s, sl);

		pthread_mutex_lock(&s->lock);
		sl->due_mono_ms = due;
		sl->running = false;
		/* A sleeper may have been waiting for this slot while it ran. */
		pthread_cond_broadcast(&s->wake);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static void scheduler_free(struct sm_scheduler *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_slots; i++)
		if (s->slots[i].ops && s->slots[i].state)
			s->slots[i].ops->destroy(s->slots[i].state);
	free(s->slots);
	free(s->threads);
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

int sm_scheduler_start(const struct sm_config *cfg, struct sm_store *store,
                       struct sm_scheduler **ret)
{
	struct sm_scheduler *s = NULL;
	pthread_condattr_t attr;
	struct timespec now;
	size_t want;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->store = store;
	r = -pthread_mutex_init(&s->lock, NULL);
	if (r < 0)
		goto fail;
	s->lock_init = true;
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
		const struct sm_source_config *src = &cfg->sources[i];
		struct slot *sl = &s->slots[i];

		sl->idx = i;
		sl->src = src;
		sl->ops = src->ops ? src->ops : sm_source_ops_find(src->type);
		sl->due_mono_ms = sm_time_mono_ms();
		s->n_slots = i + 1;
		if (!sl->ops) {
			sm_log_error(src->name, "unknown source type '%s'", src->type);
			r = -EINVAL;
			goto fail;
		}
		r = sl->ops->create(src, &sl->state);
		if (r < 0) {
			sm_log_error(src->name, "cannot set up the source: %s", strerror(-r));
			goto fail;
		}
	}

	want = s->n_slots < MAX_THREADS ? s->n_slots : MAX_THREADS;
	if (want > 0) {
		s->threads = calloc(want, sizeof(*s->threads));
		if (!s->threads) {
			r = -ENOMEM;
			goto fail;
		}
	}
	for (size_t i = 0; i < want; i++) {
		r = -pthread_create(&s->threads[i], NULL, worker, s);
		if (r < 0)
			goto fail;
		s->n_threads++;
	}
	*ret = s;
	return 0;

fail:
	if (s->n_threads > 0)
		stop_threads(s);
	scheduler_free(s);
	return r;
}

void sm_scheduler_stop(struct sm_scheduler *s)
{
	if (!s)
		return;
	stop_threads(s);
	scheduler_free(s);
}
