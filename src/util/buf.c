/* SPDX-License-Identifier: MIT */
/* Growable, bounded byte buffers (buf.h). */
#include "scalemetrics/buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FIRST_CAP 16384

int sm_buf_append(struct sm_buf *b, const void *p, size_t n)
{
	if (b->max && n > b->max - b->len) {
		b->too_big = true;
		return -EFBIG;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : FIRST_CAP;
		char *d;

		while (cap < b->len + n + 1)
			cap *= 2;
		d = realloc(b->data, cap);
		if (!d)
			return -ENOMEM;
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

size_t sm_buf_curl_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	size_t n = size * nmemb;

	return sm_buf_append(userdata, ptr, n) < 0 ? 0 : n;
}
