/* SPDX-License-Identifier: MIT */
/* Batches of series: what a collector produces in one round, and the series it could not
 * read (failures). Every string is copied into a per-batch arena, so a batch costs a handful
 * of allocations, and the store can take the whole result over (sm_batch_steal) without
 * copying it again.
 *
 * Memory: a batch becomes the published snapshot and lives for a whole interval beside the
 * next round's batch, so its bytes count twice. Strings that repeat across series (the
 * metric, label names, the object resource and namespace, label values like kind=lag) are
 * stored once: a small direct-mapped cache of the strings copied last finds them again. A
 * small batch uses one small chunk and array from the heap (what a round frees, the next one
 * reuses). Past that, the arena's chunks and the series array grow straight to 128 KiB and
 * more, which malloc maps on their own (main.c sets that threshold): growing or shrinking them
 * is a mremap, and freeing a snapshot gives its memory back, where heap blocks of that size
 * would leave holes for the next rounds to fragment. */
#include "scalemetrics/series.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/hash.h"

static_assert(sizeof(struct sm_series) <= 56 || sizeof(void *) > 8, "struct sm_series grew");

#define MAPPED_MIN   (128 * 1024) /* bytes: main.c's M_MMAP_THRESHOLD */
#define CHUNK_FIRST  4096
#define CHUNK_MAX    (512 * 1024)
#define SERIES_FIRST 16
#define INTERN_SIZE  64 /* slots of the repeated-string cache; a power of two */

struct chunk {
	struct chunk *next;
	size_t size; /* bytes in data */
	size_t used;
	max_align_t data[];
};

struct sm_series_arena {
	struct chunk *chunks; /* newest first */
	struct sm_series *series;
	struct sm_series_failure *failures; /* usually none: grown one at a time */
	size_t n_failures;
};

/* A string already in the arena. */
struct interned {
	const char *p; /* NULL: empty slot */
	size_t len;
};

struct sm_batch {
	size_t max_series;
	size_t n;
	size_t cap;
	size_t dropped;
	struct sm_series_arena *arena; /* NULL until the first series; holds the series array */
	struct interned intern[INTERN_SIZE]; /* strings of arena; emptied with it */
};

static void *arena_alloc(struct sm_series_arena *a, size_t size, size_t align)
{
	struct chunk *c = a->chunks;
	size_t offset;

	if (c) {
		offset = (c->used + align - 1) & ~(align - 1);
		if (offset <= c->size && size <= c->size - offset) {
			c->used = offset + size;
			return (char *)c->data + offset;
		}
	}
	{
		size_t chunk_size = c ? c->size * 2 : CHUNK_FIRST;
		struct chunk *fresh;

		if (c && chunk_size < MAPPED_MIN)
			chunk_size = MAPPED_MIN;
		if (chunk_size > CHUNK_MAX)
			chunk_size = CHUNK_MAX;
		if (chunk_size < size)
			chunk_size = size;
		if (chunk_size > SIZE_MAX - sizeof(struct chunk))
			return NULL;
		fresh = malloc(sizeof(struct chunk) + chunk_size);
		if (!fresh)
			return NULL;
		fresh->next = a->chunks;
		fresh->size = chunk_size;
		fresh->used = size;
		a->chunks = fresh;
		return fresh->data;
	}
}

/* The cache slot of a string: its length, first byte and last 16 bytes (where the strings of
 * a batch differ: numbered names, the metric's suffix) tell them apart well enough, for less
 * than hashing all of it; a collision only costs a copy. */
static size_t intern_slot(const char *s, size_t n)
{
	size_t tail = n > 16 ? 16 : n;
	uint64_t h = sm_hash_update(SM_HASH_INIT, &n, sizeof(n));

	h = sm_hash_update(h, s, n > 0 ? 1 : 0);
	h = sm_hash_update(h, s + n - tail, tail);
	return (size_t)h & (INTERN_SIZE - 1);
}

/* s, copied into b's arena unless an equal string is already there (in the cache). */
static const char *batch_strdup(struct sm_batch *b, const char *s)
{
	size_t n = strlen(s);
	struct interned *slot = &b->intern[intern_slot(s, n)];
	char *p;

	if (slot->p && slot->len == n && memcmp(slot->p, s, n) == 0)
		return slot->p;
	p = arena_alloc(b->arena, n + 1, 1);
	if (!p)
		return NULL;
	memcpy(p, s, n + 1);
	*slot = (struct interned){.p = p, .len = n};
	return p;
}

