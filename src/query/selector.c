/* SPDX-License-Identifier: MIT */
/* Kubernetes label selectors: a faithful port of labels.Parse (lexer, parser, validation,
 * error texts), matching and the canonical String() form. docs/api.md "Label selectors".
 * One file on purpose (about 850 lines): it follows apimachinery's labels/selector.go
 * function by function, so the two can be read side by side when Kubernetes changes. */
#include "scalemetrics/selector.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/number.h"
#include "scalemetrics/series.h"

#define LABEL_NAME_MAX   63
#define LABEL_VALUE_MAX  63
#define LABEL_PREFIX_MAX 253

struct sm_selector {
	size_t n;
	struct sm_selector_requirement reqs[];
	/* then: the value pointer arrays, then every key and value string, in one block */
};

enum token_kind {
	TOKEN_END,
	TOKEN_CLOSE_PAREN,
	TOKEN_COMMA,
	TOKEN_NOT,
	TOKEN_DOUBLE_EQUALS,
	TOKEN_EQUALS,
	TOKEN_GREATER_THAN,
	TOKEN_IDENTIFIER,
	TOKEN_IN,
	TOKEN_LESS_THAN,
	TOKEN_NOT_EQUALS,
	TOKEN_NOT_IN,
	TOKEN_OPEN_PAREN,
};

/* A piece of the input text: a token's literal, a key or a value. */
struct slice {
	size_t start;
	size_t len;
};

struct token {
	enum token_kind kind;
	struct slice text;
};

/* A requirement while parsing: its values are values[first_value .. first_value + n_values). */
struct pending {
	struct slice key;
	enum sm_selector_op op;
	size_t first_value;
	size_t n_values;
	size_t index; /* parse order, for a stable sort */
};

struct parser {
	const char *text;
	struct token *tokens;
	size_t n_tokens, cap_tokens, pos;
	struct pending *reqs;
	size_t n_reqs, cap_reqs;
	struct slice *values;
	size_t n_values, cap_values;
	struct sm_error *reterr;
};

