/* SPDX-License-Identifier: MIT */
/* Error detail that travels beside negative errno returns: one message plus an optional
 * file position, and a growable list of them for "report every error at once". */
#include "scalemetrics/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sm_error_set(struct sm_error *e, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
}

void sm_error_clear(struct sm_error *e)
{
	if (!e)
		return;
	memset(e, 0, sizeof(*e));
}

int sm_error_list_add(struct sm_error_list *l, const struct sm_error *e)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		struct sm_error *items;

		if (cap > SIZE_MAX / sizeof(*items))
			return -ENOMEM;
		items = realloc(l->items, cap * sizeof(*items));
		if (!items)
			return -ENOMEM;
		l->items = items;
		l->cap = cap;
	}
	l->items[l->n++] = *e;
	return 0;
}

void sm_error_list_done(struct sm_error_list *l)
{
	if (!l)
		return;
	free(l->items);
	l->items = NULL;
	l->n = 0;
	l->cap = 0;
}

void sm_error_format(const struct sm_error *e, char *buf, size_t len)
{
	if (!buf || len == 0)
		return;
	if (!e) {
		buf[0] = '\0';
		return;
	}
	if (e->file[0] == '\0')
		(void)snprintf(buf, len, "%s", e->message);
	else if (e->line == 0)
		(void)snprintf(buf, len, "%s: %s", e->file, e->message);
	else if (e->column == 0)
		(void)snprintf(buf, len, "%s:%u: %s", e->file, e->line, e->message);
	else
		(void)snprintf(buf, len, "%s:%u:%u: %s", e->file, e->line, e->column, e->message);
}