void sm_series_arena_free(struct sm_series_arena *a)
{
	struct chunk *c;

	if (!a)
		return;
	c = a->chunks;
	while (c) {
		struct chunk *next = c->next;

		free(c);
		c = next;
	}
	free(a->series);
	free(a->failures);
	free(a);
}

struct sm_batch *sm_batch_new(size_t max_series)
{
	struct sm_batch *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->max_series = max_series;
	return b;
}

void sm_batch_free(struct sm_batch *b)
{
	if (!b)
		return;
	sm_series_arena_free(b->arena);
	free(b);
}

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

void sm_label_value_sanitize(const char *raw, char out[64])
{
	size_t n = 0, start = 0;

	for (; raw && raw[n] != '\0' && n < 63; n++) {
		char c = raw[n];

		out[n] = is_alnum(c) || c == '.' || c == '_' || c == '-' ? c : '_';
	}
	while (n > 0 && !is_alnum(out[n - 1]))
		n--;
	while (start < n && !is_alnum(out[start]))
		start++;
	memmove(out, out + start, n - start);
	out[n - start] = '\0';
}

static bool labels_valid(const struct sm_label *labels, size_t n)
{
	if (n > 0 && !labels)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!labels[i].name || !labels[i].value)
			return false;
		for (size_t j = 0; j < i; j++)
			if (strcmp(labels[i].name, labels[j].name) == 0)
				return false;
	}
	return true;
}

/* Copies, sanitises and sorts (insertion sort: label sets are small, names unique). */
static int copy_labels(struct sm_batch *b, const struct sm_label *in, size_t n,
                       struct sm_label **ret)
{
	struct sm_label *out;

	if (n == 0) {
		*ret = NULL;
		return 0;
	}
	if (n > SIZE_MAX / sizeof(*out))
		return -ENOMEM;
	out = arena_alloc(b->arena, n * sizeof(*out), alignof(struct sm_label));
	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		char value[64];
		struct sm_label l;
		size_t j = i;

		sm_label_value_sanitize(in[i].value, value);
		l.name = batch_strdup(b, in[i].name);
		l.value = batch_strdup(b, value);
		if (!l.name || !l.value)
			return -ENOMEM;
		while (j > 0 && strcmp(out[j - 1].name, l.name) > 0) {
			out[j] = out[j - 1];
			j--;
		}
		out[j] = l;
	}
	*ret = out;
	return 0;
}

static bool series_in_is_valid(const struct sm_series_in *in)
{
	if (!in->metric || in->metric[0] == '\0')
		return false;
	if (in->n_labels > SM_SERIES_MAX_LABELS || in->n_object_labels > SM_SERIES_MAX_LABELS)
		return false;
	if (!labels_valid(in->labels, in->n_labels) ||
	    !labels_valid(in->object_labels, in->n_object_labels))
		return false;
	return !in->object || (in->object->resource && in->object->name);
}

static int ensure_arena(struct sm_batch *b)
{
	if (!b->arena) {
		b->arena = calloc(1, sizeof(*b->arena));
		if (!b->arena)
			return -ENOMEM;
	}
	return 0;
}

/* Copies in's names into b's arena (value and timestamp left to the caller). On -ENOMEM, what
 * was already copied stays in the arena until it is freed. */
static int copy_series(struct sm_batch *b, const struct sm_series_in *in, struct sm_series *ret)
{
	struct sm_series s = {0};
	int r;

	s.metric = batch_strdup(b, in->metric);
	if (!s.metric)
		return -ENOMEM;
	r = copy_labels(b, in->labels, in->n_labels, &s.labels);
	if (r < 0)
		return r;
	s.n_labels = (uint16_t)in->n_labels;
	r = copy_labels(b, in->object_labels, in->n_object_labels, &s.object_labels);
	if (r < 0)
		return r;
	s.n_object_labels = (uint16_t)in->n_object_labels;
	if (in->object) {
		struct sm_object_ref *o =
		    arena_alloc(b->arena, sizeof(*o), alignof(struct sm_object_ref));

		if (!o)
			return -ENOMEM;
		o->resource = batch_strdup(b, in->object->resource);
		o->name = batch_strdup(b, in->object->name);
		o->namespace =
		    in->object->namespace ? batch_strdup(b, in->object->namespace) : NULL;
		if (!o->resource || !o->name || (in->object->namespace && !o->namespace))
			return -ENOMEM;
		s.object = o;
	}
	s.window_s = in->window_s;
	*ret = s;
	return 0;
}

