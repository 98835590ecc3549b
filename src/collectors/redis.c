/* SPDX-License-Identifier: MIT */
/* The Redis collector: queue backlogs (lists, sorted sets, sets, hashes, streams and their
 * consumer groups) of exact keys, SCAN globs and job-framework presets, read with pipelined
 * commands over one lazily (re)connected hiredis context, directly or through Sentinel.
 *
 * Design: one round rebuilds its list of keys ("entries") from scratch: exact keys, SCAN
 * globs, and the queue names a preset discovers (an index set, SCAN of marker keys, Kombu
 * bindings). Keys of unknown type are resolved with TYPE, then every read (lengths, XINFO
 * GROUPS, ZCOUNT, LINDEX, counters) is pipelined PIPELINE_BATCH commands per round trip, so
 * a round over N keys costs O(N / batch) round trips. Entries that give the same label value
 * in one rule are summed into one series. Only the derived-metric history survives a round. */

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "scalemetrics/clock.h"
#include "scalemetrics/config.h"
#include "scalemetrics/file.h"
#include "scalemetrics/hash.h"
#include "scalemetrics/number.h"
#include "scalemetrics/selector.h"
#include "scalemetrics/series.h"
#include "scalemetrics/source.h"

#include "redis-internal.h"

#define PIPELINE_BATCH 1000 /* commands per round trip */
#define MAX_STARS      16   /* '*' captured per glob */
#define PASSWORD_MAX   4096

/* Indexed by enum redis_key_type. */
static const char *const length_commands[] = {
    [REDIS_KEY_AUTO] = NULL,   [REDIS_KEY_LIST] = "LLEN",   [REDIS_KEY_ZSET] = "ZCARD",
    [REDIS_KEY_SET] = "SCARD", [REDIS_KEY_STREAM] = "XLEN", [REDIS_KEY_HASH] = "HLEN",
};
static_assert(sizeof(length_commands) / sizeof(length_commands[0]) == REDIS_KEY_TYPE_MAX,
              "length_commands");

/* ---- runtime ---- */

struct group_stat {
	char *name;
	double lag;
	bool has_lag;
	double pending;
};

/* What few entries have: a stream's consumer groups, a dequeue counter, why it failed. */
struct extra {
	struct group_stat *groups;
	size_t n_groups;
	bool has_counter; /* the dequeue counter's value */
	double counter;
	char *error; /* the entry could not be read (entry.failed) */
};

/* One key read in a round: 40 bytes, there may be max_series of them. */
struct entry {
	/* In the round's string pool: key_len bytes of key (binary-safe), a NUL (for
	 * messages), then, if has_label, the label value (raw; the batch sanitises it) and a
	 * NUL; see entry_label(). */
	char *key;
	double value;
	uint32_t key_len; /* Redis keys are at most 512 MB */
	uint32_t rule;    /* index in cfg->rules */
	uint32_t extra;   /* index + 1 in the state's extras; 0: none */
	int8_t type;      /* enum redis_key_type resolved for this key; AUTO until TYPE answered */
	bool has_label;
	bool skip;   /* per-series problem, or an optional key that does not exist */
	bool failed; /* the per-series problem: its series is served as a failure */
	bool ready;  /* value known without a read command (TYPE said "none") */
	bool stream; /* value is XLEN; the extra's groups hold XINFO GROUPS */
};
static_assert(sizeof(struct entry) <= 40 || sizeof(void *) > 8, "struct entry grew");
static_assert(REDIS_KEY_TYPE_MAX <= INT8_MAX, "enum redis_key_type fits struct entry's type");

/* Where the keys and labels of a round live: chunks kept from round to round (a round needs
 * about what the previous one did), so a round costs no allocation per key, no page faults
 * and no holes in the heap. Chunks are big enough for malloc to map them on their own. */
struct pool_chunk {
	struct pool_chunk *next;
	size_t size; /* bytes in data */
	size_t used;
	char data[];
};

#define MAPPED_MIN (128 * 1024) /* bytes: main.c's M_MMAP_THRESHOLD */
#define POOL_CHUNK (MAPPED_MIN - sizeof(struct pool_chunk))

struct pool {
	struct pool_chunk *head;
	struct pool_chunk *cur; /* being filled; the ones after it are unused this round */
	bool dirty;             /* allocated from since the last reset */
};

struct names {
	char **v;
	size_t n;
	size_t cap;
};

struct redis_state {
	const struct sm_source_config *src;
	const struct redis_config *cfg;
	redisContext *ctx;
	char *cur_host; /* the node connected to (the master the sentinels named) */
	int cur_port;
	size_t sentinel_next; /* the sentinel asked first */
	bool role_checked;    /* ROLE said master since this round began */
	char *password;       /* a secret: never logged */
	int password_r;       /* <0: reading it failed, every round reports it */
	char password_error[256];
	uint64_t round_trips; /* since start, for the benchmark and the tests */
	struct redis_history *history;
	int64_t max_window_ms;

	/* Per round, reused. */
	struct entry *entries;
	size_t n_entries;
	size_t cap_entries;
	size_t entries_hint; /* the first capacity: the last round's count, at least 64 */
	struct pool pool;    /* the entries' keys and labels */
	struct extra *extras;
	size_t n_extras;
	size_t cap_extras;
	char *scratch; /* a glob's label being built */
	size_t scratch_cap;
	uint32_t *set; /* open addressing: entry index + 1, 0 = empty; keys of the current rule */
	size_t set_cap;
	size_t set_first; /* first entry of the current rule */
	size_t overflow;  /* keys not read because max_series was reached */
	size_t n_notes;
	char more[200];     /* keys of the problems after the first */
	struct names names; /* the queue names of names_group, discovered this round */
	size_t names_group;
	bool names_valid;
	char names_error[256]; /* why names may be missing from names ("": none) */
	char **rule_errors;    /* per rule: its queue names could not all be discovered */
	char due_max[32];      /* ZCOUNT's max for BullMQ "due now" */
	int64_t now_wall_ms;
};

static int read_password(const struct redis_config *c, char **ret, char *err, size_t errlen)
{
	struct sm_error e = {0};
	int r;

	*ret = NULL;
	r = sm_secret_read(c->password_env, c->password_file, PASSWORD_MAX, "password", ret, &e);
	if (r < 0)
		snprintf(err, errlen, "%s", e.message);
	return r;
}

static int redis_create(const struct sm_source_config *src, void **ret_state)
{
	struct redis_state *s;

	if (!src->priv || ((const struct redis_config *)src->priv)->rules.n > UINT32_MAX)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->src = src;
	s->cfg = src->priv;
	s->entries_hint = 64;
	s->history = sm_redis_history_new();
	s->rule_errors = calloc(s->cfg->rules.n ? s->cfg->rules.n : 1, sizeof(*s->rule_errors));
	if (!s->history || !s->rule_errors) {
		sm_redis_history_free(s->history);
		free(s->rule_errors);
		free(s);
		return -ENOMEM;
	}
	for (size_t i = 0; i < s->cfg->rules.n; i++)
		if (s->cfg->rules.v[i].derived && s->cfg->rules.v[i].window_ms > s->max_window_ms)
			s->max_window_ms = s->cfg->rules.v[i].window_ms;
	/* A missing secret fails each round with a clear error rather than the whole start. */
	s->password_r =
	    read_password(s->cfg, &s->password, s->password_error, sizeof(s->password_error));
	if (s->password_r == -ENOMEM) {
		sm_redis_history_free(s->history);
		free(s->rule_errors);
		free(s);
		return -ENOMEM;
	}
	*ret_state = s;
	return 0;
}

static void names_clear(struct names *n)
{
	for (size_t i = 0; i < n->n; i++)
		free(n->v[i]);
	n->n = 0;
}

