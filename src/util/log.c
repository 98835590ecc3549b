/* SPDX-License-Identifier: MIT */
/* Structured logging to stderr, one line per event, logfmt or JSON. Each line is formatted
 * completely in memory and handed to a single write(), so concurrent threads never interleave
 * within a line. */
#include "scalemetrics/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Longest message kept; longer ones are cut (and marked with "..."). */
#define MESSAGE_MAX 16384

_Atomic(enum sm_log_level) sm_log_level_current = SM_LOG_INFO;

/* Set at start and by config reloads (sm_log_setup); atomic, like the level, so changing it
 * while other threads log is race-free. */
static _Atomic int log_format = SM_LOG_FORMAT_LOGFMT;

static const char *const level_names[] = {
    [SM_LOG_ERROR] = "error",
    [SM_LOG_WARN] = "warn",
    [SM_LOG_INFO] = "info",
    [SM_LOG_DEBUG] = "debug",
};
_Static_assert(sizeof(level_names) / sizeof(level_names[0]) == SM_LOG_LEVEL_MAX,
               "level_names must have SM_LOG_LEVEL_MAX entries");

static const char *const format_names[] = {
    [SM_LOG_FORMAT_LOGFMT] = "logfmt",
    [SM_LOG_FORMAT_JSON] = "json",
};
_Static_assert(sizeof(format_names) / sizeof(format_names[0]) == SM_LOG_FORMAT_MAX,
               "format_names must have SM_LOG_FORMAT_MAX entries");

void sm_log_setup(enum sm_log_level level, enum sm_log_format format)
{
	if (level >= 0 && level < SM_LOG_LEVEL_MAX)
		atomic_store(&sm_log_level_current, level);
	if (format >= 0 && format < SM_LOG_FORMAT_MAX)
		atomic_store(&log_format, (int)format);
}

enum sm_log_level sm_log_level_from_string(const char *s)
{
	if (!s)
		return SM_LOG_LEVEL_INVALID;
	for (int i = 0; i < SM_LOG_LEVEL_MAX; i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return (enum sm_log_level)i;
	if (strcasecmp(s, "warning") == 0)
		return SM_LOG_WARN;
	return SM_LOG_LEVEL_INVALID;
}

const char *sm_log_level_to_string(enum sm_log_level l)
{
	if (l < 0 || l >= SM_LOG_LEVEL_MAX)
		return NULL;
	return level_names[l];
}

enum sm_log_format sm_log_format_from_string(const char *s)
{
	if (!s)
		return SM_LOG_FORMAT_INVALID;
	for (int i = 0; i < SM_LOG_FORMAT_MAX; i++)
		if (strcasecmp(s, format_names[i]) == 0)
			return (enum sm_log_format)i;
	return SM_LOG_FORMAT_INVALID;
}

const char *sm_log_format_to_string(enum sm_log_format f)
{
	if (f < 0 || f >= SM_LOG_FORMAT_MAX)
		return NULL;
	return format_names[f];
}

/* A bounded output buffer; writes past the end are counted but dropped. */
struct out {
	char *buf;
	size_t len;
	size_t cap;
};

static void out_bytes(struct out *o, const char *s, size_t n)
{
	if (o->len < o->cap) {
		size_t room = o->cap - o->len;

		memcpy(o->buf + o->len, s, n < room ? n : room);
	}
	o->len += n;
}

static void out_str(struct out *o, const char *s)
{
	out_bytes(o, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not valid UTF-8. */
static size_t utf8_len(const unsigned char *s)
{
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (s[0] >= 0xe0 && s[0] <= 0xef) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if (s[0] == 0xe0 && s[1] < 0xa0)
			return 0; /* overlong */
		if (s[0] == 0xed && s[1] >= 0xa0)
			return 0; /* surrogate */
		return 3;
	}
	if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
			return 0;
		if (s[0] == 0xf0 && s[1] < 0x90)
			return 0; /* overlong */
		if (s[0] == 0xf4 && s[1] >= 0x90)
			return 0; /* above U+10FFFF */
		return 4;
	}
	return 0;
}

/* The inside of a double-quoted string with JSON escapes, valid in both JSON and logfmt:
 * quote, backslash and control characters escaped, invalid UTF-8 replaced by U+FFFD. */
static void out_escaped(struct out *o, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		size_t n = utf8_len(p);

		if (*p == '"' || *p == '\\') {
			char esc[2] = {'\\', (char)*p};

			out_bytes(o, esc, 2);
		} else if (*p == '\n') {
			out_bytes(o, "\\n", 2);
		} else if (*p == '\r') {
			out_bytes(o, "\\r", 2);
		} else if (*p == '\t') {
			out_bytes(o, "\\t", 2);
		} else if (*p < 0x20 || *p == 0x7f) {
			char esc[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 0xf]};

			out_bytes(o, esc, 6);
		} else if (n == 0) {
			out_str(o, "\xef\xbf\xbd");
			n = 1;
		} else {
			out_bytes(o, (const char *)p, n);
			p += n;
			continue;
		}
		p++;
	}
}

