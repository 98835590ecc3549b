/* SPDX-License-Identifier: MIT */
/* A small TTL cache: string keys and values, a fixed maximum size (expired entries evicted
 * first, then the oldest), one mutex. The access checks keep their TokenReview and
 * SubjectAccessReview answers and verified client certificates in it.
 *
 * Design: one TTL for every entry, so insertion order is expiry order and the oldest entry
 * is the first to expire; a doubly linked age list beside the hash buckets makes both
 * eviction and removal O(1). */
#include "scalemetrics/ttl-cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/hash.h"

struct entry {
	char *key;
	char *value;
	int64_t expires_ms;
	struct entry *chain;         /* next in the bucket */
	struct entry *older, *newer; /* insertion order */
};

struct sm_ttl_cache {
	pthread_mutex_t lock;
	struct entry **buckets;
	size_t n_buckets; /* a power of two */
	size_t n;
	size_t max;
	int64_t ttl_ms;
	struct entry *oldest, *newest;
};

static uint64_t hash(const char *s)
{
	return sm_hash_bytes(s, strlen(s));
}

struct sm_ttl_cache *sm_ttl_cache_new(size_t max_entries, int64_t ttl_ms)
{
	struct sm_ttl_cache *c = calloc(1, sizeof(*c));
	size_t nb = 16;

	if (!c)
		return NULL;
	if (max_entries == 0)
		max_entries = 1;
	while (nb < max_entries && nb < ((size_t)1 << 24))
		nb <<= 1;
	c->buckets = calloc(nb, sizeof(*c->buckets));
	if (!c->buckets || pthread_mutex_init(&c->lock, NULL) != 0) {
		free(c->buckets);
		free(c);
		return NULL;
	}
	c->n_buckets = nb;
	c->max = max_entries;
	c->ttl_ms = ttl_ms < 0 ? 0 : ttl_ms;
	return c;
}

static void entry_free(struct entry *e)
{
	free(e->key);
	free(e->value);
	free(e);
}

/* Unlinks e from its bucket and the age list, and frees it. */
static void remove_entry(struct sm_ttl_cache *c, struct entry *e)
{
	struct entry **pp = &c->buckets[hash(e->key) & (c->n_buckets - 1)];

	while (*pp && *pp != e)
		pp = &(*pp)->chain;
	if (*pp)
		*pp = e->chain;
	if (e->older)
		e->older->newer = e->newer;
	else
		c->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		c->newest = e->older;
	c->n--;
	entry_free(e);
}

static struct entry *find(struct sm_ttl_cache *c, const char *key)
{
	struct entry *e = c->buckets[hash(key) & (c->n_buckets - 1)];

	while (e && strcmp(e->key, key) != 0)
		e = e->chain;
	return e;
}

void sm_ttl_cache_free(struct sm_ttl_cache *c)
{
	if (!c)
		return;
	while (c->oldest)
		remove_entry(c, c->oldest);
	pthread_mutex_destroy(&c->lock);
	free(c->buckets);
	free(c);
}

/* Makes room for one entry. Caller holds the lock. */
static void make_room(struct sm_ttl_cache *c, int64_t now_ms)
{
	struct entry *e, *newer;

	if (c->n < c->max)
		return;
	/* All entries share one TTL, so the expired ones are the oldest. */
	for (e = c->oldest; e && e->expires_ms <= now_ms; e = newer) {
		newer = e->newer;
		remove_entry(c, e);
	}
	while (c->n >= c->max && c->oldest)
		remove_entry(c, c->oldest);
}

int sm_ttl_cache_put(struct sm_ttl_cache *c, const char *key, const char *value, int64_t now_ms)
{
	struct entry *e;
	size_t b;

	if (!c || c->ttl_ms == 0)
		return 0;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->key = strdup(key);
	e->value = strdup(value);
	if (!e->key || !e->value) {
		entry_free(e);
		return -ENOMEM;
	}
	e->expires_ms = now_ms + c->ttl_ms;

	(void)pthread_mutex_lock(&c->lock);
	{
		struct entry *old = find(c, key);

		if (old)
			remove_entry(c, old);
	}
	make_room(c, now_ms);
	b = hash(key) & (c->n_buckets - 1);
	e->chain = c->buckets[b];
	c->buckets[b] = e;
	e->older = c->newest;
	if (c->newest)
		c->newest->newer = e;
	else
		c->oldest = e;
	c->newest = e;
	c->n++;
	(void)pthread_mutex_unlock(&c->lock);
	return 0;
}

bool sm_ttl_cache_get(struct sm_ttl_cache *c, const char *key, int64_t now_ms, char **ret_value)
{
	struct entry *e;
	char *v = NULL;

	if (!c)
		return false;
	(void)pthread_mutex_lock(&c->lock);
	e = find(c, key);
	if (e && e->expires_ms <= now_ms) {
		remove_entry(c, e);
		e = NULL;
	}
	if (e)
		v = strdup(e->value);
	(void)pthread_mutex_unlock(&c->lock);
	if (!v)
		return false;
	*ret_value = v;
	return true;
}

size_t sm_ttl_cache_count(struct sm_ttl_cache *c)
{
	size_t n;

	if (!c)
		return 0;
	(void)pthread_mutex_lock(&c->lock);
	n = c->n;
	(void)pthread_mutex_unlock(&c->lock);
	return n;
}
