/* SPDX-License-Identifier: MIT */
#ifndef SM_TEMPLATE_H
#define SM_TEMPLATE_H

#include <stddef.h>

/* Name templates with one placeholder ("{queue}", "{name}"), standing for the same value
 * wherever it occurs: the config's object names, key templates and counter keys. Both ways:
 * expanding a value into the template, and finding the value a name was expanded from. */

/* tmpl with every token replaced by value (its length in *ret_len when not NULL); NULL
 * when out of memory. */
char *sm_template_expand(const char *tmpl, const char *token, const char *value, size_t *ret_len);

/* Does name fit tmpl, token standing for one value (at most max_len bytes, not empty)
 * throughout? 1 with the value (a copy, *ret), 0 when tmpl has no token and is name, -1 when
 * it does not fit, -ENOMEM. */
int sm_template_fit(const char *tmpl, const char *token, const char *name, size_t max_len,
                    char **ret);

#endif
