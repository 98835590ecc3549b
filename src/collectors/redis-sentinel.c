/* SPDX-License-Identifier: MIT */
/* Redis Sentinel: which node is the master of a service, per the first sentinel that
 * answers. The collector connects there, checks ROLE, and asks again after any failure. */

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "scalemetrics/number.h"

#include "redis-internal.h"

static void append(char *buf, size_t len, const char *host, int port, const char *what)
{
	size_t used = strlen(buf);

	if (used + 1 >= len)
		return;
	snprintf(buf + used, len - used, "%ssentinel %s:%d: %s", used ? "; " : "", host, port,
	         what);
}

/* One sentinel. 0 and the answer, -ENOENT (does not know the master), or another failure. */
static int ask(const struct redis_endpoint *ep, const char *master, struct timeval tv,
               char **ret_host, int *ret_port, char *why, size_t whylen)
{
	redisContext *ctx = redisConnectWithTimeout(ep->host, ep->port, tv);
	redisReply *reply = NULL;
	int64_t port;
	int r = -ECONNREFUSED;

	if (!ctx || ctx->err) {
		snprintf(why, whylen, "%s", ctx ? ctx->errstr : "out of memory");
		goto out;
	}
	if (redisSetTimeout(ctx, tv) != REDIS_OK) {
		snprintf(why, whylen, "%s", ctx->errstr);
		goto out;
	}
	reply = redisCommand(ctx, "SENTINEL get-master-addr-by-name %s", master);
	if (!reply) {
		snprintf(why, whylen, "%s", ctx->errstr);
		r = -EIO;
		goto out;
	}
	if (reply->type == REDIS_REPLY_NIL) {
		snprintf(why, whylen, "does not know master '%s'", master);
		r = -ENOENT;
		goto out;
	}
	if (reply->type == REDIS_REPLY_ERROR) {
		snprintf(why, whylen, "%s", reply->str);
		r = -EPROTO;
		goto out;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
	    reply->element[0]->type != REDIS_REPLY_STRING ||
	    reply->element[1]->type != REDIS_REPLY_STRING ||
	    sm_number_parse_int64(reply->element[1]->str, &port) < 0 || port < 1 || port > 65535) {
		snprintf(why, whylen, "unexpected answer to SENTINEL get-master-addr-by-name");
		r = -EPROTO;
		goto out;
	}
	*ret_host = strdup(reply->element[0]->str);
	if (!*ret_host) {
		r = -ENOMEM;
		goto out;
	}
	*ret_port = (int)port;
	r = 0;
out:
	if (reply)
		freeReplyObject(reply);
	if (ctx)
		redisFree(ctx);
	return r;
}

int sm_redis_sentinel_master(const struct redis_config *c, int64_t timeout_ms, size_t *start,
                             char **ret_host, int *ret_port, struct sm_error *reterr)
{
	struct timeval tv = {.tv_sec = (time_t)(timeout_ms / 1000),
	                     .tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000};
	char all[sizeof(reterr->message)] = "";
	int last = -EHOSTUNREACH;

	if (c->n_sentinels == 0)
		return -EINVAL;
	for (size_t k = 0; k < c->n_sentinels; k++) {
		size_t i = (*start + k) % c->n_sentinels;
		const struct redis_endpoint *ep = &c->sentinels[i];
		char why[200] = "";
		int r = ask(ep, c->sentinel_master, tv, ret_host, ret_port, why, sizeof(why));

		if (r == 0) {
			*start = i;
			return 0;
		}
		if (r == -ENOMEM)
			return r;
		last = r;
		append(all, sizeof(all), ep->host, ep->port, why);
	}
	sm_error_set(reterr, "no sentinel named a master for '%s': %s", c->sentinel_master, all);
	return last == -ENOENT ? -EHOSTUNREACH : last;
}