static bool is_whitespace(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_special(char c)
{
	return c == '=' || c == '!' || c == '(' || c == ')' || c == ',' || c == '>' || c == '<';
}

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Grows *array (of *cap elements of size elem) to hold one more than n. */
static int grow(void **array, size_t *cap, size_t n, size_t elem)
{
	size_t new_cap;
	void *p;

	if (n < *cap)
		return 0;
	new_cap = *cap ? *cap * 2 : 16;
	if (new_cap > SIZE_MAX / elem)
		return -ENOMEM;
	p = realloc(*array, new_cap * elem);
	if (!p)
		return -ENOMEM;
	*array = p;
	*cap = new_cap;
	return 0;
}

/* The whole input as tokens, ending with TOKEN_END, like Go's Parser.scan(). Special symbols
 * are matched greedily ("!=", "=="); "in" and "notin" are keywords only as whole words. */
static int lex(struct parser *p)
{
	const char *s = p->text;
	size_t i = 0;

	for (;;) {
		struct token t = {.kind = TOKEN_END};
		int r;

		while (is_whitespace(s[i]))
			i++;
		t.text.start = i;
		if (s[i] == '\0') {
			t.kind = TOKEN_END;
		} else if (is_special(s[i])) {
			char c = s[i++];

			t.text.len = 1;
			if ((c == '!' || c == '=') && s[i] == '=') {
				t.kind = c == '!' ? TOKEN_NOT_EQUALS : TOKEN_DOUBLE_EQUALS;
				t.text.len = 2;
				i++;
			} else if (c == '!') {
				t.kind = TOKEN_NOT;
			} else if (c == '=') {
				t.kind = TOKEN_EQUALS;
			} else if (c == '(') {
				t.kind = TOKEN_OPEN_PAREN;
			} else if (c == ')') {
				t.kind = TOKEN_CLOSE_PAREN;
			} else if (c == ',') {
				t.kind = TOKEN_COMMA;
			} else if (c == '>') {
				t.kind = TOKEN_GREATER_THAN;
			} else {
				t.kind = TOKEN_LESS_THAN;
			}
		} else {
			while (s[i] != '\0' && !is_special(s[i]) && !is_whitespace(s[i]))
				i++;
			t.text.len = i - t.text.start;
			if (t.text.len == 2 && memcmp(s + t.text.start, "in", 2) == 0)
				t.kind = TOKEN_IN;
			else if (t.text.len == 5 && memcmp(s + t.text.start, "notin", 5) == 0)
				t.kind = TOKEN_NOT_IN;
			else
				t.kind = TOKEN_IDENTIFIER;
		}
		r = grow((void **)&p->tokens, &p->cap_tokens, p->n_tokens, sizeof(*p->tokens));
		if (r < 0)
			return r;
		p->tokens[p->n_tokens++] = t;
		if (t.kind == TOKEN_END)
			return 0;
	}
}

/* Where a key or value is expected, the keywords are plain identifiers (Go's "Values"
 * context): "in=notin" and "x in (in)" are valid. */
static enum token_kind as_value(enum token_kind k)
{
	return k == TOKEN_IN || k == TOKEN_NOT_IN ? TOKEN_IDENTIFIER : k;
}

static const struct token *peek(const struct parser *p)
{
	return &p->tokens[p->pos];
}

static const struct token *next(struct parser *p)
{
	const struct token *t = &p->tokens[p->pos];

	/* TOKEN_END is sticky: never step past it. */
	if (t->kind != TOKEN_END)
		p->pos++;
	return t;
}

/* Sets the error text: the message, then the 1-based byte position in the selector. */
static int fail(struct parser *p, size_t at, const char *fmt, ...) SM_PRINTF(3, 4);
static int fail(struct parser *p, size_t at, const char *fmt, ...)
{
	char msg[sizeof(p->reterr->message)];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sm_error_set(p->reterr, "%s (at position %zu)", msg, at + 1);
	return -EINVAL;
}

static int fail_found(struct parser *p, const struct token *t, const char *expected)
{
	return fail(p, t->text.start, "found '%.*s', expected: %s", (int)t->text.len,
	            p->text + t->text.start, expected);
}

/* ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9], the name and value syntax. */
static bool is_qualified_name_part(const char *s, size_t n)
{
	if (n == 0 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
		return false;
	for (size_t i = 1; i + 1 < n; i++)
		if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return false;
	return true;
}

/* DNS-1123 subdomain: lowercase labels [a-z0-9]([-a-z0-9]*[a-z0-9])? joined by '.'. */
static bool is_dns1123_subdomain(const char *s, size_t n)
{
	size_t label_start = 0;

	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != '.') {
			bool lower_alnum =
			    (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9');

			if (!lower_alnum && s[i] != '-')
				return false;
			continue;
		}
		/* end of a label: non-empty, alphanumeric at both ends */
		if (i == label_start || s[label_start] == '-' || s[i - 1] == '-')
			return false;
		label_start = i + 1;
	}
	return true;
}

#define NAME_SYNTAX                                                                                \
	"must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "   \
	"an alphanumeric character"

/* IsQualifiedName: writes Go's messages, joined by "; ", into msg; true when valid. */
static bool check_key(const char *s, size_t n, char *msg, size_t len)
{
	const char *slash = memchr(s, '/', n);
	const char *name = s;
	size_t name_len = n, used = 0;

	msg[0] = '\0';
	if (slash && memchr(slash + 1, '/', n - (size_t)(slash + 1 - s))) {
		(void)snprintf(msg, len,
		               "a qualified name " NAME_SYNTAX
		               ", with an optional DNS subdomain prefix and '/' (e.g. "
		               "'example.com/MyName')");
		return false;
	}
	if (slash) {
		size_t prefix_len = (size_t)(slash - s);

		name = slash + 1;
		name_len = n - prefix_len - 1;
		if (prefix_len == 0)
			used += (size_t)snprintf(msg + used, len - used,
			                         "prefix part must be non-empty");
		else if (prefix_len > LABEL_PREFIX_MAX)
			used += (size_t)snprintf(msg + used, len - used,
			                         "prefix part must be no more than %d characters",
			                         LABEL_PREFIX_MAX);
		else if (!is_dns1123_subdomain(s, prefix_len))
			used += (size_t)snprintf(
			    msg + used, len - used,
			    "prefix part a lowercase RFC 1123 subdomain must consist of lower case "
			    "alphanumeric characters, '-' or '.', and must start and end with an "
			    "alphanumeric character");
	}
	if (used >= len)
		used = len - 1;
	if (name_len == 0)
		used += (size_t)snprintf(msg + used, len - used, "%sname part must be non-empty",
		                         used ? "; " : "");
	else if (name_len > LABEL_NAME_MAX)
		used += (size_t)snprintf(msg + used, len - used,
		                         "%sname part must be no more than %d characters",
		                         used ? "; " : "", LABEL_NAME_MAX);
	if (used >= len)
		used = len - 1;
	if (!is_qualified_name_part(name, name_len))
		used += (size_t)snprintf(msg + used, len - used, "%sname part " NAME_SYNTAX,
		                         used ? "; " : "");
	return used == 0;
}

static bool check_value(const char *s, size_t n, char *msg, size_t len)
{
	msg[0] = '\0';
	if (n > LABEL_VALUE_MAX) {
		(void)snprintf(msg, len, "must be no more than %d characters", LABEL_VALUE_MAX);
		return false;
	}
	if (n > 0 && !is_qualified_name_part(s, n)) {
		(void)snprintf(msg, len, "a valid label must be an empty string or " NAME_SYNTAX);
		return false;
	}
	return true;
}

bool sm_label_key_is_valid(const char *key)
{
	char msg[256];

	return key && check_key(key, strlen(key), msg, sizeof(msg));
}

bool sm_label_value_is_valid(const char *value)
{
	char msg[256];

	return value && check_value(value, strlen(value), msg, sizeof(msg));
}

static int add_value(struct parser *p, struct pending *req, struct slice v)
{
	int r = grow((void **)&p->values, &p->cap_values, p->n_values, sizeof(*p->values));

	if (r < 0)
		return r;
	p->values[p->n_values++] = v;
	req->n_values++;
	return 0;
}

/* parseKeyAndInferOperator: ["!"] KEY, then EXISTS / DOES_NOT_EXIST when nothing follows. */
static int parse_key(struct parser *p, struct pending *req, bool *ret_unary)
{
	const struct token *t = next(p);
	char msg[400];
	bool negated = false;
	enum token_kind k;

	if (t->kind == TOKEN_NOT) {
		negated = true;
		t = next(p);
	}
	if (as_value(t->kind) != TOKEN_IDENTIFIER)
		return fail_found(p, t, "identifier");
	if (!check_key(p->text + t->text.start, t->text.len, msg, sizeof(msg)))
		return fail(p, t->text.start, "invalid label key \"%.*s\": %s", (int)t->text.len,
		            p->text + t->text.start, msg);
	req->key = t->text;
	k = as_value(peek(p)->kind);
	if (negated) {
		req->op = SM_SELECTOR_OP_DOES_NOT_EXIST;
		*ret_unary = true;
	} else if (k == TOKEN_END || k == TOKEN_COMMA) {
		req->op = SM_SELECTOR_OP_EXISTS;
		*ret_unary = true;
	} else {
		*ret_unary = false;
	}
	return 0;
}

static int parse_operator(struct parser *p, struct pending *req)
{
	const struct token *t = next(p);

	switch (t->kind) {
	case TOKEN_IN:
		req->op = SM_SELECTOR_OP_IN;
		return 0;
	case TOKEN_NOT_IN:
		req->op = SM_SELECTOR_OP_NOT_IN;
		return 0;
	case TOKEN_EQUALS:
		req->op = SM_SELECTOR_OP_EQUALS;
		return 0;
	case TOKEN_DOUBLE_EQUALS:
		req->op = SM_SELECTOR_OP_DOUBLE_EQUALS;
		return 0;
	case TOKEN_NOT_EQUALS:
		req->op = SM_SELECTOR_OP_NOT_EQUALS;
		return 0;
	case TOKEN_GREATER_THAN:
		req->op = SM_SELECTOR_OP_GREATER_THAN;
		return 0;
	case TOKEN_LESS_THAN:
		req->op = SM_SELECTOR_OP_LESS_THAN;
		return 0;
	default:
		return fail_found(p, t, "in, notin, =, ==, !=, gt, lt");
	}
}

/* parseIdentifiersList: the inside of "( ... )", empty elements allowed as in Go. */
static int parse_value_list(struct parser *p, struct pending *req)
{
	for (;;) {
		const struct token *t = next(p);
		const struct token *la;
		int r;

		if (as_value(t->kind) == TOKEN_IDENTIFIER) {
			r = add_value(p, req, t->text);
			if (r < 0)
				return r;
			la = peek(p);
			if (la->kind == TOKEN_COMMA)
				continue;
			if (la->kind == TOKEN_CLOSE_PAREN)
				return 0;
			return fail_found(p, la, "',' or ')'");
		}
		if (t->kind != TOKEN_COMMA)
			return fail_found(p, t, "',', or identifier");
		/* "(," "a,)" "a,,b": the missing elements are empty values */
		la = peek(p);
		if (req->n_values == 0) {
			r = add_value(p, req, (struct slice){.start = t->text.start});
			if (r < 0)
				return r;
		}
		if (la->kind == TOKEN_CLOSE_PAREN)
			return add_value(p, req, (struct slice){.start = la->text.start});
		if (la->kind == TOKEN_COMMA) {
			next(p);
			r = add_value(p, req, (struct slice){.start = la->text.start});
			if (r < 0)
				return r;
		}
	}
}

/* parseValues: "(" list ")". "()" is the set {""}. */
static int parse_values(struct parser *p, struct pending *req)
{
	const struct token *t = next(p);
	const struct token *la;
	int r;

	if (t->kind != TOKEN_OPEN_PAREN)
		return fail_found(p, t, "'('");
	la = peek(p);
	switch (as_value(la->kind)) {
	case TOKEN_IDENTIFIER:
	case TOKEN_COMMA:
		r = parse_value_list(p, req);
		if (r < 0)
			return r;
		t = next(p);
		if (t->kind != TOKEN_CLOSE_PAREN)
			return fail_found(p, t, "')'");
		return 0;
	case TOKEN_CLOSE_PAREN:
		next(p);
		return add_value(p, req, (struct slice){.start = la->text.start});
	default:
		return fail_found(p, la, "',', ')' or identifier");
	}
}

/* parseExactValue: one identifier, or nothing (the empty value) before ',' or the end. */
static int parse_exact_value(struct parser *p, struct pending *req)
{
	const struct token *t = peek(p);

	if (t->kind == TOKEN_END || t->kind == TOKEN_COMMA)
		return add_value(p, req, (struct slice){.start = t->text.start});
	t = next(p);
	if (as_value(t->kind) == TOKEN_IDENTIFIER)
		return add_value(p, req, t->text);
	return fail_found(p, t, "identifier");
}

/* NewRequirement's checks on the values. */
static int check_values(struct parser *p, const struct pending *req)
{
	char msg[300];

	for (size_t i = 0; i < req->n_values; i++) {
		struct slice v = p->values[req->first_value + i];
		const char *s = p->text + v.start;

		if (req->op == SM_SELECTOR_OP_GREATER_THAN || req->op == SM_SELECTOR_OP_LESS_THAN) {
			char buf[32];
			int64_t n;

			if (v.len >= sizeof(buf))
				return fail(p, v.start,
				            "invalid value \"%.*s\": for 'gt', 'lt' operators, the "
				            "value must be an integer",
				            (int)v.len, s);
			memcpy(buf, s, v.len);
			buf[v.len] = '\0';
			if (sm_number_parse_int64(buf, &n) < 0)
				return fail(p, v.start,
				            "invalid value \"%.*s\": for 'gt', 'lt' operators, the "
				            "value must be an integer",
				            (int)v.len, s);
		}
		if (!check_value(s, v.len, msg, sizeof(msg)))
			return fail(p, v.start, "invalid label value \"%.*s\": %s", (int)v.len, s,
			            msg);
	}
	return 0;
}

static int parse_requirement(struct parser *p, struct pending *req)
{
	bool unary = false;
	int r;

	r = parse_key(p, req, &unary);
	if (r < 0 || unary)
		return r;
	r = parse_operator(p, req);
	if (r < 0)
		return r;
	if (req->op == SM_SELECTOR_OP_IN || req->op == SM_SELECTOR_OP_NOT_IN)
		r = parse_values(p, req);
	else
		r = parse_exact_value(p, req);
	if (r < 0)
		return r;
	return check_values(p, req);
}

static int parse_all(struct parser *p)
{
	for (;;) {
		const struct token *t = peek(p);
		struct pending req = {0};
		int r;

		if (t->kind == TOKEN_END)
			return 0;
		if (as_value(t->kind) != TOKEN_IDENTIFIER && t->kind != TOKEN_NOT)
			return fail_found(p, t, "!, identifier, or 'end of string'");
		req.first_value = p->n_values;
		req.index = p->n_reqs;
		r = parse_requirement(p, &req);
		if (r < 0)
			return r;
		r = grow((void **)&p->reqs, &p->cap_reqs, p->n_reqs, sizeof(*p->reqs));
		if (r < 0)
			return r;
		p->reqs[p->n_reqs++] = req;

		t = next(p);
		if (t->kind == TOKEN_END)
			return 0;
		if (t->kind != TOKEN_COMMA)
			return fail_found(p, t, "',' or 'end of string'");
		t = peek(p);
		if (as_value(t->kind) != TOKEN_IDENTIFIER && t->kind != TOKEN_NOT)
			return fail_found(p, t, "identifier after ','");
	}
}

static int compare_slices(const char *text, struct slice a, struct slice b)
{
	size_t n = a.len < b.len ? a.len : b.len;
	int c = memcmp(text + a.start, text + b.start, n);

	if (c != 0)
		return c;
	return (a.len > b.len) - (a.len < b.len);
}

/* qsort has no context argument; the text is carried beside each element instead. */
struct sort_item {
	const char *text;
	struct slice s;
	size_t index;
};

static int compare_items(const void *a, const void *b)
{
	const struct sort_item *x = a, *y = b;
	int c = compare_slices(x->text, x->s, y->s);

	if (c != 0)
		return c;
	return (x->index > y->index) - (x->index < y->index);
}

/* Sorts the requirements by key (stable) and each value set (deduplicated). */
static int normalise(struct parser *p)
{
	size_t n_items = p->n_reqs > p->n_values ? p->n_reqs : p->n_values;
	struct sort_item *items = NULL;
	struct pending *sorted = NULL;
	int r = -ENOMEM;

	if (n_items == 0)
		return 0;
	items = calloc(n_items, sizeof(*items));
	sorted = calloc(p->n_reqs ? p->n_reqs : 1, sizeof(*sorted));
	if (!items || !sorted)
		goto out;

	for (size_t i = 0; i < p->n_reqs; i++) {
		struct pending *req = &p->reqs[i];
		size_t kept = 0;

		for (size_t j = 0; j < req->n_values; j++)
			items[j] = (struct sort_item){
			    .text = p->text, .s = p->values[req->first_value + j], .index = j};
		qsort(items, req->n_values, sizeof(*items), compare_items);
		for (size_t j = 0; j < req->n_values; j++) {
			if (kept > 0 && compare_slices(p->text, items[j].s,
			                               p->values[req->first_value + kept - 1]) == 0)
				continue;
			p->values[req->first_value + kept++] = items[j].s;
		}
		req->n_values = kept;
	}

	for (size_t i = 0; i < p->n_reqs; i++)
		items[i] = (struct sort_item){.text = p->text, .s = p->reqs[i].key, .index = i};
	qsort(items, p->n_reqs, sizeof(*items), compare_items);
	for (size_t i = 0; i < p->n_reqs; i++)
		sorted[i] = p->reqs[items[i].index];
	memcpy(p->reqs, sorted, p->n_reqs * sizeof(*sorted));
	r = 0;
out:
	free(sorted);
	free(items);
	return r;
}

/* One allocation: header, requirements, value pointer arrays, then the strings. */
static int build(const struct parser *p, struct sm_selector **ret)
{
	size_t size =
	    sizeof(struct sm_selector) + p->n_reqs * sizeof(struct sm_selector_requirement);
	size_t n_ptrs = 0;
	struct sm_selector *s;
	const char **ptrs;
	char *chars;

	for (size_t i = 0; i < p->n_reqs; i++) {
		n_ptrs += p->reqs[i].n_values;
		size += p->reqs[i].key.len + 1;
		for (size_t j = 0; j < p->reqs[i].n_values; j++)
			size += p->values[p->reqs[i].first_value + j].len + 1;
	}
	size += n_ptrs * sizeof(char *);
	s = malloc(size);
	if (!s)
		return -ENOMEM;
	s->n = p->n_reqs;
	ptrs = (const char **)(void *)&s->reqs[p->n_reqs];
	chars = (char *)(ptrs + n_ptrs);
	for (size_t i = 0; i < p->n_reqs; i++) {
		const struct pending *req = &p->reqs[i];
		struct sm_selector_requirement *out = &s->reqs[i];

		memcpy(chars, p->text + req->key.start, req->key.len);
		chars[req->key.len] = '\0';
		out->key = chars;
		chars += req->key.len + 1;
		out->op = req->op;
		out->n_values = req->n_values;
		out->values = req->n_values ? ptrs : NULL;
		for (size_t j = 0; j < req->n_values; j++) {
			struct slice v = p->values[req->first_value + j];

			memcpy(chars, p->text + v.start, v.len);
			chars[v.len] = '\0';
			*ptrs++ = chars;
			chars += v.len + 1;
		}
	}
	*ret = s;
	return 0;
}

int sm_selector_parse(const char *text, struct sm_selector **ret, struct sm_error *reterr)
{
	struct parser p = {.text = text ? text : "", .reterr = reterr};
	struct sm_selector *s = NULL;
	int r;

	r = lex(&p);
	if (r < 0)
		goto out;
	r = parse_all(&p);
	if (r < 0)
		goto out;
	r = normalise(&p);
	if (r < 0)
		goto out;
	r = build(&p, &s);
	if (r < 0)
		goto out;
	*ret = s;
out:
	if (r == -ENOMEM)
		sm_error_set(reterr, "out of memory parsing a label selector");
	free(p.values);
	free(p.reqs);
	free(p.tokens);
	return r;
}

void sm_selector_free(struct sm_selector *s)
{
	free(s);
}

bool sm_selector_is_empty(const struct sm_selector *s)
{
	return !s || s->n == 0;
}

size_t sm_selector_count(const struct sm_selector *s)
{
	return s ? s->n : 0;
}

const struct sm_selector_requirement *sm_selector_get(const struct sm_selector *s, size_t i)
{
	if (!s || i >= s->n)
		return NULL;
	return &s->reqs[i];
}

static const char *find_label(const struct sm_label *labels, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (labels[i].name && strcmp(labels[i].name, name) == 0)
			return labels[i].value ? labels[i].value : "";
	return NULL;
}

static bool has_value(const struct sm_selector_requirement *r, const char *v)
{
	for (size_t i = 0; i < r->n_values; i++)
		if (strcmp(r->values[i], v) == 0)
			return true;
	return false;
}

static bool requirement_matches(const struct sm_selector_requirement *r,
                                const struct sm_label *labels, size_t n)
{
	const char *v = find_label(labels, n, r->key);
	int64_t have, want;

	switch (r->op) {
	case SM_SELECTOR_OP_EQUALS:
	case SM_SELECTOR_OP_DOUBLE_EQUALS:
	case SM_SELECTOR_OP_IN:
		return v && has_value(r, v);
	case SM_SELECTOR_OP_NOT_EQUALS:
	case SM_SELECTOR_OP_NOT_IN:
		return !v || !has_value(r, v);
	case SM_SELECTOR_OP_EXISTS:
		return v != NULL;
	case SM_SELECTOR_OP_DOES_NOT_EXIST:
		return v == NULL;
	case SM_SELECTOR_OP_GREATER_THAN:
	case SM_SELECTOR_OP_LESS_THAN:
		if (!v || r->n_values != 1 || sm_number_parse_int64(v, &have) < 0 ||
		    sm_number_parse_int64(r->values[0], &want) < 0)
			return false;
		return r->op == SM_SELECTOR_OP_GREATER_THAN ? have > want : have < want;
	default:
		return false;
	}
}

bool sm_selector_matches(const struct sm_selector *s, const struct sm_label *labels, size_t n)
{
	if (!s)
		return true;
	for (size_t i = 0; i < s->n; i++)
		if (!requirement_matches(&s->reqs[i], labels, n))
			return false;
	return true;
}

bool sm_selector_may_match(const struct sm_selector *s, const struct sm_label *labels, size_t n)
{
	if (!s)
		return true;
	for (size_t i = 0; i < s->n; i++)
		if (find_label(labels, n, s->reqs[i].key) &&
		    !requirement_matches(&s->reqs[i], labels, n))
			return false;
	return true;
}

struct out {
	char *buf;
	size_t len;
	size_t cap;
};

static void out_str(struct out *o, const char *s)
{
	size_t n = strlen(s);

	if (o->len + 1 < o->cap) {
		size_t room = o->cap - o->len - 1;

		memcpy(o->buf + o->len, s, n < room ? n : room);
	}
	o->len += n;
}

static const char *const op_text[] = {
    [SM_SELECTOR_OP_EQUALS] = "=",        [SM_SELECTOR_OP_DOUBLE_EQUALS] = "==",
    [SM_SELECTOR_OP_NOT_EQUALS] = "!=",   [SM_SELECTOR_OP_IN] = " in ",
    [SM_SELECTOR_OP_NOT_IN] = " notin ",  [SM_SELECTOR_OP_EXISTS] = "",
    [SM_SELECTOR_OP_DOES_NOT_EXIST] = "", [SM_SELECTOR_OP_GREATER_THAN] = ">",
    [SM_SELECTOR_OP_LESS_THAN] = "<",
};
_Static_assert(sizeof(op_text) / sizeof(op_text[0]) == SM_SELECTOR_OP_MAX,
               "op_text must have SM_SELECTOR_OP_MAX entries");

size_t sm_selector_format(const struct sm_selector *s, char *buf, size_t len)
{
	struct out o = {.buf = buf, .cap = len};

	for (size_t i = 0; s && i < s->n; i++) {
		const struct sm_selector_requirement *r = &s->reqs[i];
		bool set = r->op == SM_SELECTOR_OP_IN || r->op == SM_SELECTOR_OP_NOT_IN;

		if (i > 0)
			out_str(&o, ",");
		if (r->op == SM_SELECTOR_OP_DOES_NOT_EXIST)
			out_str(&o, "!");
		out_str(&o, r->key);
		if (r->op < 0 || r->op >= SM_SELECTOR_OP_MAX)
			continue;
		out_str(&o, op_text[r->op]);
		if (r->op == SM_SELECTOR_OP_EXISTS || r->op == SM_SELECTOR_OP_DOES_NOT_EXIST)
			continue;
		if (set)
			out_str(&o, "(");
		for (size_t j = 0; j < r->n_values; j++) {
			if (j > 0)
				out_str(&o, ",");
			out_str(&o, r->values[j]);
		}
		if (set)
			out_str(&o, ")");
	}
	if (len > 0)
		buf[o.len < len ? o.len : len - 1] = '\0';
	return o.len;
}
