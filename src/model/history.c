/* SPDX-License-Identifier: MIT */
/* The value history of each series over the last hour, bounded in points and in series, for
 * the status page. */
#include "scalemetrics/history.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/hash.h"
#include "scalemetrics/series.h"

/*
 * Design
 *
 * Threads: collector threads record (each source's rounds one at a time), serving threads
 * read. One mutex guards everything; under it, recording a series is: encode its identity
 * into the shared key buffer, hash it, probe the table, store a point. Nothing is allocated
 * there except an entry for a series seen for the first time (and the key buffer growing to
 * the longest key once).
 *
 * Table: open addressing with linear probing over entry pointers, capacity a power of two at
 * least twice max_series, so probes stay short; deletion shifts the following run back (no
 * tombstones). Expired series (not recorded for SPAN_MS) are swept at most once a minute.
 *
 * Entry: the identity key (length-prefixed fields, so no two series share one), and the
 * points in two parallel arrays, oldest first: times in 100 ms units (ticks) and values as
 * floats. Times are 16-bit offsets from the entry's first point, whose own time (uint32 ticks
 * since the history's first record: 13 years) the entry keeps: points never span more than
 * SPAN_TICKS, so an offset fits, and the entry is about 400 bytes rather than 520 (the
 * history of 2000 series is the biggest steady block of the daemon). The points shift down
 * when the oldest expire; that is at most SM_HISTORY_POINTS * 6 bytes of memmove, about once
 * a step, and a rebase of the offsets.
 */

#define TICK_MS        100
#define SPAN_TICKS     ((uint32_t)(SM_HISTORY_SPAN_MS / TICK_MS))
#define SWEEP_EVERY_MS (60 * 1000)
#define KEY_MAX        65536 /* longer identities get no history */

struct entry {
	uint64_t hash;
	int64_t last_seen_mono_ms;
	uint32_t step; /* ticks between the starts of two points; 0: keep every value */
	uint32_t n;
	uint32_t t0;      /* ticks since base_mono_ms of the first point (when n > 0) */
	uint32_t key_len; /* at most KEY_MAX */
	uint16_t dt[SM_HISTORY_POINTS]; /* ticks since t0; dt[0] == 0 */
	float v[SM_HISTORY_POINTS];
	unsigned char key[]; /* not NUL-terminated */
};

static_assert(SPAN_TICKS < UINT16_MAX, "a point's offset from the first one fits dt");
static_assert(KEY_MAX <= UINT32_MAX, "key_len");

struct sm_history {
	pthread_mutex_t lock;
	size_t max_series;
	size_t n_series;
	size_t mask; /* capacity - 1 */
	struct entry **slots;
	size_t entry_bytes; /* sum of the entries' sizes */
	bool has_base;
	int64_t base_mono_ms;
	int64_t last_sweep_mono_ms;
	bool ever_refused;
	int64_t last_refused_mono_ms;
	unsigned char *keybuf; /* scratch for the key being looked up; guarded by lock */
	size_t keybuf_cap;
};

struct sm_history *sm_history_new(size_t max_series)
{
	struct sm_history *h = NULL;
	size_t cap = 16;

	if (max_series == 0)
		max_series = SM_HISTORY_DEFAULT_MAX_SERIES;
	if (max_series > SIZE_MAX / 4 / sizeof(struct entry *))
		return NULL;
	while (cap < 2 * max_series)
		cap *= 2;
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->slots = calloc(cap, sizeof(*h->slots));
	if (!h->slots || pthread_mutex_init(&h->lock, NULL) != 0) {
		free(h->slots);
		free(h);
		return NULL;
	}
	h->max_series = max_series;
	h->mask = cap - 1;
	return h;
}

void sm_history_free(struct sm_history *h)
{
	if (!h)
		return;
	for (size_t i = 0; i <= h->mask; i++)
		free(h->slots[i]);
	free(h->slots);
	free(h->keybuf);
	(void)pthread_mutex_destroy(&h->lock);
	free(h);
}

/* ---- keys ---- */

struct keyw {
	unsigned char *buf;
	size_t cap;
	size_t len; /* may exceed cap: then the key did not fit */
};

static void put_bytes(struct keyw *w, const void *p, size_t n)
{
	if (w->len < w->cap && n <= w->cap - w->len)
		memcpy(w->buf + w->len, p, n);
	w->len += n;
}

/* A string as its length (or UINT32_MAX for NULL) then its bytes. */
static void put_str(struct keyw *w, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	uint32_t len = s ? (n > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)n) : UINT32_MAX;

	put_bytes(w, &len, sizeof(len));
	if (s)
		put_bytes(w, s, len);
}

/* Encodes the identity of s into buf; returns the key's length (more than cap: it did not
 * fit, call again with a bigger buffer). */