static void out_quoted(struct out *o, const char *s)
{
	out_bytes(o, "\"", 1);
	out_escaped(o, s);
	out_bytes(o, "\"", 1);
}

static bool logfmt_plain(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p == '=' || *p == '"' || *p == '\\' || *p >= 0x7f)
			return false;
	return true;
}

/* logfmt values are bare when they are a plain token, else quoted. */
static void out_logfmt_value(struct out *o, const char *s)
{
	if (*s != '\0' && logfmt_plain(s))
		out_str(o, s);
	else
		out_quoted(o, s);
}

/* Microseconds as milliseconds with three decimals ("0.412"). */
static void out_millis(struct out *o, int64_t us)
{
	char buf[32];
	uint64_t u = us < 0 ? 0 - (uint64_t)us : (uint64_t)us;

	(void)snprintf(buf, sizeof(buf), "%s%" PRIu64 ".%03u", us < 0 ? "-" : "", u / 1000,
	               (unsigned)(u % 1000));
	out_str(o, buf);
}

static void out_int(struct out *o, int64_t v)
{
	char buf[32];

	(void)snprintf(buf, sizeof(buf), "%" PRId64, v);
	out_str(o, buf);
}

static bool field_present(const struct sm_log_field *f)
{
	switch (f->type) {
	case SM_LOG_FIELD_STRING:
		return f->str != NULL;
	case SM_LOG_FIELD_STRV:
		return f->n_strv > 0;
	case SM_LOG_FIELD_INT:
	case SM_LOG_FIELD_MILLIS:
		return true;
	case SM_LOG_FIELD_TYPE_MAX:
		break;
	}
	return false;
}

/* A list: in JSON an array of strings; in logfmt one value, the items joined by commas,
 * quoted unless every item is a plain token. */
static void out_strv(struct out *o, const struct sm_log_field *f, bool json)
{
	bool bare = !json;
	const char *open = "[", *close = "]";

	for (size_t i = 0; i < f->n_strv && bare; i++)
		bare = f->strv[i][0] != '\0' && logfmt_plain(f->strv[i]);
	if (!json)
		open = close = bare ? "" : "\"";
	out_str(o, open);
	for (size_t i = 0; i < f->n_strv; i++) {
		if (i > 0)
			out_str(o, ",");
		if (json)
			out_quoted(o, f->strv[i]);
		else
			out_escaped(o, f->strv[i]);
	}
	out_str(o, close);
}

/* One field after the message: `,"key":value` in JSON, ` key=value` in logfmt. Numbers are
 * written alike in both; strings and lists are where the formats differ. */
static void out_field(struct out *o, const struct sm_log_field *f, bool json)
{
	if (json) {
		out_str(o, ",");
		out_quoted(o, f->key);
		out_str(o, ":");
	} else {
		out_str(o, " ");
		out_str(o, f->key);
		out_str(o, "=");
	}
	switch (f->type) {
	case SM_LOG_FIELD_STRING:
		if (json)
			out_quoted(o, f->str);
		else
			out_logfmt_value(o, f->str);
		break;
	case SM_LOG_FIELD_INT:
		out_int(o, f->num);
		break;
	case SM_LOG_FIELD_MILLIS:
		out_millis(o, f->num);
		break;
	case SM_LOG_FIELD_STRV:
		out_strv(o, f, json);
		break;
	case SM_LOG_FIELD_TYPE_MAX:
		break;
	}
}