static int names_push(struct names *n, const char *s, size_t len)
{
	char *copy;

	if (n->n == n->cap) {
		size_t cap = n->cap ? n->cap * 2 : 32;
		char **v = realloc(n->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		n->v = v;
		n->cap = cap;
	}
	copy = strndup(s, len);
	if (!copy)
		return -ENOMEM;
	n->v[n->n++] = copy;
	return 0;
}

static void extra_done(struct extra *x)
{
	for (size_t g = 0; g < x->n_groups; g++)
		free(x->groups[g].name);
	free(x->groups);
	free(x->error);
}

/* e's extra, added if it has none; NULL when out of memory. */
static struct extra *entry_extra(struct redis_state *s, struct entry *e)
{
	if (e->extra == 0) {
		if (s->n_extras == s->cap_extras) {
			size_t cap = s->cap_extras ? s->cap_extras * 2 : 16;
			struct extra *v;

			if (cap > UINT32_MAX - 1 || cap > SIZE_MAX / sizeof(*v))
				return NULL;
			v = realloc(s->extras, cap * sizeof(*v));
			if (!v)
				return NULL;
			s->extras = v;
			s->cap_extras = cap;
		}
		s->extras[s->n_extras] = (struct extra){0};
		e->extra = (uint32_t)++s->n_extras;
	}
	return &s->extras[e->extra - 1];
}

/* e's extra, or NULL when it has none. */
static const struct extra *entry_extra_get(const struct redis_state *s, const struct entry *e)
{
	return e->extra ? &s->extras[e->extra - 1] : NULL;
}

/* The label value, or NULL for a rule without label. */
static const char *entry_label(const struct entry *e)
{
	return e->has_label ? e->key + e->key_len + 1 : NULL;
}

/* Empties the pool for a new round, keeping the chunks the last round used and freeing the
 * rest (a round that needed more than usual does not pin its memory for good). */
static void pool_reset(struct pool *p)
{
	struct pool_chunk *c = p->cur ? p->cur->next : p->head;

	if (!p->dirty && p->cur)
		return; /* reset twice: keep what the last round used */
	p->dirty = false;
	if (p->cur)
		p->cur->next = NULL;
	else
		p->head = NULL;
	while (c) {
		struct pool_chunk *next = c->next;

		free(c);
		c = next;
	}
	for (c = p->head; c; c = c->next)
		c->used = 0;
	p->cur = p->head;
}

static void pool_free(struct pool *p)
{
	p->cur = NULL;
	p->dirty = true;
	pool_reset(p);
}

static char *pool_alloc(struct pool *p, size_t size)
{
	struct pool_chunk *c = p->cur;
	struct pool_chunk *fresh;
	size_t chunk_size = size > POOL_CHUNK ? size : POOL_CHUNK;

	p->dirty = true;
	if (c && size <= c->size - c->used) {
		c->used += size;
		return c->data + c->used - size;
	}
	/* The next kept chunk, if this one is full. */
	if (c && c->next && size <= c->next->size) {
		p->cur = c->next;
		p->cur->used = size;
		return p->cur->data;
	}
	if (chunk_size > SIZE_MAX - sizeof(*fresh))
		return NULL;
	fresh = malloc(sizeof(*fresh) + chunk_size);
	if (!fresh)
		return NULL;
	*fresh = (struct pool_chunk){.size = chunk_size, .used = size};
	if (c) {
		fresh->next = c->next;
		c->next = fresh;
	} else {
		fresh->next = p->head;
		p->head = fresh;
	}
	p->cur = fresh;
	return fresh->data;
}

static void entries_clear(struct redis_state *s)
{
	for (size_t i = 0; i < s->n_extras; i++)
		extra_done(&s->extras[i]);
	s->n_extras = 0;
	s->n_entries = 0;
	pool_reset(&s->pool);
	for (size_t i = 0; s->rule_errors && i < s->cfg->rules.n; i++) {
		free(s->rule_errors[i]);
		s->rule_errors[i] = NULL;
	}
}

/* At the end of a round: the entry arrays, when malloc mapped them on their own (thousands of
 * keys), go back to the system rather than staying resident for the whole interval between
 * rounds; the next round maps them again at the size this one needed. At 10,000 keys that is
 * 400 KiB less resident between rounds for about 100 page faults a round, about what the two
 * allocations per key the pool saves used to cost. The pool and the key set stay: faults are
 * dear (several microseconds each on a VM), and one fault per 4 KiB per round is the price
 * of every block given back. */
static void release_scratch(struct redis_state *s)
{
	entries_clear(s);
	if (s->cap_entries * sizeof(*s->entries) >= MAPPED_MIN) {
		free(s->entries);
		s->entries = NULL;
		s->cap_entries = 0;
	}
	if (s->cap_extras * sizeof(*s->extras) >= MAPPED_MIN) {
		free(s->extras);
		s->extras = NULL;
		s->cap_extras = 0;
	}
}

static void disconnect(struct redis_state *s)
{
	if (s->ctx)
		redisFree(s->ctx);
	s->ctx = NULL;
}

static void redis_destroy(void *state)
{
	struct redis_state *s = state;

	if (!s)
		return;
	disconnect(s);
	entries_clear(s);
	free(s->entries);
	free(s->extras);
	pool_free(&s->pool);
	free(s->scratch);
	free(s->set);
	names_clear(&s->names);
	free(s->names.v);
	free(s->rule_errors);
	free(s->cur_host);
	sm_redis_history_free(s->history);
	if (s->password) {
		/* Not a guarantee (the allocator may have copies), but do not leave it lying
		 * around. */
		memset(s->password, 0, strlen(s->password));
		free(s->password);
	}
	free(s);
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

/* Turns the context's error into a code and message, and drops the connection (the next
 * round reconnects). errno_saved is errno right after the failing hiredis call. */
static int fail_ctx(struct redis_state *s, int errno_saved, bool connecting,
                    struct sm_error *reterr)
{
	char addr[300];
	int err = s->ctx ? s->ctx->err : REDIS_ERR_OOM;
	const char *errstr = s->ctx ? s->ctx->errstr : "out of memory";
	int r;

	address_string(s, addr, sizeof(addr));
	switch (err) {
	case REDIS_ERR_IO:
		if (errno_saved == EAGAIN || errno_saved == EWOULDBLOCK ||
		    errno_saved == ETIMEDOUT || errno_saved == EINPROGRESS) {
			r = -ETIMEDOUT;
			sm_error_set(reterr, "%s: %s (no answer within %lldms)", addr, errstr,
			             (long long)s->src->timeout_ms);
			goto out;
		}
		if (errno_saved == ECONNREFUSED || errno_saved == ENOENT ||
		    errno_saved == ECONNRESET || errno_saved == EPIPE ||
		    errno_saved == EHOSTUNREACH || errno_saved == ENETUNREACH ||
		    errno_saved == EACCES)
			r = -errno_saved;
		else
			r = connecting ? -ECONNREFUSED : -EIO;
		break;
	case REDIS_ERR_EOF:
		r = -EIO;
		break;
	case REDIS_ERR_PROTOCOL:
		r = -EPROTO;
		break;
	case REDIS_ERR_OOM:
		r = -ENOMEM;
		break;
	default:
		r = connecting ? -EHOSTUNREACH : -EIO;
		break;
	}
	sm_error_set(reterr, "%s: %s", addr, errstr);
out:
	disconnect(s);
	return r;
}

/* A reply that is not what the protocol promises: drop the connection. */
static int fail_reply(struct redis_state *s, int r, struct sm_error *reterr, const char *what,
                      const redisReply *reply)
{
	char addr[300];

	address_string(s, addr, sizeof(addr));
	if (reply && reply->type == REDIS_REPLY_ERROR)
		sm_error_set(reterr, "%s: %s: %s", addr, what, reply->str);
	else
		sm_error_set(reterr, "%s: %s: unexpected reply type %d", addr, what,
		             reply ? reply->type : -1);
	disconnect(s);
	return r;
}

static int error_code(const redisReply *reply)
{
	if (reply->type != REDIS_REPLY_ERROR)
		return -EPROTO;
	if (strncmp(reply->str, "NOAUTH", 6) == 0 || strncmp(reply->str, "WRONGPASS", 9) == 0 ||
	    strncmp(reply->str, "NOPERM", 6) == 0)
		return -EACCES;
	return -EIO;
}

/* One command, one round trip. 0 with *ret set (any reply type), or a failure. */
static int command(struct redis_state *s, redisReply **ret, struct sm_error *reterr,
                   const char *fmt, ...)
{
	va_list ap;
	redisReply *reply;

	va_start(ap, fmt);
	reply = redisvCommand(s->ctx, fmt, ap);
	va_end(ap);
	s->round_trips++;
	if (!reply)
		return fail_ctx(s, errno, false, reterr);
	*ret = reply;
	return 0;
}

/* ROLE must say "master" (Sentinel mode: the node the sentinels named may have been demoted
 * since). -EAGAIN otherwise, disconnected, so that the next attempt asks the sentinels. */
static int check_role(struct redis_state *s, struct sm_error *reterr)
{
	redisReply *reply = NULL;
	char addr[300];
	int r;

	r = command(s, &reply, reterr, "ROLE");
	if (r < 0)
		return r;
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
	    reply->element[0]->type != REDIS_REPLY_STRING) {
		r = fail_reply(s, error_code(reply), reterr, "ROLE", reply);
		goto out;
	}
	if (strcmp(reply->element[0]->str, "master") != 0) {
		address_string(s, addr, sizeof(addr));
		sm_error_set(reterr,
		             "%s: is a %s, not the master of '%s' the sentinels named (failover "
		             "in progress?); asking the sentinels again",
		             addr, reply->element[0]->str, s->cfg->sentinel_master);
		disconnect(s);
		r = -EAGAIN;
		goto out;
	}
	r = 0;
out:
	freeReplyObject(reply);
	return r;
}

static int ensure_connected(struct redis_state *s, struct sm_error *reterr)
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
		return fail_ctx(s, errno, true, reterr);
	if (redisSetTimeout(s->ctx, tv) != REDIS_OK)
		return fail_ctx(s, errno, true, reterr);

	if (s->password) {
		/* Never the text of the command in errors: it holds the password. */
		if (c->username && *c->username)
			r = command(s, &reply, reterr, "AUTH %s %s", c->username, s->password);
		else
			r = command(s, &reply, reterr, "AUTH %s", s->password);
		if (r < 0)
			return r;
		if (reply->type != REDIS_REPLY_STATUS) {
			r = fail_reply(s, reply->type == REDIS_REPLY_ERROR ? -EACCES : -EPROTO,
			               reterr, "AUTH", reply);
			goto out;
		}
		freeReplyObject(reply);
		reply = NULL;
	}
	if (c->db != 0) {
		r = command(s, &reply, reterr, "SELECT %lld", (long long)c->db);
		if (r < 0)
			return r;
		if (reply->type != REDIS_REPLY_STATUS) {
			r = fail_reply(s, error_code(reply), reterr, "SELECT", reply);
			goto out;
		}
	}
	r = c->has_sentinel ? check_role(s, reterr) : 0;
	s->role_checked = r == 0;
out:
	freeReplyObject(reply);
	return r;
}

