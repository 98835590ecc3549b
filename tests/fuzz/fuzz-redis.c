/* SPDX-License-Identifier: MIT */
/* Redis replies: hiredis's RESP reader on the raw bytes (the reply trees the collector walks
 * come from it), and the collector's own parsers of reply strings: Kombu binding members and
 * Sidekiq job JSON. The reply-tree walking in redis.c is static and needs a live connection;
 * tests/integration covers it against a real redis-server. */
#include <hiredis/hiredis.h>
#include <stdbool.h>

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
			(void)walk(reply, 0);
			freeReplyObject(reply);
			reply = NULL;
		}
	}
	redisReaderFree(rd);

	if (sm_redis_kombu_queue((const char *)data, size, &q, &qlen) &&
	    (q < (const char *)data || q + qlen > (const char *)data + size))
		abort();
	(void)sm_redis_sidekiq_age((const char *)data, size, 1700000000000, &age, err, sizeof(err));
	return 0;
}
