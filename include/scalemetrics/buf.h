/* SPDX-License-Identifier: MIT */
#ifndef SM_BUF_H
#define SM_BUF_H

#include <stdbool.h>
#include <stddef.h>

/* A growable byte buffer with an upper bound, always NUL-terminated once non-empty: what an
 * HTTP client collects a response body into, or a message or key is built in. Zero-initialise
 * it (set max), append, then free data (or take it). A failed append is sticky: later ones
 * do nothing and fail the same way, so a builder may append freely and check once. */
struct sm_buf {
	char *data; /* NULL until the first append */
	size_t len;
	size_t cap;
	size_t max;   /* bytes accepted at most; 0: no bound */
	bool too_big; /* an append would have passed max: nothing of it was kept */
	bool oom;     /* an append ran out of memory: nothing of it was kept */
};

/* 0, -EFBIG (too_big set; the buffer is unchanged) or -ENOMEM (oom set). */
int sm_buf_append(struct sm_buf *b, const void *p, size_t n);
int sm_buf_putc(struct sm_buf *b, char c);
/* Empties b for reuse, keeping its allocation and max, and clears a failure. */
void sm_buf_reset(struct sm_buf *b);
int sm_buf_puts(struct sm_buf *b, const char *s);

/* A libcurl CURLOPT_WRITEFUNCTION with a struct sm_buf as CURLOPT_WRITEDATA: a short count
 * (which makes curl fail the transfer) past max or out of memory. */
size_t sm_buf_curl_write(char *ptr, size_t size, size_t nmemb, void *userdata);

#endif
