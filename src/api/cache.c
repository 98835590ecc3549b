/* SPDX-License-Identifier: MIT */
/* The answer cache (api.h): reusable 200 answers kept per request key and store generation.
 *
 * A direct-mapped table: a key hashes to one slot, a newer answer replaces the slot's old
 * one. Nothing is ever cleared in bulk: an entry of an older generation, or past its
 * freshness time, is a miss and gets replaced by the next answer for its slot. Slots are
 * guarded by a few striped mutexes held only for a compare and a copy. The total size of
 * the kept bodies and keys is bounded by max_bytes. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/api.h"
#include "scalemetrics/hash.h"

#include "api-internal.h"

#define LOCKS 16u
/* Keys longer than this are not cached (they would need a heap buffer per lookup). */
#define KEY_MAX 2048u

struct entry {
	char *key; /* NULL: empty slot */
	size_t key_len;
	uint64_t hash;
	char *body;
	size_t body_len;
	uint64_t generation;
	int64_t valid_until_mono_ms; /* right while now <= this */
	int status;
	const char *content_type;
	const char *route;
};

struct sm_api_cache {
	struct entry *slots;
	size_t mask;
	size_t max_bytes;
	atomic_size_t bytes;
	pthread_mutex_t locks[LOCKS];
};

struct sm_api_cache *sm_api_cache_new(size_t max_entries, size_t max_bytes)
{
	struct sm_api_cache *c;
	size_t n = 1;

	if (max_entries == 0 || max_bytes == 0)
		return NULL;
	while (n < max_entries && n < ((size_t)1 << 24))
		n <<= 1;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->slots = calloc(n, sizeof(*c->slots));
	if (!c->slots) {
		free(c);
		return NULL;
	}
	c->mask = n - 1;
	c->max_bytes = max_bytes;
	atomic_init(&c->bytes, 0);
	for (size_t i = 0; i < LOCKS; i++)
		(void)pthread_mutex_init(&c->locks[i], NULL);
	return c;
}

static void entry_clear(struct sm_api_cache *c, struct entry *e)
{
	if (!e->key)
		return;
	atomic_fetch_sub_explicit(&c->bytes, e->key_len + e->body_len, memory_order_relaxed);
	free(e->key);
	free(e->body);
	*e = (struct entry){0};
}

void sm_api_cache_free(struct sm_api_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i <= c->mask; i++)
		entry_clear(c, &c->slots[i]);
	for (size_t i = 0; i < LOCKS; i++)
		(void)pthread_mutex_destroy(&c->locks[i]);
	free(c->slots);
	free(c);
}

static bool append(char *buf, size_t *len, const char *s)
{
	size_t n = strlen(s);

	if (n > KEY_MAX - *len)
		return false;
	memcpy(buf + *len, s, n);
	*len += n;
	return true;
}

/* path '\n' ['?' query] '\n' ('A' accept | '-'): '\n' is in none of the three. */
static bool make_key(const struct sm_api_request *req, char buf[KEY_MAX], size_t *ret_len)
{
	size_t len = 0;

	*ret_len = 0;
	if (!req->path || !append(buf, &len, req->path) || !append(buf, &len, "\n"))
		return false;
	if (req->query && (!append(buf, &len, "?") || !append(buf, &len, req->query)))
		return false;
	if (!append(buf, &len, "\n") || !append(buf, &len, req->accept ? "A" : "-") ||
	    (req->accept && !append(buf, &len, req->accept)))
		return false;
	*ret_len = len;
	return true;
}

bool sm_api_cache_get(struct sm_api_cache *c, const struct sm_api_request *req, uint64_t generation,
                      struct sm_api_response *ret)
{
	char key[KEY_MAX];
	size_t len;
	uint64_t h;
	struct entry *e;
	pthread_mutex_t *lock;
	bool hit = false;

	if (!c || !make_key(req, key, &len))
		return false;
	h = sm_hash_bytes(key, len);
	e = &c->slots[h & c->mask];
	lock = &c->locks[(h & c->mask) % LOCKS];
	(void)pthread_mutex_lock(lock);
	if (e->key && e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0 &&
	    e->generation == generation && req->now_mono_ms <= e->valid_until_mono_ms) {
		char *body = malloc(e->body_len + 1);

		if (body) {
			memcpy(body, e->body, e->body_len + 1);
			*ret = (struct sm_api_response){
			    .status = e->status,
			    .content_type = e->content_type,
			    .body = body,
			    .body_len = e->body_len,
			    .route = e->route,
			    .reusable = true,
			    .from_cache = true,
			};
			hit = true;
		}
	}
	(void)pthread_mutex_unlock(lock);
	return hit;
}

void sm_api_cache_put(struct sm_api_cache *c, const struct sm_api_request *req, uint64_t generation,
                      int64_t valid_until_mono_ms, const struct sm_api_response *resp)
{
	char key[KEY_MAX];
	size_t len;
	uint64_t h;
	struct entry *e;
	pthread_mutex_t *lock;
	char *kcopy, *bcopy;

	if (!c || !resp->reusable || resp->status != 200 || !resp->body ||
	    resp->body_len > c->max_bytes / 8 || valid_until_mono_ms < req->now_mono_ms ||
	    !make_key(req, key, &len))
		return;
	h = sm_hash_bytes(key, len);
	kcopy = malloc(len);
	bcopy = malloc(resp->body_len + 1);
	if (!kcopy || !bcopy) {
		free(kcopy);
		free(bcopy);
		return;
	}
	memcpy(kcopy, key, len);
	memcpy(bcopy, resp->body, resp->body_len);
	bcopy[resp->body_len] = '\0';

	e = &c->slots[h & c->mask];
	lock = &c->locks[(h & c->mask) % LOCKS];
	(void)pthread_mutex_lock(lock);
	entry_clear(c, e);
	if (atomic_fetch_add_explicit(&c->bytes, len + resp->body_len, memory_order_relaxed) + len +
	        resp->body_len >
	    c->max_bytes) {
		atomic_fetch_sub_explicit(&c->bytes, len + resp->body_len, memory_order_relaxed);
	} else {
		*e = (struct entry){
		    .key = kcopy,
		    .key_len = len,
		    .hash = h,
		    .body = bcopy,
		    .body_len = resp->body_len,
		    .generation = generation,
		    .valid_until_mono_ms = valid_until_mono_ms,
		    .status = resp->status,
		    .content_type = resp->content_type,
		    .route = resp->route,
		};
		kcopy = NULL;
		bcopy = NULL;
	}
	(void)pthread_mutex_unlock(lock);
	free(kcopy);
	free(bcopy);
}