/* ---- keys and labels ---- */

struct capture {
	const char *p;
	size_t len;
};

/* Redis' glob (stringmatchlen: * ? [...] [^...] [a-z] \x), recording what each '*' matched.
 * Shortest match first for each '*', as Redis does. *budget bounds backtracking. */
static bool glob_match(const char *pat, size_t plen, const char *str, size_t slen,
                       struct capture *caps, size_t ncap, size_t *budget)
{
	while (plen > 0) {
		if ((*budget)-- == 0)
			return false;
		switch (pat[0]) {
		case '*':
			while (plen > 1 && pat[1] == '*') {
				pat++;
				plen--;
			}
			if (plen == 1) {
				if (ncap > 0)
					caps[0] = (struct capture){str, slen};
				return true;
			}
			for (size_t k = 0; k <= slen; k++) {
				if (glob_match(pat + 1, plen - 1, str + k, slen - k,
				               ncap > 0 ? caps + 1 : caps, ncap > 0 ? ncap - 1 : 0,
				               budget)) {
					if (ncap > 0)
						caps[0] = (struct capture){str, k};
					return true;
				}
				if (*budget == 0)
					return false;
			}
			return false;
		case '?':
			if (slen == 0)
				return false;
			str++;
			slen--;
			break;
		case '[': {
			bool neg, found = false;

			pat++;
			plen--;
			if (slen == 0)
				return false;
			neg = plen > 0 && pat[0] == '^';
			if (neg) {
				pat++;
				plen--;
			}
			for (;;) {
				if (plen == 0) {
					/* Unterminated: Redis treats the end as ']'. */
					break;
				}
				if (pat[0] == '\\' && plen >= 2) {
					pat++;
					plen--;
					if (pat[0] == str[0])
						found = true;
				} else if (pat[0] == ']') {
					break;
				} else if (plen >= 3 && pat[1] == '-') {
					unsigned char lo = (unsigned char)pat[0];
					unsigned char hi = (unsigned char)pat[2];
					unsigned char ch = (unsigned char)str[0];

					if (lo > hi) {
						unsigned char t = lo;

						lo = hi;
						hi = t;
					}
					pat += 2;
					plen -= 2;
					if (ch >= lo && ch <= hi)
						found = true;
				} else if (pat[0] == str[0]) {
					found = true;
				}
				pat++;
				plen--;
			}
			if (neg)
				found = !found;
			if (!found)
				return false;
			str++;
			slen--;
			if (plen == 0)
				return slen == 0;
			break;
		}
		case '\\':
			if (plen >= 2) {
				pat++;
				plen--;
			}
			__attribute__((fallthrough));
		default:
			if (slen == 0 || pat[0] != str[0])
				return false;
			str++;
			slen--;
			break;
		}
		pat++;
		plen--;
	}
	return slen == 0;
}

static size_t count_stars(const char *pat)
{
	size_t n = 0;

	for (size_t i = 0; pat[i]; i++) {
		if (pat[i] == '\\' && pat[i + 1]) {
			i++;
		} else if (pat[i] == '*') {
			n++;
			while (pat[i + 1] == '*')
				i++;
		}
	}
	return n;
}

/* The label value: what the '*'s matched, joined by ':'; else the whole key. Built in
 * s->scratch (valid until the next call); -ENOMEM. */
static int label_for(struct redis_state *s, const char *pat, const char *key, size_t key_len,
                     const char **ret, size_t *ret_len)
{
	struct capture caps[MAX_STARS];
	size_t stars = pat ? count_stars(pat) : 0;
	size_t budget = 100000;
	size_t len = 0;
	char *out;

	if (stars > MAX_STARS)
		stars = MAX_STARS;
	if (stars == 0 || !glob_match(pat, strlen(pat), key, key_len, caps, stars, &budget)) {
		caps[0] = (struct capture){key, key_len};
		stars = 1;
	}
	for (size_t i = 0; i < stars; i++)
		len += caps[i].len + 1;
	if (len > s->scratch_cap) {
		out = realloc(s->scratch, len);
		if (!out)
			return -ENOMEM;
		s->scratch = out;
		s->scratch_cap = len;
	}
	out = s->scratch;
	len = 0;
	for (size_t i = 0; i < stars; i++) {
		if (i > 0)
			out[len++] = ':';
		memcpy(out + len, caps[i].p, caps[i].len);
		len += caps[i].len;
	}
	out[len] = '\0';
	/* Keys may hold NUL bytes; the label is a C string and stops at the first. */
	*ret = out;
	*ret_len = strlen(out);
	return 0;
}

