/* SPDX-License-Identifier: MIT */
/* Derived queue metrics (docs/configuration.md "Derived queue metrics"): growth rate and drain time
 * of a queue series, from a short history of its own samples that the Redis collector keeps between
 * rounds.
 *
 * Definitions, over the window W (the newest stored sample at least W old is the baseline;
 * while the history is shorter than W, the oldest sample):
 *   growth  = (backlog_now - backlog_base) / dt                                  [items/s]
 *   dequeue = (dequeue_counter_now - dequeue_counter_base) / dt   with dequeue_counter set
 *             and not reset; else the sum of the decreases seen between consecutive rounds
 *             over the window / dt. Lengths alone cannot see items that were pushed and
 *             popped between two rounds, so without a counter this is a lower bound of the
 *             true dequeue rate (exact when producers are idle).
 *   drain   = 0 when the backlog is empty; backlog / dequeue when dequeue > 0, at most
 *             drain_cap; drain_cap when nothing was dequeued (the queue is not draining).
 * Nothing is served before a second sample exists.
 *
 * Memory: per series a ring of RING samples spaced at least W / (RING - 4) apart, so the ring
 * always spans W whatever the interval; series not seen for a while are forgotten. */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/hash.h"

#include "redis-internal.h"

#define RING         64
#define INITIAL_BITS 6

struct sample {
	int64_t t_ms;
	double value;
	double dec_total; /* sum of decreases since the series was first seen */
	double counter;
	bool has_counter;
};

struct hist {
	struct hist *next;
	uint64_t hash;
	size_t rule;
	char *label;
	int64_t last_seen_ms;
	double prev_value;
	double dec_total;
	struct sample ring[RING];
	size_t head; /* next slot to write */
	size_t n;
};

struct redis_history {
	struct hist **buckets;
	size_t n_buckets; /* a power of two */
	size_t n;
};

struct redis_history *sm_redis_history_new(void)
{
	struct redis_history *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->n_buckets = (size_t)1 << INITIAL_BITS;
	h->buckets = calloc(h->n_buckets, sizeof(*h->buckets));
	if (!h->buckets) {
		free(h);
		return NULL;
	}
	return h;
}

static void hist_free(struct hist *x)
{
	free(x->label);
	free(x);
}

void sm_redis_history_free(struct redis_history *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n_buckets; i++) {
		struct hist *x = h->buckets[i];

		while (x) {
			struct hist *next = x->next;

			hist_free(x);
			x = next;
		}
	}
	free(h->buckets);
	free(h);
}

static uint64_t hash_of(size_t rule, const char *label)
{
	return sm_hash_update(sm_hash_bytes(&rule, sizeof(rule)), label, strlen(label));
}

static void grow(struct redis_history *h)
{
	size_t n = h->n_buckets * 2;
	struct hist **b = calloc(n, sizeof(*b));

	if (!b)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < h->n_buckets; i++) {
		struct hist *x = h->buckets[i];

		while (x) {
			struct hist *next = x->next;
			size_t k = (size_t)x->hash & (n - 1);

			x->next = b[k];
			b[k] = x;
			x = next;
		}
	}
	free(h->buckets);
	h->buckets = b;
	h->n_buckets = n;
}

static struct hist *lookup(struct redis_history *h, size_t rule, const char *label)
{
	uint64_t hash = hash_of(rule, label);
	struct hist **slot = &h->buckets[(size_t)hash & (h->n_buckets - 1)];
	struct hist *x;

	for (x = *slot; x; x = x->next)
		if (x->hash == hash && x->rule == rule && strcmp(x->label, label) == 0)
			return x;
	x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	x->label = strdup(label);
	if (!x->label) {
		free(x);
		return NULL;
	}
	x->hash = hash;
	x->rule = rule;
	x->next = *slot;
	*slot = x;
	if (++h->n > h->n_buckets)
		grow(h);
	return x;
}

static const struct sample *ring_at(const struct hist *x, size_t age)
{
	/* age 0: the newest stored sample */
	return &x->ring[(x->head + RING - 1 - age) % RING];
}

int sm_redis_history_update(struct redis_history *h, const struct redis_rule *r, size_t rule,
                            const char *label, int64_t now_ms, double value, bool has_counter,
                            double counter, double *ret_growth, double *ret_drain)
{
	struct hist *x = lookup(h, rule, label);
	int64_t spacing = r->window_ms / (RING - 4);
	const struct sample *base = NULL;
	struct sample cur;
	double dt, growth, dequeue, drain;

	if (!x)
		return -ENOMEM;
	if (x->n > 0 && value < x->prev_value)
		x->dec_total += x->prev_value - value;
	x->prev_value = value;
	x->last_seen_ms = now_ms;
	cur = (struct sample){.t_ms = now_ms,
	                      .value = value,
	                      .dec_total = x->dec_total,
	                      .counter = counter,
	                      .has_counter = has_counter};

	/* The baseline: the newest stored sample at least a window old, else the oldest. */
	for (size_t age = 0; age < x->n; age++) {
		const struct sample *sm = ring_at(x, age);

		base = sm;
		if (now_ms - sm->t_ms >= r->window_ms)
			break;
	}
	if (x->n == 0 || now_ms - ring_at(x, 0)->t_ms >= spacing) {
		x->ring[x->head] = cur;
		x->head = (x->head + 1) % RING;
		if (x->n < RING)
			x->n++;
	}
	if (!base || now_ms <= base->t_ms)
		return 1;

	dt = (double)(now_ms - base->t_ms) / 1000.0;
	growth = (value - base->value) / dt;
	if (has_counter && base->has_counter && counter >= base->counter)
		dequeue = (counter - base->counter) / dt;
	else
		dequeue = (cur.dec_total - base->dec_total) / dt;
	if (value <= 0)
		drain = 0;
	else if (dequeue > 0)
		drain = value / dequeue;
	else
		drain = r->drain_cap;
	if (drain > r->drain_cap)
		drain = r->drain_cap;
	*ret_growth = growth;
	*ret_drain = drain;
	return 0;
}

void sm_redis_history_sweep(struct redis_history *h, int64_t now_ms, int64_t keep_ms)
{
	for (size_t i = 0; i < h->n_buckets; i++) {
		struct hist **slot = &h->buckets[i];

		while (*slot) {
			struct hist *x = *slot;

			if (now_ms - x->last_seen_ms > keep_ms) {
				*slot = x->next;
				hist_free(x);
				h->n--;
			} else {
				slot = &x->next;
			}
		}
	}
}
