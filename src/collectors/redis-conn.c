/* SPDX-License-Identifier: MIT */
/* The Redis collector's connection: connecting (directly, by unix socket or through the
 * sentinels), AUTH, SELECT and the ROLE check, one-off commands and pipelined replies, and
 * hiredis' errors mapped to negative errno codes and messages that name the server. */

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "scalemetrics/source.h"

#include "redis-internal.h"

void sm_redis_disconnect(struct redis_state *s)
{
	if (s->ctx)
		redisFree(s->ctx);
	s->ctx = NULL;
}

static void address_string(const struct redis_state *s, char *buf, size_t len)
{
	const struct redis_config *c = s->cfg;
	const char *host = s->cur_host ? s->cur_host : c->host;
	int port = s->cur_host ? s->cur_port : c->port;

	if (c->unix_path)
		snprintf(buf, len, "unix:%s", c->unix_path);
	else if (!host)
		snprintf(buf, len, "sentinel master '%s'", c->sentinel_master);
	else if (strchr(host, ':'))
		snprintf(buf, len, "[%s]:%d", host, port);
	else
		snprintf(buf, len, "%s:%d", host, port);
}

static struct timeval ms_to_timeval(int64_t ms)
{
	if (ms <= 0)
		ms = 1;
	return (struct timeval){.tv_sec = (time_t)(ms / 1000),
	                        .tv_usec = (suseconds_t)(ms % 1000) * 1000};
}

int sm_redis_ctx_error_code(int err, int errno_saved, bool connecting)
{
	switch (err) {
	case REDIS_ERR_IO:
		if (errno_saved == EAGAIN || errno_saved == EWOULDBLOCK ||
		    errno_saved == ETIMEDOUT || errno_saved == EINPROGRESS)
			return -ETIMEDOUT;
		if (errno_saved == ECONNREFUSED || errno_saved == ENOENT ||
		    errno_saved == ECONNRESET || errno_saved == EPIPE ||
		    errno_saved == EHOSTUNREACH || errno_saved == ENETUNREACH ||
		    errno_saved == EACCES)
			return -errno_saved;
		return connecting ? -ECONNREFUSED : -EIO;
	case REDIS_ERR_EOF:
		return -EIO;
	case REDIS_ERR_PROTOCOL:
		return -EPROTO;
	case REDIS_ERR_OOM:
		return -ENOMEM;
	default:
		return connecting ? -EHOSTUNREACH : -EIO;
	}
}

/* Turns the context's error into a code and message, and drops the connection (the next
 * round reconnects). errno_saved is errno right after the failing hiredis call. */
int sm_redis_fail_ctx(struct redis_state *s, int errno_saved, bool connecting,
                      struct sm_error *reterr)
{
	char addr[300];
	int err = s->ctx ? s->ctx->err : REDIS_ERR_OOM;
	const char *errstr = s->ctx ? s->ctx->errstr : "out of memory";
	int r = sm_redis_ctx_error_code(err, errno_saved, connecting);

	address_string(s, addr, sizeof(addr));
	if (r == -ETIMEDOUT)
		sm_error_set(reterr, "%s: %s (no answer within %lldms)", addr, errstr,
		             (long long)s->src->timeout_ms);
	else
		sm_error_set(reterr, "%s: %s", addr, errstr);
	sm_redis_disconnect(s);
	return r;
}

/* A reply that is not what the protocol promises: drop the connection. */
int sm_redis_fail_reply(struct redis_state *s, int r, struct sm_error *reterr, const char *what,
                        const redisReply *reply)
{
	char addr[300];

	address_string(s, addr, sizeof(addr));
	if (reply && reply->type == REDIS_REPLY_ERROR)
		sm_error_set(reterr, "%s: %s: %s", addr, what, reply->str);
	else
		sm_error_set(reterr, "%s: %s: unexpected reply type %d", addr, what,
		             reply ? reply->type : -1);
	sm_redis_disconnect(s);
	return r;
}

int sm_redis_error_code(const redisReply *reply)
{
	if (reply->type != REDIS_REPLY_ERROR)
		return -EPROTO;
	if (strncmp(reply->str, "NOAUTH", 6) == 0 || strncmp(reply->str, "WRONGPASS", 9) == 0 ||
	    strncmp(reply->str, "NOPERM", 6) == 0)
		return -EACCES;
	return -EIO;
}

