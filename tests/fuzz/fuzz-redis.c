/* SPDX-License-Identifier: MIT */
/* Redis replies: hiredis's RESP reader on the raw bytes (the reply trees the collector walks
 * come from it) and the collector's walk of SMEMBERS replies into queue names; its own parsers
 * of reply strings: Kombu binding members and Sidekiq job JSON; and Redis' glob with the
 * labels it captures (input "pattern\nkey"). The rest of the reply walking needs a round's
 * state: tests/unit/test-redis-reply.c and tests/integration cover it. */
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "redis-internal.h"

/* hiredis 0.14 allocates an aggregate's element array from the declared count before any
 * element arrives, with no limit ("*700000000\r\n" asks for gigabytes): a known property of
 * the library version (a hostile Redis server can make the collector allocate), reported, not
 * something this target can find bugs in. Such inputs skip the reader. */
static bool huge_aggregate(const uint8_t *d, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t v = 0;
		size_t k;

		if (!strchr("*%~>|", d[i]) || d[i] == '\0' || (i > 0 && d[i - 1] != '\n'))
			continue;
		for (k = i + 1; k < n && d[k] >= '0' && d[k] <= '9' && v <= 100000; k++)
			v = v * 10 + (uint64_t)(d[k] - '0');
		if (v > 100000)
			return true;
	}
	return false;
}

static size_t walk(const redisReply *r, unsigned depth)
{
	size_t n = 1;

	if (!r || depth > 64)
		return 0;
	if (r->str)
		n += r->len;
	for (size_t i = 0; i < r->elements; i++)
		n += walk(r->element[i], depth + 1);
	return n;
}

/* The label of a key found by a glob: what the '*'s captured (each a piece of the key, joined
 * by ':'), or the whole key; never longer than that allows. */
static void fuzz_glob(const char *data, size_t size)
{
	const char *nl = memchr(data, '\n', size);
	char *pat;
	char *scratch = NULL;
	size_t cap = 0, len = 0;
	const char *label = NULL;
	const char *key;
	size_t key_len;

	if (!nl)
		return;
	pat = strndup(data, (size_t)(nl - data));
	if (!pat)
		abort();
	key = nl + 1;
	key_len = size - (size_t)(nl - data) - 1;
	if (sm_redis_label_for(&scratch, &cap, pat, key, key_len, &label, &len) < 0)
		abort();
	if (len != strlen(label) || len > key_len + SM_REDIS_MAX_STARS)
		abort();
	free(scratch);
	free(pat);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	redisReader *rd = redisReaderCreate();
	void *reply = NULL;
	const char *q = NULL;
	size_t qlen = 0;
	double age = 0;
	char err[256];

	if (!rd)
		abort();
	if (!huge_aggregate(data, size) &&
	    redisReaderFeed(rd, (const char *)data, size) == REDIS_OK) {
		while (redisReaderGetReply(rd, &reply) == REDIS_OK && reply) {
			const redisReply *top = reply;
			struct redis_names names = {0};

			(void)walk(reply, 0);
			if (top->type == REDIS_REPLY_ARRAY) {
				(void)sm_redis_map_get(top, "name");
				if (sm_redis_take_members(&names, top, "rq:queue:", false) < 0 ||
				    sm_redis_take_members(&names, top, NULL, true) < 0)
					abort();
				sm_redis_names_sort_unique(&names);
				sm_redis_names_clear(&names);
				free(names.v);
			}
			freeReplyObject(reply);
			reply = NULL;
		}
	}
	redisReaderFree(rd);

	if (sm_redis_kombu_queue((const char *)data, size, &q, &qlen) &&
	    (q < (const char *)data || q + qlen > (const char *)data + size))
		abort();
	(void)sm_redis_sidekiq_age((const char *)data, size, 1700000000000, &age, err, sizeof(err));
	fuzz_glob((const char *)data, size);
	return 0;
}