static uint64_t hash_key(const char *k, size_t len)
{
	uint64_t h = sm_hash_bytes(k, len);

	/* FNV's low bits depend only on the inputs' low bits, and the table is indexed by the
	 * low bits: mix the high ones in (MurmurHash3's finaliser), or keys like "q:0".."q:9999"
	 * make long probe chains. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static int set_reset(struct redis_state *s)
{
	if (!s->set) {
		s->set_cap = 256;
		s->set = calloc(s->set_cap, sizeof(*s->set));
		if (!s->set)
			return -ENOMEM;
	} else {
		memset(s->set, 0, s->set_cap * sizeof(*s->set));
	}
	s->set_first = s->n_entries;
	return 0;
}

/* The slot for key: holding its entry, or empty. */
static uint32_t *set_slot(struct redis_state *s, const char *key, size_t len)
{
	size_t mask = s->set_cap - 1;
	size_t i = (size_t)hash_key(key, len) & mask;

	for (;;) {
		uint32_t *slot = &s->set[i];
		const struct entry *e;

		if (*slot == 0)
			return slot;
		e = &s->entries[*slot - 1];
		if (e->key_len == len && memcmp(e->key, key, len) == 0)
			return slot;
		i = (i + 1) & mask;
	}
}

static int set_grow(struct redis_state *s)
{
	size_t n = s->n_entries - s->set_first;
	uint32_t *old = s->set;

	if ((n + 1) * 2 <= s->set_cap)
		return 0;
	s->set = calloc(s->set_cap * 2, sizeof(*s->set));
	if (!s->set) {
		s->set = old;
		return -ENOMEM;
	}
	s->set_cap *= 2;
	free(old);
	for (size_t i = s->set_first; i < s->n_entries; i++)
		*set_slot(s, s->entries[i].key, s->entries[i].key_len) = (uint32_t)i + 1;
	return 0;
}

static void note(struct redis_state *s, struct sm_error *reterr, const char *key, const char *fmt,
                 ...) SM_PRINTF(4, 5);

/* A per-series problem. The messages are joined in reterr while they fit (the scheduler logs
 * the whole when it changes); the keys of the rest are listed at the end of the round. */
static void note(struct redis_state *s, struct sm_error *reterr, const char *key, const char *fmt,
                 ...)
{
	char msg[320];
	size_t used = strlen(reterr->message);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (strstr(reterr->message, msg))
		return; /* said already */
	if (used + strlen(msg) + 2 + 120 < sizeof(reterr->message)) {
		snprintf(reterr->message + used, sizeof(reterr->message) - used, "%s%s",
		         used ? "; " : "", msg);
		return;
	}
	s->n_notes++;
	used = strlen(s->more);
	if (used + 8 < sizeof(s->more))
		snprintf(s->more + used, sizeof(s->more) - used, "%s'%s'", used ? ", " : "", key);
}

static void fail_entry(struct redis_state *s, struct sm_error *reterr, struct entry *e,
                       const char *then, const char *fmt, ...) SM_PRINTF(5, 6);

/* A key that could not be read: noted as "MESSAGE; then", skipped, and its series served as a
 * failure with MESSAGE as the reason (a failure without reason when memory is short: the
 * replies still pending must be read, so this cannot fail). */
static void fail_entry(struct redis_state *s, struct sm_error *reterr, struct entry *e,
                       const char *then, const char *fmt, ...)
{
	char msg[320];
	struct extra *x;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	note(s, reterr, e->key, "%s; %s", msg, then);
	e->skip = true;
	e->failed = true;
	x = entry_extra(s, e);
	if (x && !x->error)
		x->error = strdup(msg);
}

/* ---- discovery ---- */

/* Adds key to the current rule unless already there, with label_len bytes of label (NULL for
 * a rule without label). Both are copied. */
static int add_key(struct redis_state *s, size_t rule, const char *key, size_t key_len,
                   const char *label, size_t label_len)
{
	struct entry *e;
	uint32_t *slot;
	size_t size;
	char *p;

	if (key_len >= UINT32_MAX)
		return 0; /* cannot be: Redis keys are at most 512 MB */
	slot = set_slot(s, key, key_len);
	if (*slot != 0)
		return 0;
	if (s->n_entries >= s->src->max_series) {
		s->overflow++;
		return 0;
	}
	if (s->n_entries == s->cap_entries) {
		size_t cap = s->cap_entries ? s->cap_entries * 2 : s->entries_hint;
		struct entry *v;

		if (cap > s->src->max_series)
			cap = s->src->max_series;
		v = realloc(s->entries, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->entries = v;
		s->cap_entries = cap;
	}
	size = key_len + 1 + (label ? label_len + 1 : 0);
	p = size < key_len ? NULL : pool_alloc(&s->pool, size);
	if (!p)
		return -ENOMEM;
	memcpy(p, key, key_len);
	p[key_len] = '\0';
	if (label) {
		memcpy(p + key_len + 1, label, label_len);
		p[key_len + 1 + label_len] = '\0';
	}
	e = &s->entries[s->n_entries];
	*e = (struct entry){.key = p,
	                    .key_len = (uint32_t)key_len,
	                    .rule = (uint32_t)rule,
	                    .type = (int8_t)s->cfg->rules.v[rule].type,
	                    .has_label = label != NULL};
	*slot = (uint32_t)++s->n_entries;
	return set_grow(s);
}

typedef int (*scan_fn)(struct redis_state *s, const char *pat, const char *key, size_t len,
                       void *ctx);

/* SCAN MATCH pat over the whole keyspace, calling fn for each key found. */
static int scan_keys(struct redis_state *s, const char *pat, scan_fn fn, void *ctx,
                     struct sm_error *reterr)
{
	char cursor[32] = "0";
	int r = 0;

	do {
		redisReply *reply = NULL;
		const redisReply *keys;

		r = command(s, &reply, reterr, "SCAN %s MATCH %b COUNT %lld", cursor, pat,
		            strlen(pat), (long long)s->cfg->scan_count);
		if (r < 0)
			return r;
		if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
		    reply->element[0]->type != REDIS_REPLY_STRING ||
		    reply->element[0]->len >= sizeof(cursor) ||
		    reply->element[1]->type != REDIS_REPLY_ARRAY) {
			r = fail_reply(s, error_code(reply), reterr, "SCAN", reply);
			freeReplyObject(reply);
			return r;
		}
		memcpy(cursor, reply->element[0]->str, reply->element[0]->len);
		cursor[reply->element[0]->len] = '\0';
		keys = reply->element[1];
		for (size_t i = 0; i < keys->elements && r >= 0; i++) {
			const redisReply *k = keys->element[i];

			if (k->type != REDIS_REPLY_STRING)
				continue;
			r = fn(s, pat, k->str, k->len, ctx);
		}
		freeReplyObject(reply);
		if (r < 0)
			return r;
	} while (strcmp(cursor, "0") != 0);
	return 0;
}

static int add_scanned_key(struct redis_state *s, const char *pat, const char *key, size_t len,
                           void *ctx)
{
	size_t rule = *(const size_t *)ctx;
	const char *label;
	size_t label_len;

	if (label_for(s, pat, key, len, &label, &label_len) < 0)
		return -ENOMEM;
	return add_key(s, rule, key, len, label, label_len);
}

/* A queue name from a marker key: what the glob's first '*' matched. */
static int add_scanned_name(struct redis_state *s, const char *pat, const char *key, size_t len,
                            void *ctx)
{
	struct capture caps[1];
	size_t budget = 100000;

	(void)s;
	if (!glob_match(pat, strlen(pat), key, len, caps, 1, &budget))
		return 0;
	return names_push(ctx, caps[0].p, caps[0].len);
}

static int add_found_key(struct redis_state *s, const char *pat, const char *key, size_t len,
                         void *ctx)
{
	(void)s;
	(void)pat;
	return names_push(ctx, key, len);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* SMEMBERS of each key, pipelined; each member through member_to_name. */
static int read_members(struct redis_state *s, const struct names *keys, const char *strip,
                        bool kombu, struct names *out, struct sm_error *reterr)
{
	size_t i = 0;

	while (i < keys->n) {
		size_t first = i, n;

		for (; i < keys->n && i - first < PIPELINE_BATCH; i++)
			if (redisAppendCommand(s->ctx, "SMEMBERS %s", keys->v[i]) != REDIS_OK)
				return fail_ctx(s, errno, false, reterr);
		n = i - first;
		s->round_trips++;
		for (size_t j = 0; j < n; j++) {
			redisReply *reply = NULL;
			int r = 0;

			if (redisGetReply(s->ctx, (void **)&reply) != REDIS_OK || !reply)
				return fail_ctx(s, errno, false, reterr);
			if (reply->type == REDIS_REPLY_ERROR &&
			    strncmp(reply->str, "WRONGTYPE", 9) == 0) {
				note(s, reterr, keys->v[first + j],
				     "queue index '%s' is not a set; ignored", keys->v[first + j]);
				if (!s->names_error[0])
					snprintf(s->names_error, sizeof(s->names_error),
					         "queue index '%s' is not a set",
					         keys->v[first + j]);
			} else if (reply->type != REDIS_REPLY_ARRAY) {
				r = fail_reply(s, error_code(reply), reterr, "SMEMBERS", reply);
				freeReplyObject(reply);
				return r;
			}
			for (size_t k = 0;
			     r >= 0 && reply->type == REDIS_REPLY_ARRAY && k < reply->elements;
			     k++) {
				const redisReply *m = reply->element[k];
				const char *name = m->str;
				size_t len = m->len;

				if (m->type != REDIS_REPLY_STRING)
					continue;
				if (kombu) {
					if (!sm_redis_kombu_queue(m->str, m->len, &name, &len))
						continue;
				} else if (strip && len > strlen(strip) &&
				           memcmp(name, strip, strlen(strip)) == 0) {
					name += strlen(strip);
					len -= strlen(strip);
				}
				if (len > 0)
					r = names_push(out, name, len);
			}
			freeReplyObject(reply);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* The queue names of a preset rule's group, once per round. */
static int discover_names(struct redis_state *s, const struct redis_rule *rule,
                          struct sm_error *reterr)
{
	struct names *out = &s->names;
	struct names found = {0};
	size_t w = 0;
	int r = 0;

	if (s->names_valid && s->names_group == rule->group)
		return 0;
	names_clear(out);
	s->names_valid = false;
	s->names_error[0] = '\0';
	switch (rule->discover) {
	case REDIS_DISCOVER_SET:
		for (size_t i = 0; i < rule->index.n && r >= 0; i++)
			r = names_push(&found, rule->index.v[i], strlen(rule->index.v[i]));
		if (r >= 0)
			r = read_members(s, &found, rule->member_prefix, false, out, reterr);
		break;
	case REDIS_DISCOVER_SCAN:
		for (size_t i = 0; i < rule->index.n && r >= 0; i++)
			r = scan_keys(s, rule->index.v[i], add_scanned_name, out, reterr);
		break;
	case REDIS_DISCOVER_KOMBU:
		for (size_t i = 0; i < rule->index.n && r >= 0; i++)
			r = scan_keys(s, rule->index.v[i], add_found_key, &found, reterr);
		if (r >= 0)
			r = read_members(s, &found, NULL, true, out, reterr);
		break;
	default:
		break;
	}
	for (size_t i = 0; i < rule->names.n && r >= 0; i++)
		r = names_push(out, rule->names.v[i], strlen(rule->names.v[i]));
	names_clear(&found);
	free(found.v);
	if (r < 0)
		return r;
	if (out->n > 1)
		qsort(out->v, out->n, sizeof(*out->v), cmp_str);
	for (size_t i = 0; i < out->n; i++) {
		if (w > 0 && strcmp(out->v[w - 1], out->v[i]) == 0)
			free(out->v[i]);
		else
			out->v[w++] = out->v[i];
	}
	out->n = w;
	s->names_group = rule->group;
	s->names_valid = true;
	return 0;
}

/* tmpl with every "{token}" replaced by value. */
static char *expand(const char *tmpl, const char *token, const char *value, size_t *ret_len)
{
	size_t tl = strlen(token), vl = strlen(value), n = 0, len = 0;
	const char *t;
	char *out, *o;

	for (t = strstr(tmpl, token); t; t = strstr(t + tl, token))
		n++;
	out = malloc(strlen(tmpl) + n * vl + 1);
	if (!out)
		return NULL;
	o = out;
	for (t = tmpl; *t;) {
		if (n > 0 && strncmp(t, token, tl) == 0) {
			memcpy(o, value, vl);
			o += vl;
			t += tl;
		} else {
			*o++ = *t++;
		}
	}
	*o = '\0';
	len = (size_t)(o - out);
	if (ret_len)
		*ret_len = len;
	return out;
}

static int collect_keys(struct redis_state *s, size_t ri, struct sm_error *reterr)
{
	const struct redis_rule *rule = &s->cfg->rules.v[ri];
	int r = 0;

	if (rule->discover == REDIS_DISCOVER_KEYS) {
		for (size_t k = 0; k < rule->keys.n && r >= 0; k++) {
			const char *pat = rule->keys.v[k];

			if (!rule->literal && sm_redis_pattern_is_glob(pat)) {
				r = scan_keys(s, pat, add_scanned_key, &ri, reterr);
				continue;
			}
			r = add_key(s, ri, pat, strlen(pat), rule->label ? pat : NULL, strlen(pat));
		}
		return r;
	}
	r = discover_names(s, rule, reterr);
	if (r >= 0 && s->names_error[0]) {
		s->rule_errors[ri] = strdup(s->names_error);
		if (!s->rule_errors[ri])
			return -ENOMEM;
	}
	for (size_t i = 0; i < s->names.n && r >= 0; i++) {
		/* All keys of a queue or none: a partial sum would be a wrong number. */
		if (s->n_entries + rule->keys.n > s->src->max_series) {
			s->overflow += rule->keys.n;
			continue;
		}
		for (size_t k = 0; k < rule->keys.n && r >= 0; k++) {
			size_t len;
			char *key = expand(rule->keys.v[k], "{name}", s->names.v[i], &len);

			if (!key)
				return -ENOMEM;
			r = add_key(s, ri, key, len, rule->label ? s->names.v[i] : NULL,
			            strlen(s->names.v[i]));
			free(key);
		}
	}
	return r;
}

/* ---- pipelined reads ---- */

static int next_reply(struct redis_state *s, redisReply **ret, struct sm_error *reterr)
{
	redisReply *reply = NULL;

	if (redisGetReply(s->ctx, (void **)&reply) != REDIS_OK || !reply)
		return fail_ctx(s, errno, false, reterr);
	*ret = reply;
	return 0;
}

static bool needs_type(const struct redis_state *s, const struct entry *e)
{
	return e->type == REDIS_KEY_AUTO || s->cfg->rules.v[e->rule].optional;
}

/* TYPE for each entry of an auto or optional rule, in batches of PIPELINE_BATCH. */
static int resolve_types(struct redis_state *s, struct sm_error *reterr)
{
	size_t idx[PIPELINE_BATCH];
	size_t i = 0;

	while (i < s->n_entries) {
		size_t n = 0;

		for (; i < s->n_entries && n < PIPELINE_BATCH; i++) {
			struct entry *e = &s->entries[i];

			if (!needs_type(s, e))
				continue;
			if (redisAppendCommand(s->ctx, "TYPE %b", e->key, e->key_len) != REDIS_OK)
				return fail_ctx(s, errno, false, reterr);
			idx[n++] = i;
		}
		if (n == 0)
			break;
		s->round_trips++;
		for (size_t j = 0; j < n; j++) {
			struct entry *e = &s->entries[idx[j]];
			const struct redis_rule *rule = &s->cfg->rules.v[e->rule];
			redisReply *reply = NULL;
			int t, r;

			r = next_reply(s, &reply, reterr);
			if (r < 0)
				return r;
			if (reply->type != REDIS_REPLY_STATUS) {
				r = fail_reply(s, error_code(reply), reterr, "TYPE", reply);
				freeReplyObject(reply);
				return r;
			}
			for (t = REDIS_KEY_AUTO + 1; t < REDIS_KEY_TYPE_MAX; t++)
				if (strcmp(reply->str, sm_redis_key_type_names[t]) == 0)
					break;
			if (strcmp(reply->str, "none") == 0) {
				/* Missing: an empty queue (0), or no series for an optional key. */
				e->value = 0;
				e->ready = true;
				e->skip = rule->optional;
				if (e->type == REDIS_KEY_AUTO)
					e->type = REDIS_KEY_TYPE_MAX;
			} else if (t == REDIS_KEY_TYPE_MAX) {
				fail_entry(
				    s, reterr, e, "skipped",
				    "key '%s' is a %s, not a list, zset, set, stream or hash",
				    e->key, reply->str);
			} else if (e->type != REDIS_KEY_AUTO && e->type != t) {
				fail_entry(s, reterr, e, "skipped", "key '%s' is a %s, not a %s",
				           e->key, reply->str, sm_redis_key_type_names[e->type]);
			} else {
				e->type = (int8_t)t;
			}
			freeReplyObject(reply);
		}
	}
	return 0;
}

/* The dequeue counter key of e's series, or NULL (no counter); *ret_err -ENOMEM. */
static char *counter_key(const struct redis_rule *rule, const struct entry *e)
{
	char token[80];

	if (!rule->derived || !rule->dequeue_counter)
		return NULL;
	if (!rule->label)
		return strdup(rule->dequeue_counter);
	snprintf(token, sizeof(token), "{%s}", rule->label);
	return expand(rule->dequeue_counter, token, e->has_label ? entry_label(e) : "", NULL);
}

/* How many commands append_reads queues for e. */
static size_t reads_needed(const struct redis_state *s, const struct entry *e)
{
	const struct redis_rule *rule = &s->cfg->rules.v[e->rule];
	size_t n = 1;

	if (rule->read == REDIS_READ_LENGTH && e->type == REDIS_KEY_STREAM)
		n++;
	if (rule->derived && rule->dequeue_counter)
		n++;
	return n;
}

/* Queues the commands of one entry; returns how many, or a failure. */
static int append_reads(struct redis_state *s, struct entry *e, struct sm_error *reterr)
{
	const struct redis_rule *rule = &s->cfg->rules.v[e->rule];
	char *ckey;
	int n = 1, r;

	switch (rule->read) {
	case REDIS_READ_DUE_BULLMQ:
		r = redisAppendCommand(s->ctx, "ZCOUNT %b -inf %s", e->key, e->key_len, s->due_max);
		break;
	case REDIS_READ_OLDEST_SIDEKIQ:
		r = redisAppendCommand(s->ctx, "LINDEX %b -1", e->key, e->key_len);
		break;
	default:
		r = redisAppendCommand(s->ctx, "%s %b", length_commands[e->type], e->key,
		                       e->key_len);
		if (r == REDIS_OK && e->type == REDIS_KEY_STREAM) {
			r = redisAppendCommand(s->ctx, "XINFO GROUPS %b", e->key, e->key_len);
			n++;
		}
		break;
	}
	if (r != REDIS_OK)
		return fail_ctx(s, errno, false, reterr);
	ckey = counter_key(rule, e);
	if (ckey) {
		r = redisAppendCommand(s->ctx, "GET %s", ckey);
		free(ckey);
		if (r != REDIS_OK)
			return fail_ctx(s, errno, false, reterr);
		n++;
	}
	return n;
}

static bool is_wrongtype(const redisReply *reply)
{
	return reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "WRONGTYPE", 9) == 0;
}

static const redisReply *map_get(const redisReply *m, const char *field)
{
	for (size_t i = 0; i + 1 < m->elements; i += 2)
		if (m->element[i]->type == REDIS_REPLY_STRING &&
		    strcmp(m->element[i]->str, field) == 0)
			return m->element[i + 1];
	return NULL;
}

/* XINFO GROUPS (RESP2: each group a flat name/value array). */
static int take_groups(struct redis_state *s, struct entry *e, const redisReply *reply,
                       struct sm_error *reterr)
{
	struct extra *x;

	if (reply->type != REDIS_REPLY_ARRAY) {
		note(s, reterr, e->key, "stream '%s': XINFO GROUPS failed: %s; no group series",
		     e->key, reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
		return 0;
	}
	if (reply->elements == 0)
		return 0;
	x = entry_extra(s, e);
	if (!x)
		return -ENOMEM;
	x->groups = calloc(reply->elements, sizeof(*x->groups));
	if (!x->groups)
		return -ENOMEM;
	for (size_t i = 0; i < reply->elements; i++) {
		const redisReply *g = reply->element[i];
		const redisReply *name, *pending, *lag;
		struct group_stat *gs;

		if (g->type != REDIS_REPLY_ARRAY)
			continue;
		name = map_get(g, "name");
		pending = map_get(g, "pending");
		lag = map_get(g, "lag");
		if (!name || name->type != REDIS_REPLY_STRING || !pending ||
		    pending->type != REDIS_REPLY_INTEGER)
			continue;
		gs = &x->groups[x->n_groups];
		gs->name = strndup(name->str, name->len);
		if (!gs->name)
			return -ENOMEM;
		x->n_groups++;
		gs->pending = (double)pending->integer;
		if (lag && lag->type == REDIS_REPLY_INTEGER) {
			gs->lag = (double)lag->integer;
			gs->has_lag = true;
		} else if (lag) {
			note(s, reterr, e->key,
			     "stream '%s' group '%s': Redis cannot tell the lag (XINFO GROUPS says "
			     "nil: entries were deleted or trimmed past the group's position, or "
			     "its last-delivered-id was set by hand); no kind=lag series until it "
			     "can",
			     e->key, gs->name);
		} else {
			note(s, reterr, e->key,
			     "stream '%s' group '%s': XINFO GROUPS has no lag (Redis < 7); no "
			     "kind=lag series",
			     e->key, gs->name);
		}
	}
	return 0;
}

static int set_counter(struct redis_state *s, struct entry *e, double v)
{
	struct extra *x = entry_extra(s, e);

	if (!x)
		return -ENOMEM;
	x->counter = v;
	x->has_counter = true;
	return 0;
}

/* Takes the replies of one entry's commands, in order. */
static int take_reads(struct redis_state *s, struct entry *e, struct sm_error *reterr)
{
	const struct redis_rule *rule = &s->cfg->rules.v[e->rule];
	redisReply *reply = NULL;
	char err[200];
	int r;

	r = next_reply(s, &reply, reterr);
	if (r < 0)
		return r;
	if (is_wrongtype(reply)) {
		fail_entry(s, reterr, e, "skipped", "key '%s' is not a %s", e->key,
		           rule->read == REDIS_READ_LENGTH       ? sm_redis_key_type_names[e->type]
		           : rule->read == REDIS_READ_DUE_BULLMQ ? "zset"
		                                                 : "list");
	} else if (rule->read == REDIS_READ_OLDEST_SIDEKIQ && reply->type == REDIS_REPLY_NIL) {
		e->value = 0; /* empty queue: no latency, as Sidekiq's Queue#latency says */
	} else if (rule->read == REDIS_READ_OLDEST_SIDEKIQ && reply->type == REDIS_REPLY_STRING) {
		if (sm_redis_sidekiq_age(reply->str, reply->len, s->now_wall_ms, &e->value, err,
		                         sizeof(err)) < 0)
			fail_entry(s, reterr, e, "no latency series",
			           "queue '%s': the oldest job: %s", e->key, err);
	} else if (reply->type == REDIS_REPLY_INTEGER && rule->read != REDIS_READ_OLDEST_SIDEKIQ) {
		e->value = (double)reply->integer;
		e->stream = rule->read == REDIS_READ_LENGTH && e->type == REDIS_KEY_STREAM;
	} else {
		r = fail_reply(s, error_code(reply), reterr,
		               rule->read == REDIS_READ_LENGTH       ? length_commands[e->type]
		               : rule->read == REDIS_READ_DUE_BULLMQ ? "ZCOUNT"
		                                                     : "LINDEX",
		               reply);
		freeReplyObject(reply);
		return r;
	}
	freeReplyObject(reply);
	reply = NULL;

	if (rule->read == REDIS_READ_LENGTH && e->type == REDIS_KEY_STREAM) {
		r = next_reply(s, &reply, reterr);
		if (r < 0)
			return r;
		if (!e->skip)
			r = take_groups(s, e, reply, reterr);
		freeReplyObject(reply);
		reply = NULL;
		if (r < 0)
			return r;
	}
	if (rule->derived && rule->dequeue_counter) {
		r = next_reply(s, &reply, reterr);
		if (r < 0)
			return r;
		if (reply->type == REDIS_REPLY_STRING) {
			char buf[64];
			double v;

			snprintf(buf, sizeof(buf), "%.*s", (int)reply->len, reply->str);
			if (sm_number_parse_double(buf, &v) == 0)
				r = set_counter(s, e, v);
		} else if (reply->type == REDIS_REPLY_INTEGER) {
			r = set_counter(s, e, (double)reply->integer);
		}
		freeReplyObject(reply);
	}
	return r;
}

static int read_values(struct redis_state *s, struct sm_error *reterr)
{
	size_t idx[PIPELINE_BATCH];
	size_t i = 0;

	while (i < s->n_entries) {
		size_t n = 0, cmds = 0;

		for (; i < s->n_entries; i++) {
			struct entry *e = &s->entries[i];
			int k;

			if (e->skip || e->ready)
				continue;
			if (cmds + reads_needed(s, e) > PIPELINE_BATCH)
				break;
			k = append_reads(s, e, reterr);
			if (k < 0)
				return k;
			cmds += (size_t)k;
			idx[n++] = i;
		}
		if (n == 0)
			break;
		s->round_trips++;
		for (size_t j = 0; j < n; j++) {
			int r = take_reads(s, &s->entries[idx[j]], reterr);

			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* ---- series ---- */

/* The object name: the template with "{label}" replaced by the served label value. */
static char *object_name(const struct redis_rule *r, const char *value)
{
	char clean[64];
	char token[80];

	sm_label_value_sanitize(value, clean);
	snprintf(token, sizeof(token), "{%s}", r->label);
	return expand(r->object.name, token, clean, NULL);
}

static int cmp_entry(const void *a, const void *b)
{
	const struct entry *x = *(const struct entry *const *)a;
	const struct entry *y = *(const struct entry *const *)b;
	int c;

	if (x->rule != y->rule)
		return x->rule < y->rule ? -1 : 1;
	c = strcmp(x->has_label ? entry_label(x) : "", y->has_label ? entry_label(y) : "");
	if (c != 0)
		return c;
	if (x->key_len != y->key_len)
		return x->key_len < y->key_len ? -1 : 1;
	return memcmp(x->key, y->key, x->key_len);
}

static bool same_series(const struct entry *x, const struct entry *y)
{
	return x->rule == y->rule &&
	       strcmp(x->has_label ? entry_label(x) : "", y->has_label ? entry_label(y) : "") == 0;
}

/* -E2BIG (max_series: the batch counts it) and -EINVAL (a value the batch refuses) drop
 * that one series; only -ENOMEM ends the round. */
static int add_series(struct sm_batch *batch, const struct sm_series_in *in)
{
	int r = sm_batch_add(batch, in);

	return r == -ENOMEM ? r : 0;
}

struct group_out {
	const struct redis_rule *rule;
	size_t rule_idx;
	const char *label;
	struct sm_label labels[3];
	struct sm_object_ref obj;
	char *obj_name;
};

static int emit_one(struct sm_batch *batch, struct group_out *g, const char *metric, double value,
                    const char *kind, const char *group, uint32_t window_s)
{
	struct sm_series_in in = {
	    .metric = metric, .labels = g->labels, .value = value, .window_s = window_s};
	size_t n = 0;

	if (g->label)
		g->labels[n++] = (struct sm_label){.name = g->rule->label, .value = g->label};
	if (kind)
		g->labels[n++] = (struct sm_label){.name = "kind", .value = kind};
	if (group)
		g->labels[n++] = (struct sm_label){.name = "group", .value = group};
	in.n_labels = n;
	if (g->obj_name)
		in.object = &g->obj;
	return add_series(batch, &in);
}

/* The series of g (and its derived ones) could not be read: why, for queries to say so.
 * partial: labels beyond g's are not known (a stream's kind and group, every queue of a rule
 * whose queue names could not be read). */
static int emit_failure(struct sm_batch *batch, struct group_out *g, bool partial,
                        const char *error)
{
	const struct redis_rule *rule = g->rule;
	const char *metrics[] = {rule->metric, rule->growth_metric, rule->drain_metric};
	struct sm_series_in in = {.labels = g->labels};
	int r = 0;

	if (g->label) {
		g->labels[0] = (struct sm_label){.name = rule->label, .value = g->label};
		in.n_labels = 1;
	}
	if (g->obj_name)
		in.object = &g->obj;
	for (size_t i = 0; i < (rule->derived ? 3u : 1u) && r >= 0; i++) {
		in.metric = metrics[i];
		in.window_s = i > 0 ? (uint32_t)(rule->window_ms / 1000) : 0;
		r = sm_batch_add_failure(batch, &in, partial, error);
		/* -E2BIG is counted as dropped, -EINVAL cannot be: only -ENOMEM ends the round. */
		if (r != -ENOMEM)
			r = 0;
	}
	return r;
}

/* A rule whose queue names could not all be discovered: any of its queues may be missing, so
 * each of its metrics is a failure that stands for every queue (partial labels). */
static int emit_rule_failure(struct sm_batch *batch, const struct redis_rule *rule,
                             const char *error)
{
	struct group_out g = {.rule = rule};

	/* No label and no object: the query layer takes it as any queue's and any object's. */
	return emit_failure(batch, &g, true, error);
}

/* One series per (rule, label value): keys that give the same value (two globs, a glob and
 * an exact key, a Celery queue and its priority lists) are summed (latencies: the largest),
 * so a label never names two series. Streams give kind=length/lag/pending series. */
static int emit(struct redis_state *s, struct sm_batch *batch, int64_t now_mono_ms)
{
	struct entry **ord;
	size_t i = 0;
	int r = 0;

	for (size_t ri = 0; ri < s->cfg->rules.n && r >= 0; ri++)
		if (s->rule_errors[ri])
			r = emit_rule_failure(batch, &s->cfg->rules.v[ri], s->rule_errors[ri]);
	if (s->n_entries == 0 || r < 0)
		return r;
	/* Sorting pointers: an entry is ~100 bytes. */
	ord = malloc(s->n_entries * sizeof(*ord));
	if (!ord)
		return -ENOMEM;
	for (size_t k = 0; k < s->n_entries; k++)
		ord[k] = &s->entries[k];
	qsort(ord, s->n_entries, sizeof(*ord), cmp_entry);
	while (i < s->n_entries && r >= 0) {
		const struct entry *first = ord[i];
		const struct redis_rule *rule = &s->cfg->rules.v[first->rule];
		const char *label = entry_label(first);
		struct group_out g = {.rule = rule, .rule_idx = first->rule, .label = label};
		bool max = rule->read == REDIS_READ_OLDEST_SIDEKIQ;
		bool any = false, any_stream = false, has_counter = false;
		double sum = 0, ssum = 0, counter = 0;
		const struct entry *failed = NULL;
		size_t end = i;

		for (; end < s->n_entries && same_series(ord[end], first); end++) {
			const struct entry *e = ord[end];
			const struct extra *x = entry_extra_get(s, e);

			if (e->failed && !failed)
				failed = e;
			if (e->skip)
				continue;
			if (x && x->has_counter && !has_counter) {
				has_counter = true;
				counter = x->counter;
			}
			if (e->stream) {
				any_stream = true;
				ssum += e->value;
			} else if (max) {
				sum = any && sum > e->value ? sum : e->value;
				any = true;
			} else {
				sum += e->value;
				any = true;
			}
		}
		if (rule->has_object && rule->label && label) {
			g.obj_name = object_name(rule, label);
			if (!g.obj_name) {
				r = -ENOMEM;
				break;
			}
			g.obj = (struct sm_object_ref){.resource = rule->object.resource,
			                               .name = g.obj_name};
		}
		/* One key of the series not read: any sum of the others would be a wrong number. */
		if (failed) {
			const struct extra *x = entry_extra_get(s, failed);

			r = emit_failure(batch, &g, rule->type == REDIS_KEY_STREAM,
			                 x && x->error ? x->error : "could not be read");
			any = any_stream = false;
		}
		if (any) {
			r = emit_one(batch, &g, rule->metric, sum, NULL, NULL, 0);
			if (r >= 0 && rule->derived) {
				double growth, drain;
				int k = sm_redis_history_update(
				    s->history, rule, first->rule, label ? label : "", now_mono_ms,
				    sum, has_counter, counter, &growth, &drain);
				uint32_t w = (uint32_t)(rule->window_ms / 1000);

				if (k < 0)
					r = k;
				else if (k == 0) {
					r = emit_one(batch, &g, rule->growth_metric, growth, NULL,
					             NULL, w);
					if (r >= 0)
						r = emit_one(batch, &g, rule->drain_metric, drain,
						             NULL, NULL, w);
				}
			}
		}
		if (any_stream && r >= 0)
			r = emit_one(batch, &g, rule->metric, ssum, "length", NULL, 0);
		for (size_t k = i; any_stream && k < end && r >= 0; k++) {
			const struct entry *e = ord[k];
			const struct extra *x = entry_extra_get(s, e);

			for (size_t j = 0; x && !e->skip && j < x->n_groups && r >= 0; j++) {
				const struct group_stat *gs = &x->groups[j];

				if (gs->has_lag)
					r = emit_one(batch, &g, rule->metric, gs->lag, "lag",
					             gs->name, 0);
				if (r >= 0)
					r = emit_one(batch, &g, rule->metric, gs->pending,
					             "pending", gs->name, 0);
			}
		}
		free(g.obj_name);
		i = end;
	}
	free(ord);
	return r;
}

/* One round on a connected context. The batch is only touched once all I/O is done. */
static int read_round(struct redis_state *s, struct sm_batch *batch, struct sm_error *reterr)
{
	const struct redis_config *c = s->cfg;
	int64_t now_mono = sm_time_mono_ms();
	int r;

	entries_clear(s);
	s->overflow = 0;
	s->n_notes = 0;
	s->more[0] = '\0';
	s->names_valid = false;
	s->now_wall_ms = sm_time_wall_ms();
	/* BullMQ delayed scores are timestamp_ms * 0x1000 + a 12-bit counter. */
	snprintf(s->due_max, sizeof(s->due_max), "%lld",
	         (long long)s->now_wall_ms * 4096LL + 4095LL);
	if (c->has_sentinel && !s->role_checked) {
		r = check_role(s, reterr);
		if (r < 0)
			goto out;
	}
	s->role_checked = false; /* checked again at the start of the next round */
	for (size_t ri = 0; ri < c->rules.n; ri++) {
		r = set_reset(s);
		if (r < 0)
			goto out;
		r = collect_keys(s, ri, reterr);
		if (r < 0)
			goto out;
	}
	r = resolve_types(s, reterr);
	if (r < 0)
		goto out;
	r = read_values(s, reterr);
	if (r < 0)
		goto out;
	r = emit(s, batch, now_mono);
	if (r < 0)
		goto out;
	if (s->max_window_ms > 0)
		sm_redis_history_sweep(s->history, now_mono,
		                       s->max_window_ms + 3 * s->src->interval_ms);
	/* Keys beyond max_series were never stored: the batch counts them as dropped, so the
	 * store's series_dropped and the scheduler's warning include them, and no query takes
	 * a queue that was not read for an empty one. */
	sm_batch_add_dropped(batch, s->overflow);
	if (s->overflow > 0) {
		char first[sizeof(reterr->message)];

		memcpy(first, reterr->message, sizeof(first));
		sm_error_set(
		    reterr,
		    "max_series (%u) reached: %zu more keys matched and were not read%s%.300s",
		    s->src->max_series, s->overflow, first[0] ? "; " : "", first);
	} else if (s->n_notes > 0) {
		size_t used = strlen(reterr->message);

		snprintf(reterr->message + used, sizeof(reterr->message) - used,
		         " (and %zu more: %s)", s->n_notes, s->more);
	}
out:
	s->entries_hint = s->n_entries > 64 ? s->n_entries : 64;
	release_scratch(s);
	if (r == -ENOMEM)
		sm_error_set(reterr, "out of memory");
	return r;
}

static int redis_collect(void *state, struct sm_batch *batch, struct sm_error *reterr)
{
	struct redis_state *s = state;
	bool reused = s->ctx != NULL;
	int r;

	sm_error_clear(reterr);
	if (s->password_r < 0) {
		sm_error_set(reterr, "%s", s->password_error);
		return s->password_r;
	}
	r = ensure_connected(s, reterr);
	if (r < 0)
		return r;
	r = read_round(s, batch, reterr);
	/* A kept connection may have been closed meanwhile (server restart, its idle `timeout`,
	 * a failover demoting it): that is no reason to fail the round, one fresh connection
	 * (through the sentinels, if configured) is. */
	if (reused && (r == -EPIPE || r == -ECONNRESET || r == -EIO || r == -EAGAIN)) {
		disconnect(s);
		sm_error_clear(reterr);
		r = ensure_connected(s, reterr);
		if (r < 0)
			return r;
		r = read_round(s, batch, reterr);
	}
	return r;
}

uint64_t sm_redis_round_trips(const void *state)
{
	return ((const struct redis_state *)state)->round_trips;
}

const struct sm_source_ops sm_source_redis = {
    .type = "redis",
    .config_parse = sm_redis_config_parse,
    .config_free = sm_redis_config_free,
    .create = redis_create,
    .collect = redis_collect,
    .destroy = redis_destroy,
};