/* One command, one round trip. 0 with *ret set (any reply type), or a failure. */
int sm_redis_command(struct redis_state *s, redisReply **ret, struct sm_error *reterr,
                     const char *fmt, ...)
{
	va_list ap;
	redisReply *reply;

	va_start(ap, fmt);
	reply = redisvCommand(s->ctx, fmt, ap);
	va_end(ap);
	s->round_trips++;
	if (!reply)
		return sm_redis_fail_ctx(s, errno, false, reterr);
	*ret = reply;
	return 0;
}

/* ROLE must say "master" (Sentinel mode: the node the sentinels named may have been demoted
 * since). -EAGAIN otherwise, disconnected, so that the next attempt asks the sentinels. */
int sm_redis_check_role(struct redis_state *s, struct sm_error *reterr)
{
	redisReply *reply = NULL;
	char addr[300];
	int r;

	r = sm_redis_command(s, &reply, reterr, "ROLE");
	if (r < 0)
		return r;
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
	    reply->element[0]->type != REDIS_REPLY_STRING) {
		r = sm_redis_fail_reply(s, sm_redis_error_code(reply), reterr, "ROLE", reply);
		goto out;
	}
	if (strcmp(reply->element[0]->str, "master") != 0) {
		address_string(s, addr, sizeof(addr));
		sm_error_set(reterr,
		             "%s: is a %s, not the master of '%s' the sentinels named (failover "
		             "in progress?); asking the sentinels again",
		             addr, reply->element[0]->str, s->cfg->sentinel_master);
		sm_redis_disconnect(s);
		r = -EAGAIN;
		goto out;
	}
	r = 0;
out:
	freeReplyObject(reply);
	return r;
}

int sm_redis_connect(struct redis_state *s, struct sm_error *reterr)
{
	const struct redis_config *c = s->cfg;
	struct timeval tv = ms_to_timeval(s->src->timeout_ms);
	redisReply *reply = NULL;
	int r;

	if (s->ctx)
		return 0;
	if (c->has_sentinel) {
		char *host = NULL;
		int port = 0;

		r = sm_redis_sentinel_master(c, s->src->timeout_ms, &s->sentinel_next, &host, &port,
		                             reterr);
		if (r < 0)
			return r;
		free(s->cur_host);
		s->cur_host = host;
		s->cur_port = port;
	}
	errno = 0;
	if (c->unix_path)
		s->ctx = redisConnectUnixWithTimeout(c->unix_path, tv);
	else if (s->cur_host)
		s->ctx = redisConnectWithTimeout(s->cur_host, s->cur_port, tv);
	else
		s->ctx = redisConnectWithTimeout(c->host, c->port, tv);
	if (!s->ctx || s->ctx->err)
		return sm_redis_fail_ctx(s, errno, true, reterr);
	if (redisSetTimeout(s->ctx, tv) != REDIS_OK)
		return sm_redis_fail_ctx(s, errno, true, reterr);

	if (s->password) {
		/* Never the text of the command in errors: it holds the password. */
		if (c->username && *c->username)
			r = sm_redis_command(s, &reply, reterr, "AUTH %s %s", c->username,
			                     s->password);
		else
			r = sm_redis_command(s, &reply, reterr, "AUTH %s", s->password);
		if (r < 0)
			return r;
		if (reply->type != REDIS_REPLY_STATUS) {
			r = sm_redis_fail_reply(
			    s, reply->type == REDIS_REPLY_ERROR ? -EACCES : -EPROTO, reterr, "AUTH",
			    reply);
			goto out;
		}
		freeReplyObject(reply);
		reply = NULL;
	}
	if (c->db != 0) {
		r = sm_redis_command(s, &reply, reterr, "SELECT %lld", (long long)c->db);
		if (r < 0)
			return r;
		if (reply->type != REDIS_REPLY_STATUS) {
			r = sm_redis_fail_reply(s, sm_redis_error_code(reply), reterr, "SELECT",
			                        reply);
			goto out;
		}
	}
	r = c->has_sentinel ? sm_redis_check_role(s, reterr) : 0;
	s->role_checked = r == 0;
out:
	freeReplyObject(reply);
	return r;
}

int sm_redis_next_reply(struct redis_state *s, redisReply **ret, struct sm_error *reterr)
{
	redisReply *reply = NULL;

	if (redisGetReply(s->ctx, (void **)&reply) != REDIS_OK || !reply)
		return sm_redis_fail_ctx(s, errno, false, reterr);
	*ret = reply;
	return 0;
}
