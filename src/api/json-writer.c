/* SPDX-License-Identifier: MIT */
/* A JSON writer for the metric lists: bytes appended straight into one growing buffer, with
 * strings escaped exactly as cJSON_PrintUnformatted escapes them, so the hot answers need no
 * tree. The first failed allocation frees the buffer and turns every later append into a
 * no-op; sm_api_jsonw_finish reports it once. */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api-internal.h"

static void fail(struct sm_api_jsonw *w)
{
	free(w->buf);
	*w = (struct sm_api_jsonw){.failed = true};
}

/* Room for n more bytes and the final NUL. */
static bool reserve(struct sm_api_jsonw *w, size_t n)
{
	size_t need, cap;
	char *p;

	if (w->failed)
		return false;
	if (w->cap - w->len > n)
		return true;
	if (n > SIZE_MAX / 2 - w->len) {
		fail(w);
		return false;
	}
	need = w->len + n + 1;
	cap = w->cap > SIZE_MAX / 4 ? need : w->cap * 2;
	if (cap < need)
		cap = need;
	p = realloc(w->buf, cap);
	if (!p) {
		fail(w);
		return false;
	}
	w->buf = p;
	w->cap = cap;
	return true;
}

void sm_api_jsonw_init(struct sm_api_jsonw *w, size_t cap_hint)
{
	*w = (struct sm_api_jsonw){0};
	if (cap_hint > 0)
		(void)reserve(w, cap_hint - 1);
}

void sm_api_jsonw_done(struct sm_api_jsonw *w)
{
	if (!w)
		return;
	free(w->buf);
	*w = (struct sm_api_jsonw){0};
}

void sm_api_jsonw_raw(struct sm_api_jsonw *w, const char *s, size_t n)
{
	if (!reserve(w, n))
		return;
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

void sm_api_jsonw_copy(struct sm_api_jsonw *w, struct sm_api_jsonw_span span)
{
	if (w->failed)
		return;
	assert(span.off <= w->len && span.len <= w->len - span.off);
	/* reserve may move the buffer: address the earlier bytes only after it. */
	if (!reserve(w, span.len))
		return;
	memcpy(w->buf + w->len, w->buf + span.off, span.len);
	w->len += span.len;
}

static bool needs_escape(unsigned char c)
{
	return c < 0x20 || c == '"' || c == '\\';
}

void sm_api_jsonw_string(struct sm_api_jsonw *w, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)(s ? s : "");
	size_t plain = 0, rest;
	char *o;

	while (u[plain] && !needs_escape(u[plain]))
		plain++;
	rest = u[plain] ? strlen((const char *)u + plain) : 0;
	/* Worst case: every byte after the plain run becomes \u00XX. */
	if (rest > (SIZE_MAX - 2 - plain) / 6) {
		fail(w);
		return;
	}
	if (!reserve(w, 2 + plain + 6 * rest))
		return;
	o = w->buf + w->len;
	*o++ = '"';
	memcpy(o, u, plain);
	o += plain;
	for (const unsigned char *p = u + plain; *p; p++) {
		unsigned char c = *p;

		if (!needs_escape(c)) {
			*o++ = (char)c;
			continue;
		}
		*o++ = '\\';
		switch (c) {
		case '"':
		case '\\':
			*o++ = (char)c;
			break;
		case '\b':
			*o++ = 'b';
			break;
		case '\f':
			*o++ = 'f';
			break;
		case '\n':
			*o++ = 'n';
			break;
		case '\r':
			*o++ = 'r';
			break;
		case '\t':
			*o++ = 't';
			break;
		default:
			/* cJSON's "u%04x": lower-case hex. */
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 0xf];
			break;
		}
	}
	*o++ = '"';
	w->len = (size_t)(o - w->buf);
}

void sm_api_jsonw_string_memo(struct sm_api_jsonw *w, struct sm_api_jsonw_memo *m, const char *s)
{
	size_t off = w->len;

	if (m->span.len > 0 && m->key == s) {
		sm_api_jsonw_copy(w, m->span);
		return;
	}
	sm_api_jsonw_string(w, s);
	m->key = s;
	m->span = (struct sm_api_jsonw_span){.off = off, .len = w->failed ? 0 : w->len - off};
}

void sm_api_jsonw_uint(struct sm_api_jsonw *w, uint64_t v)
{
	char digits[20];
	size_t n = sizeof(digits);

	do {
		digits[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	sm_api_jsonw_raw(w, digits + n, sizeof(digits) - n);
}

int sm_api_jsonw_finish(struct sm_api_jsonw *w, char **ret_body, size_t *ret_len)
{
	if (!reserve(w, 0))
		return -ENOMEM;
	w->buf[w->len] = '\0';
	*ret_body = w->buf;
	*ret_len = w->len;
	*w = (struct sm_api_jsonw){0};
	return 0;
}
