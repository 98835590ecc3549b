/* SPDX-License-Identifier: MIT */
/* One-placeholder name templates, expanded and matched (see the header). */
#include "scalemetrics/template.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

char *sm_template_expand(const char *tmpl, const char *token, const char *value, size_t *ret_len)
{
	size_t tl = strlen(token), vl = strlen(value), n = 0;
	const char *t;
	char *out, *o;

	for (t = tl ? strstr(tmpl, token) : NULL; t; t = strstr(t + tl, token))
		n++;
	out = malloc(strlen(tmpl) + n * vl + 1);
	if (!out)
		return NULL;
	for (o = out, t = tmpl; *t;) {
		if (n > 0 && strncmp(t, token, tl) == 0) {
			memcpy(o, value, vl);
			o += vl;
			t += tl;
		} else {
			*o++ = *t++;
		}
	}
	*o = '\0';
	if (ret_len)
		*ret_len = (size_t)(o - out);
	return out;
}

int sm_template_fit(const char *tmpl, const char *token, const char *name, size_t max_len,
                    char **ret)
{
	size_t tl = strlen(token), nl = strlen(name), fixed = strlen(tmpl), k = 0, vl, pos = 0;
	const char *t, *first = tl ? strstr(tmpl, token) : NULL;
	char *v;

	for (t = first; t; t = strstr(t + tl, token))
		k++;
	if (k == 0)
		return strcmp(tmpl, name) == 0 ? 0 : -1;
	fixed -= k * tl;
	if (nl <= fixed || (nl - fixed) % k != 0)
		return -1;
	vl = (nl - fixed) / k;
	if (vl > max_len)
		return -1;
	v = strndup(name + (first - tmpl), vl);
	if (!v)
		return -ENOMEM;
	/* Every literal part and every occurrence must line up. */
	for (t = tmpl; *t;) {
		if (strncmp(t, token, tl) == 0) {
			if (strncmp(name + pos, v, vl) != 0)
				goto no;
			pos += vl;
			t += tl;
		} else if (name[pos++] != *t++) {
			goto no;
		}
	}
	if (pos != nl)
		goto no;
	*ret = v;
	return 1;
no:
	free(v);
	return -1;
}
