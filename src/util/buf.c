/* SPDX-License-Identifier: MIT */
/* Growable, bounded byte buffers (buf.h). */
#include "scalemetrics/buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FIRST_CAP 256

int sm_buf_append(struct sm_buf *b, const void *p, size_t n)
{
	if (b->oom)
		return -ENOMEM;
	if (b->too_big || (b->max && n > b->max - b->len)) {
		b->too_big = true;
		return -EFBIG;
	}
	if (n > SIZE_MAX / 2 - 1 - b->len) {
		b->oom = true;
		return -ENOMEM;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : FIRST_CAP;
		char *d;

		while (cap < b->len + n + 1)
			cap *= 2;
		d = realloc(b->data, cap);
		if (!d) {
			b->oom = true;
			return -ENOMEM;
		}
		b->data = d;
		b->cap = cap;
	}
	if (n > 0) /* p may be NULL then */
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

void sm_buf_reset(struct sm_buf *b)
{
	b->len = 0;
	b->too_big = false;
	b->oom = false;
	if (b->data)
		b->data[0] = '\0';
}

int sm_buf_putc(struct sm_buf *b, char c)
{
	return sm_buf_append(b, &c, 1);
}

int sm_buf_puts(struct sm_buf *b, const char *s)
{
	return sm_buf_append(b, s, strlen(s));
}

size_t sm_buf_curl_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	size_t n = size * nmemb;

	return sm_buf_append(userdata, ptr, n) < 0 ? 0 : n;
}
