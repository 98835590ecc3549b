/* SPDX-License-Identifier: MIT */
/* The per-snapshot series index (series-index.h): a chained hash table in one allocation.
 * heads[] holds, per bucket, the first entry of its chain; an entry names a series and the
 * next entry. Series are added from the last to the first, each at the front of its chains,
 * so every chain lists its series in ascending order, and the entries of one series (two of
 * its labels in one bucket) sit next to each other, which is how the cursor drops repeats.
 * Load factor 0.5 to 1: 12 to 16 bytes per label or object, 8 for the entry, 4 to 8 for the
 * buckets (about 144 KiB for 10,000 one-label series). */
#include "scalemetrics/series-index.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/hash.h"
#include "scalemetrics/series.h"

#define NONE UINT32_MAX

struct entry {
	uint32_t series;
	uint32_t next;
};

struct sm_series_index {
	size_t bytes;
	unsigned shift; /* a bucket is the hash's top bits: FNV mixes those best */
	uint32_t *heads;
	struct entry *entries;
};

static uint64_t hash_str(uint64_t h, const char *s)
{
	return sm_hash_update(h, s, strlen(s) + 1); /* the NUL keeps ("ab","c") from ("a","bc") */
}

static uint64_t key_hash(char kind, const char *metric, const char *a, const char *b)
{
	uint64_t h = sm_hash_update(SM_HASH_INIT, &kind, 1);

	h = hash_str(h, metric);
	h = hash_str(h, a);
	return hash_str(h, b);
}

static void add(struct sm_series_index *ix, uint32_t *n_entries, uint32_t series, uint64_t h)
{
	uint32_t *head = &ix->heads[h >> ix->shift];
	uint32_t e = (*n_entries)++;

	ix->entries[e] = (struct entry){.series = series, .next = *head};
	*head = e;
}

struct sm_series_index *sm_series_index_build(const struct sm_series *series, size_t n)
{
	struct sm_series_index *ix;
	size_t n_keys = 0, n_buckets = 16, heads_off, entries_off, bytes;
	unsigned shift = 64 - 4;
	uint32_t n_entries = 0;

	if (!series || n < SM_SERIES_INDEX_MIN || n >= NONE)
		return NULL;
	for (size_t i = 0; i < n; i++)
		n_keys += series[i].n_labels + (series[i].object ? 1 : 0);
	if (n_keys >= NONE / 2)
		return NULL;
	while (n_buckets < n_keys) {
		n_buckets *= 2;
		shift--;
	}

	heads_off = sizeof(*ix);
	entries_off = heads_off + n_buckets * sizeof(uint32_t);
	entries_off = (entries_off + alignof(struct entry) - 1) & ~(alignof(struct entry) - 1);
	bytes = entries_off + n_keys * sizeof(struct entry);
	ix = malloc(bytes);
	if (!ix)
		return NULL;
	ix->bytes = bytes;
	ix->shift = shift;
	ix->heads = (uint32_t *)((char *)ix + heads_off);
	ix->entries = (struct entry *)((char *)ix + entries_off);
	memset(ix->heads, 0xff, n_buckets * sizeof(uint32_t)); /* NONE */

	for (size_t i = n; i-- > 0;) {
		const struct sm_series *s = &series[i];

		/* Backwards within the series too: its entries then read in label order. */
		if (s->object)
			add(ix, &n_entries, (uint32_t)i,
			    key_hash('o', s->metric, s->object->resource, s->object->name));
		for (size_t j = s->n_labels; j-- > 0;)
			add(ix, &n_entries, (uint32_t)i,
			    key_hash('l', s->metric, s->labels[j].name, s->labels[j].value));
	}
	return ix;
}

void sm_series_index_free(struct sm_series_index *ix)
{
	free(ix);
}

size_t sm_series_index_bytes(const struct sm_series_index *ix)
{
	return ix ? ix->bytes : 0;
}

static void start(const struct sm_series_index *ix, uint64_t h, struct sm_series_cursor *ret)
{
	*ret = (struct sm_series_cursor){.ix = ix, .entry = NONE, .last = NONE};
	if (ix)
		ret->entry = ix->heads[h >> ix->shift];
}

void sm_series_index_label(const struct sm_series_index *ix, const char *metric, const char *name,
                           const char *value, struct sm_series_cursor *ret)
{
	start(ix, ix ? key_hash('l', metric, name, value) : 0, ret);
}

void sm_series_index_object(const struct sm_series_index *ix, const char *metric,
                            const char *resource, const char *name, struct sm_series_cursor *ret)
{
	start(ix, ix ? key_hash('o', metric, resource, name) : 0, ret);
}

bool sm_series_cursor_next(struct sm_series_cursor *c, size_t *ret_idx)
{
	while (c->entry != NONE) {
		const struct entry *e = &c->ix->entries[c->entry];

		c->entry = e->next;
		if (e->series == c->last)
			continue;
		c->last = e->series;
		*ret_idx = e->series;
		return true;
	}
	return false;
}