static void format_timestamp(char *buf, size_t len)
{
	struct timespec ts = {0};
	struct tm tm = {0};
	char date[32];

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	if (!gmtime_r(&ts.tv_sec, &tm) ||
	    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
		(void)snprintf(buf, len, "1970-01-01T00:00:00.000Z");
		return;
	}
	(void)snprintf(buf, len, "%s.%03ldZ", date, ts.tv_nsec / 1000000L);
}

static void write_all(const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDERR_FILENO, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		buf += n;
		len -= (size_t)n;
	}
}

void sm_log_fields(enum sm_log_level level, const char *ctx, const char *msg,
                   const struct sm_log_field *fields, size_t n_fields)
{
	char line_stack[4096];
	char *line_heap = NULL;
	struct out o = {.buf = line_stack, .cap = sizeof(line_stack)};
	const char *level_name = sm_log_level_to_string(level);
	char ts[48];

	if (!level_name)
		level_name = "unknown";
	format_timestamp(ts, sizeof(ts));

	/* Two passes at most: the second with a buffer of the exact size. */
	for (int pass = 0; pass < 2; pass++) {
		o.len = 0;
		if (atomic_load(&log_format) == SM_LOG_FORMAT_JSON) {
			out_str(&o, "{\"ts\":\"");
			out_str(&o, ts);
			out_str(&o, "\",\"level\":\"");
			out_str(&o, level_name);
			out_str(&o, "\"");
			if (ctx) {
				out_str(&o, ",\"ctx\":");
				out_quoted(&o, ctx);
			}
			out_str(&o, ",\"msg\":");
			out_quoted(&o, msg);
			for (size_t i = 0; i < n_fields; i++)
				if (field_present(&fields[i]))
					out_field(&o, &fields[i], true);
			out_str(&o, "}\n");
		} else {
			out_str(&o, "ts=");
			out_str(&o, ts);
			out_str(&o, " level=");
			out_str(&o, level_name);
			if (ctx) {
				out_str(&o, " ctx=");
				out_logfmt_value(&o, ctx);
			}
			out_str(&o, " msg=");
			out_quoted(&o, msg);
			for (size_t i = 0; i < n_fields; i++)
				if (field_present(&fields[i]))
					out_field(&o, &fields[i], false);
			out_str(&o, "\n");
		}
		if (o.len <= o.cap || pass == 1)
			break;
		line_heap = malloc(o.len);
		if (!line_heap)
			break;
		o.buf = line_heap;
		o.cap = o.len;
	}
	if (o.len > o.cap) {
		/* Out of memory for a long line: keep what fits, still one line. */
		o.len = o.cap;
		o.buf[o.len - 1] = '\n';
	}
	write_all(o.buf, o.len);
	free(line_heap);
}

void sm_log_write(enum sm_log_level level, const char *ctx, const char *fmt, ...)
{
	char msg_stack[1024];
	char *msg = msg_stack, *msg_heap = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg_stack, sizeof(msg_stack), fmt, ap);
	va_end(ap);
	if (n < 0) {
		msg = "(unformattable log message)";
	} else if ((size_t)n >= sizeof(msg_stack)) {
		size_t len = (size_t)n < MESSAGE_MAX ? (size_t)n + 1 : MESSAGE_MAX;

		msg_heap = malloc(len);
		if (msg_heap) {
			va_start(ap, fmt);
			(void)vsnprintf(msg_heap, len, fmt, ap);
			va_end(ap);
			if ((size_t)n >= len)
				memcpy(msg_heap + len - 4, "...", 4);
			msg = msg_heap;
		} else {
			memcpy(msg_stack + sizeof(msg_stack) - 4, "...", 4);
		}
	}
	sm_log_fields(level, ctx, msg, NULL, 0);
	free(msg_heap);
}
