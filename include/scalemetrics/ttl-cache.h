/* SPDX-License-Identifier: MIT */
#ifndef SM_TTL_CACHE_H
#define SM_TTL_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scalemetrics/error.h"

/* A small TTL cache of strings, thread-safe and bounded (src/util/ttl-cache.c). */

struct sm_ttl_cache;

/* At most max_entries entries, each valid for ttl_ms after it was put. NULL on ENOMEM. */
struct sm_ttl_cache *sm_ttl_cache_new(size_t max_entries, int64_t ttl_ms);
void sm_ttl_cache_free(struct sm_ttl_cache *c);
/* Copies key and value. When full, expired entries go first, then the oldest. A ttl of 0
 * stores nothing. -ENOMEM. */
int sm_ttl_cache_put(struct sm_ttl_cache *c, const char *key, const char *value,
                     int64_t now_ms) SM_MUSTCHECK;
/* true with a malloc'd copy of the value in *ret_value while the entry is fresh. */
bool sm_ttl_cache_get(struct sm_ttl_cache *c, const char *key, int64_t now_ms, char **ret_value);
size_t sm_ttl_cache_count(struct sm_ttl_cache *c);

#endif
