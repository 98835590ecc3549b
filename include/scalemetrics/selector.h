/* SPDX-License-Identifier: MIT */
#ifndef SM_SELECTOR_H
#define SM_SELECTOR_H

#include <stdbool.h>
#include <stddef.h>

#include "scalemetrics/error.h"

struct sm_label;

/* Kubernetes label selectors, exactly labels.Parse (docs/api.md "Label selectors"). */

enum sm_selector_op {
	SM_SELECTOR_OP_EQUALS,         /* k=v */
	SM_SELECTOR_OP_DOUBLE_EQUALS,  /* k==v */
	SM_SELECTOR_OP_NOT_EQUALS,     /* k!=v */
	SM_SELECTOR_OP_IN,             /* k in (a,b) */
	SM_SELECTOR_OP_NOT_IN,         /* k notin (a,b) */
	SM_SELECTOR_OP_EXISTS,         /* k */
	SM_SELECTOR_OP_DOES_NOT_EXIST, /* !k */
	SM_SELECTOR_OP_GREATER_THAN,   /* k>5 */
	SM_SELECTOR_OP_LESS_THAN,      /* k<5 */
	SM_SELECTOR_OP_MAX,
	SM_SELECTOR_OP_INVALID = -1,
};

struct sm_selector_requirement {
	const char *key;
	enum sm_selector_op op;
	const char *const *values; /* sorted, unique; n_values == 0 for exists/!exists */
	size_t n_values;
};

struct sm_selector;

/* Parses text (NULL or "" or all-whitespace: the empty selector, matching everything).
 * Requirements come out sorted by key (stable). On error returns -EINVAL, fills reterr with
 * a message in the style of labels.Parse ("found ',', expected: ..."; "invalid label key
 * ..."), and leaves *ret untouched. -ENOMEM on allocation failure. */
int sm_selector_parse(const char *text, struct sm_selector **ret,
                      struct sm_error *reterr) SM_MUSTCHECK;
void sm_selector_free(struct sm_selector *s);

bool sm_selector_is_empty(const struct sm_selector *s); /* NULL counts as empty */
size_t sm_selector_count(const struct sm_selector *s);
const struct sm_selector_requirement *sm_selector_get(const struct sm_selector *s, size_t i);

/* labels: array of n (name, value) pairs, any order. NULL selector matches everything. */
bool sm_selector_matches(const struct sm_selector *s, const struct sm_label *labels, size_t n);
/* The same for labels known only in part (more may exist): a requirement on a key that labels
 * lack is taken as met. */
bool sm_selector_may_match(const struct sm_selector *s, const struct sm_label *labels, size_t n);

/* Canonical String() form (sorted, "k in (a,b)"), for logs and messages. Returns the length
 * that would have been written (snprintf semantics). */
size_t sm_selector_format(const struct sm_selector *s, char *buf, size_t len);

/* Validation helpers shared with the config (label names) and label value sanitising. */
bool sm_label_key_is_valid(const char *key); /* [prefix/]name */
bool sm_label_value_is_valid(const char *value);

#endif
