/* SPDX-License-Identifier: MIT */
#ifndef SM_ERROR_H
#define SM_ERROR_H

#include <stddef.h>

#define SM_MUSTCHECK    __attribute__((warn_unused_result))
#define SM_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Human-readable detail that travels beside a negative errno return: a config error
 * (file, line, column), a selector parse error, a collector round's last error. */
struct sm_error {
	char message[512];
	char file[256];  /* "" when not about a file */
	unsigned line;   /* 1-based; 0 when unknown */
	unsigned column; /* 1-based; 0 when unknown */
};

/* An accumulating list of errors, for "report every error at once" (config). */
struct sm_error_list {
	struct sm_error *items;
	size_t n;
	size_t cap;
};

/* Formats into e->message (truncating); file/line/column untouched. NULL e is a no-op. */
void sm_error_set(struct sm_error *e, const char *fmt, ...) SM_PRINTF(2, 3);
void sm_error_clear(struct sm_error *e);

/* Appends a copy of e; returns -ENOMEM only when out of memory. */
int sm_error_list_add(struct sm_error_list *l, const struct sm_error *e);
void sm_error_list_done(struct sm_error_list *l);

/* Writes "file:line:col: message" (or just "message" when no file) to buf. */
void sm_error_format(const struct sm_error *e, char *buf, size_t len);

#endif