int sm_batch_add(struct sm_batch *b, const struct sm_series_in *in)
{
	struct sm_series s;
	int r;

	if (!series_in_is_valid(in) || !isfinite(in->value))
		return -EINVAL;
	if (b->n >= b->max_series) {
		b->dropped++;
		return -E2BIG;
	}
	if (ensure_arena(b) < 0)
		return -ENOMEM;
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : SERIES_FIRST;
		struct sm_series *series;

		if (b->cap && cap * sizeof(*series) < MAPPED_MIN)
			cap = (MAPPED_MIN + sizeof(*series) - 1) / sizeof(*series);
		if (cap > b->max_series)
			cap = b->max_series;
		if (cap > SIZE_MAX / sizeof(*series))
			return -ENOMEM;
		series = realloc(b->arena->series, cap * sizeof(*series));
		if (!series)
			return -ENOMEM;
		b->arena->series = series;
		b->cap = cap;
	}
	r = copy_series(b, in, &s);
	if (r < 0)
		return r;
	s.value = in->value;
	b->arena->series[b->n++] = s;
	return 0;
}

int sm_batch_add_failure(struct sm_batch *b, const struct sm_series_in *in, bool labels_partial,
                         const char *error)
{
	struct sm_series_failure *f;
	struct sm_series s;
	const char *text;
	int r;

	if (!series_in_is_valid(in) || !error)
		return -EINVAL;
	if ((b->arena ? b->arena->n_failures : 0) >= b->max_series) {
		b->dropped++;
		return -E2BIG;
	}
	if (ensure_arena(b) < 0)
		return -ENOMEM;
	/* Failures are rare; growing one at a time keeps the common round free of them. */
	f = realloc(b->arena->failures, (b->arena->n_failures + 1) * sizeof(*f));
	if (!f)
		return -ENOMEM;
	b->arena->failures = f;
	r = copy_series(b, in, &s);
	if (r < 0)
		return r;
	text = batch_strdup(b, error);
	if (!text)
		return -ENOMEM;
	f[b->arena->n_failures++] = (struct sm_series_failure){
	    .series = s, .error = text, .labels_partial = labels_partial};
	return 0;
}

size_t sm_batch_failure_count(const struct sm_batch *b)
{
	return b && b->arena ? b->arena->n_failures : 0;
}

const struct sm_series_failure *sm_batch_get_failure(const struct sm_batch *b, size_t i)
{
	if (i >= sm_batch_failure_count(b))
		return NULL;
	return &b->arena->failures[i];
}

const struct sm_series_failure *sm_series_arena_failures(const struct sm_series_arena *a,
                                                         size_t *ret_n)
{
	*ret_n = a ? a->n_failures : 0;
	return a && a->n_failures ? a->failures : NULL;
}

void sm_batch_add_dropped(struct sm_batch *b, size_t n)
{
	if (b)
		b->dropped += n;
}

size_t sm_batch_count(const struct sm_batch *b)
{
	return b ? b->n : 0;
}

size_t sm_batch_dropped(const struct sm_batch *b)
{
	return b ? b->dropped : 0;
}

const struct sm_series *sm_batch_get(const struct sm_batch *b, size_t i)
{
	if (!b || i >= b->n)
		return NULL;
	return &b->arena->series[i];
}

struct sm_series *sm_batch_steal(struct sm_batch *b, size_t *ret_n,
                                 struct sm_series_arena **ret_arena)
{
	struct sm_series *series = b->n > 0 ? b->arena->series : NULL;

	/* The array grew by doubling; a snapshot keeps it for a whole interval, so give the
	 * unused tail back (up to half of it). Failing to shrink keeps the bigger one. */
	if (series && b->n < b->cap) {
		struct sm_series *fit = realloc(series, b->n * sizeof(*series));

		if (fit)
			series = b->arena->series = fit;
	}
	*ret_n = b->n;
	*ret_arena = b->arena;
	b->arena = NULL;
	memset(b->intern, 0, sizeof(b->intern));
	b->n = 0;
	b->cap = 0;
	return series;
}