static size_t encode_key(size_t source_idx, const struct sm_series *s, unsigned char *buf,
                         size_t cap)
{
	struct keyw w = {.buf = buf, .cap = cap};
	uint64_t idx = source_idx;
	uint32_t n_labels = (uint32_t)s->n_labels;
	unsigned char has_object = s->object ? 1 : 0;

	put_bytes(&w, &idx, sizeof(idx));
	put_str(&w, s->metric);
	put_bytes(&w, &n_labels, sizeof(n_labels));
	for (size_t i = 0; i < s->n_labels; i++) {
		put_str(&w, s->labels[i].name);
		put_str(&w, s->labels[i].value);
	}
	put_bytes(&w, &has_object, 1);
	if (s->object) {
		put_str(&w, s->object->resource);
		put_str(&w, s->object->namespace);
		put_str(&w, s->object->name);
	}
	return w.len;
}

/* Encodes s's key into h->keybuf, growing it. Returns the length, 0 when the key is too long
 * or the buffer cannot grow. Called with the lock held. */
static size_t build_key(struct sm_history *h, size_t source_idx, const struct sm_series *s)
{
	size_t len = encode_key(source_idx, s, h->keybuf, h->keybuf_cap);
	unsigned char *nb;

	if (len <= h->keybuf_cap)
		return len;
	if (len > KEY_MAX)
		return 0;
	nb = realloc(h->keybuf, len);
	if (!nb)
		return 0;
	h->keybuf = nb;
	h->keybuf_cap = len;
	return encode_key(source_idx, s, h->keybuf, h->keybuf_cap);
}

/* ---- the table ---- */

/* The slot holding the key, or the empty slot where it would go. */
static size_t probe(const struct sm_history *h, uint64_t hash, const unsigned char *key, size_t len)
{
	size_t i = (size_t)hash & h->mask;

	for (;;) {
		const struct entry *e = h->slots[i];

		if (!e || (e->hash == hash && e->key_len == len && memcmp(e->key, key, len) == 0))
			return i;
		i = (i + 1) & h->mask;
	}
}

/* Empties slot i and moves back the entries after it that would otherwise be unreachable. */
static void remove_slot(struct sm_history *h, size_t i)
{
	size_t j = i;

	for (;;) {
		size_t home;
		bool stays;

		j = (j + 1) & h->mask;
		if (!h->slots[j])
			break;
		home = (size_t)h->slots[j]->hash & h->mask;
		/* It stays when its home lies cyclically in (i, j]. */
		stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
		if (stays)
			continue;
		h->slots[i] = h->slots[j];
		i = j;
	}
	h->slots[i] = NULL;
}

static size_t entry_size(size_t key_len)
{
	return sizeof(struct entry) + key_len;
}

static void sweep(struct sm_history *h, int64_t now_mono_ms)
{
	size_t i = 0;

	h->last_sweep_mono_ms = now_mono_ms;
	while (i <= h->mask) {
		struct entry *e = h->slots[i];

		if (e && now_mono_ms - e->last_seen_mono_ms > SM_HISTORY_SPAN_MS) {
			h->entry_bytes -= entry_size(e->key_len);
			h->n_series--;
			free(e);
			remove_slot(h, i);
			continue; /* slot i may hold a moved entry now */
		}
		i++;
	}
}

/* ---- points ---- */

static uint32_t to_ticks(const struct sm_history *h, int64_t mono_ms)
{
	int64_t d = mono_ms - h->base_mono_ms;

	if (d <= 0)
		return 0;
	d /= TICK_MS;
	return d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

static uint32_t point_time(const struct entry *e, uint32_t i)
{
	return e->t0 + e->dt[i];
}

/* Drops the first k points and makes the new first one the offsets' origin. */
static void drop_first(struct entry *e, uint32_t k)
{
	uint16_t d;

	memmove(e->dt, e->dt + k, (e->n - k) * sizeof(e->dt[0]));
	memmove(e->v, e->v + k, (e->n - k) * sizeof(e->v[0]));
	e->n -= k;
	if (e->n == 0)
		return;
	d = e->dt[0];
	e->t0 += d;
	for (uint32_t i = 0; i < e->n; i++)
		e->dt[i] = (uint16_t)(e->dt[i] - d);
}

static void drop_expired(struct entry *e, uint32_t now)
{
	uint32_t k = 0;

	if (now < SPAN_TICKS)
		return;
	while (k < e->n && point_time(e, k) < now - SPAN_TICKS)
		k++;
	if (k > 0)
		drop_first(e, k);
}

/* Full: keeps the first point, then each point at least the new step after the last one
 * kept, and the last point. The new step makes that at most about half the points. */
static void thin(struct entry *e)
{
	uint32_t span = (uint32_t)e->dt[e->n - 1] - e->dt[0];
	uint32_t step = span / (SM_HISTORY_POINTS / 2);
	uint32_t k = 1;

	if (step < 2 * e->step)
		step = 2 * e->step;
	if (step == 0)
		step = 1;
	for (uint32_t i = 1; i < e->n; i++) {
		if ((uint32_t)e->dt[i] - e->dt[k - 1] >= step || i == e->n - 1) {
			e->dt[k] = e->dt[i];
			e->v[k] = e->v[i];
			k++;
		}
	}
	e->step = step;
	if (k == e->n) {
		/* Nothing was close enough to merge: lose the oldest point instead. */
		drop_first(e, 1);
		return;
	}
	e->n = k;
}

static void add_point(struct entry *e, uint32_t now, double value)
{
	drop_expired(e, now);
	/* Cannot happen (points span at most SPAN_TICKS), but an offset must fit. */
	if (e->n > 0 && now > e->t0 && now - e->t0 > UINT16_MAX)
		e->n = 0;
	/* The last point stays open until step has passed since the one before it; a clock
	 * that did not move (or went back) overwrites it too, so times only increase. */
	if ((e->n >= 1 && now <= point_time(e, e->n - 1)) ||
	    (e->n >= 2 && now - point_time(e, e->n - 2) < e->step)) {
		if (now < point_time(e, e->n - 1))
			now = point_time(e, e->n - 1);
		e->dt[e->n - 1] = (uint16_t)(now - e->t0);
		e->v[e->n - 1] = (float)value;
		return;
	}
	if (e->n == SM_HISTORY_POINTS)
		thin(e);
	if (e->n == 0)
		e->t0 = now;
	e->dt[e->n] = (uint16_t)(now - e->t0);
	e->v[e->n] = (float)value;
	e->n++;
}

/* ---- public ---- */

int sm_history_record(struct sm_history *h, size_t source_idx, const struct sm_series *series,
                      size_t n, int64_t now_mono_ms)
{
	int recorded = 0;
	bool oom = false;
	uint32_t now;

	if (!h)
		return 0;
	(void)pthread_mutex_lock(&h->lock);
	if (!h->has_base) {
		h->has_base = true;
		h->base_mono_ms = now_mono_ms;
		h->last_sweep_mono_ms = now_mono_ms;
	}
	if (now_mono_ms - h->last_sweep_mono_ms >= SWEEP_EVERY_MS)
		sweep(h, now_mono_ms);
	now = to_ticks(h, now_mono_ms);

	for (size_t k = 0; k < n; k++) {
		const struct sm_series *s = &series[k];
		size_t len = build_key(h, source_idx, s);
		uint64_t hash;
		struct entry *e;
		size_t i;

		if (len == 0) {
			oom = true;
			continue;
		}
		hash = sm_hash_bytes(h->keybuf, len);
		i = probe(h, hash, h->keybuf, len);
		e = h->slots[i];
		if (!e) {
			if (h->n_series >= h->max_series) {
				h->ever_refused = true;
				h->last_refused_mono_ms = now_mono_ms;
				continue;
			}
			e = calloc(1, entry_size(len));
			if (!e) {
				oom = true;
				continue;
			}
			e->hash = hash;
			e->key_len = (uint32_t)len;
			memcpy(e->key, h->keybuf, len);
			h->slots[i] = e;
			h->n_series++;
			h->entry_bytes += entry_size(len);
		}
		e->last_seen_mono_ms = now_mono_ms;
		add_point(e, now, s->value);
		if (recorded < INT32_MAX)
			recorded++;
	}
	(void)pthread_mutex_unlock(&h->lock);
	return oom ? -ENOMEM : recorded;
}

size_t sm_history_get(struct sm_history *h, size_t source_idx, const struct sm_series *s,
                      int64_t now_mono_ms, struct sm_history_point *ret, size_t cap)
{
	const struct entry *e;
	size_t len, copied = 0;
	uint32_t now;

	if (!h || !s || !ret || cap == 0)
		return 0;
	(void)pthread_mutex_lock(&h->lock);
	len = h->has_base ? build_key(h, source_idx, s) : 0;
	if (len == 0)
		goto out;
	e = h->slots[probe(h, sm_hash_bytes(h->keybuf, len), h->keybuf, len)];
	if (!e)
		goto out;
	now = to_ticks(h, now_mono_ms);
	for (uint32_t i = 0; i < e->n && copied < cap; i++) {
		if (now >= SPAN_TICKS && point_time(e, i) < now - SPAN_TICKS)
			continue;
		ret[copied++] = (struct sm_history_point){
		    .mono_ms = h->base_mono_ms + (int64_t)point_time(e, i) * TICK_MS,
		    .value = e->v[i],
		};
	}
out:
	(void)pthread_mutex_unlock(&h->lock);
	return copied;
}

void sm_history_stats(struct sm_history *h, int64_t now_mono_ms, struct sm_history_stats *ret)
{
	*ret = (struct sm_history_stats){0};
	if (!h)
		return;
	(void)pthread_mutex_lock(&h->lock);
	*ret = (struct sm_history_stats){
	    .n_series = h->n_series,
	    .max_series = h->max_series,
	    .capped =
	        h->ever_refused && now_mono_ms - h->last_refused_mono_ms <= SM_HISTORY_SPAN_MS,
	    .bytes =
	        sizeof(*h) + (h->mask + 1) * sizeof(*h->slots) + h->entry_bytes + h->keybuf_cap,
	};
	(void)pthread_mutex_unlock(&h->lock);
}
