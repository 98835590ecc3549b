/* SPDX-License-Identifier: MIT */
/* The Prometheus text exposition format 0.0.4, parsed line by line into samples handed to a
 * callback: names, escaped label values, special floats, optional timestamps. Pure: no I/O. */
#include "scalemetrics/promtext.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/number.h"

/*
 * Grammar (https://prometheus.io/docs/instrumenting/exposition_formats/), as the reference
 * Go parser reads it:
 *   line     = blank* ( comment | sample )? blank* '\r'? '\n'
 *   comment  = '#' blank* ( "HELP" blank+ name (blank+ docstring)? | "TYPE" blank+ name blank+
 *              type | anything )
 *   sample   = name blank* ( '{' labels '}' )? blank* value ( blank+ timestamp )?
 *              ( blank* '#' anything )?          (an exemplar: ignored)
 *   labels   = blank* ( lname blank* '=' blank* '"' escaped '"' blank* ( ',' blank* )? )*
 * Label values and HELP text know the escapes \\ \n (and \" in label values); any other
 * backslash sequence is an error. Where the format leaves room (a second TYPE line), this
 * parser is lenient; where a line cannot mean one thing, it is an error naming the line.
 */

#define SNIPPET_LEN 24

static const char *const type_names[] = {
    [SM_PROM_UNTYPED] = "untyped",     [SM_PROM_COUNTER] = "counter", [SM_PROM_GAUGE] = "gauge",
    [SM_PROM_HISTOGRAM] = "histogram", [SM_PROM_SUMMARY] = "summary", [SM_PROM_TYPE_MAX] = NULL,
};
_Static_assert(sizeof(type_names) / sizeof(type_names[0]) == SM_PROM_TYPE_MAX + 1, "type_names");

enum sm_prom_type sm_prom_type_from_string(const char *s)
{
	if (!s)
		return SM_PROM_TYPE_INVALID;
	for (int i = 0; i < SM_PROM_TYPE_MAX; i++)
		if (strcmp(type_names[i], s) == 0)
			return (enum sm_prom_type)i;
	return SM_PROM_TYPE_INVALID;
}

const char *sm_prom_type_to_string(enum sm_prom_type t)
{
	if (t < 0 || t >= SM_PROM_TYPE_MAX)
		return NULL;
	return type_names[t];
}

static bool is_name_start(char c, bool colon)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
}

static bool is_name_char(char c, bool colon)
{
	return is_name_start(c, colon) || (c >= '0' && c <= '9');
}

static bool name_is_valid(const char *s, bool colon)
{
	if (!s || !is_name_start(*s, colon))
		return false;
	for (s++; *s; s++)
		if (!is_name_char(*s, colon))
			return false;
	return true;
}

bool sm_promtext_metric_name_is_valid(const char *s)
{
	return name_is_valid(s, true);
}

bool sm_promtext_label_name_is_valid(const char *s)
{
	return name_is_valid(s, false);
}

struct parser {
	const char *p;   /* cursor in the current line */
	const char *end; /* end of the current line (no '\n', no trailing '\r') */
	unsigned line;
	char *scratch; /* names and unescaped values of the current line */
	size_t scratch_cap;
	size_t scratch_len;
	struct sm_label labels[SM_PROMTEXT_MAX_LABELS];
	/* The family named by the last TYPE line. */
	char *family;
	size_t family_cap;
	enum sm_prom_type family_type;
	struct sm_error *reterr;
};

static int fail(struct parser *ps, const char *fmt, ...) SM_PRINTF(2, 3);

static int fail(struct parser *ps, const char *fmt, ...)
{
	char what[400];
	char near[SNIPPET_LEN * 4 + 1];
	size_t n = 0;
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	/* A printable excerpt of what follows the position, for the human. */
	for (const char *c = ps->p; c < ps->end && n < SNIPPET_LEN; c++, n++)
		near[n] = (*c >= 0x20 && *c < 0x7f) ? *c : '?';
	near[n] = '\0';
	if (ps->reterr) {
		if (ps->p < ps->end)
			sm_error_set(ps->reterr, "line %u: %s near '%s'", ps->line, what, near);
		else
			sm_error_set(ps->reterr, "line %u: %s at end of line", ps->line, what);
		ps->reterr->line = ps->line;
	}
	return -EINVAL;
}

static bool at_blank(const struct parser *ps)
{
	return ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t');
}

static size_t skip_blanks(struct parser *ps)
{
	size_t n = 0;

	while (at_blank(ps)) {
		ps->p++;
		n++;
	}
	return n;
}

/* Appends len bytes plus a NUL to the line's scratch; capacity is ensured per line. */
static char *scratch_put(struct parser *ps, const char *s, size_t len)
{
	char *out = ps->scratch + ps->scratch_len;

	memcpy(out, s, len);
	out[len] = '\0';
	ps->scratch_len += len + 1;
	return out;
}

/* A name token at the cursor, copied to scratch; NULL if there is none. */
static const char *read_name(struct parser *ps, bool colon)
{
	const char *start = ps->p;

	if (ps->p >= ps->end || !is_name_start(*ps->p, colon))
		return NULL;
	while (ps->p < ps->end && is_name_char(*ps->p, colon))
		ps->p++;
	return scratch_put(ps, start, (size_t)(ps->p - start));
}

/* A token up to the next blank, copied to scratch. */
static const char *read_token(struct parser *ps)
{
	const char *start = ps->p;

	while (ps->p < ps->end && *ps->p != ' ' && *ps->p != '\t')
		ps->p++;
	return scratch_put(ps, start, (size_t)(ps->p - start));
}

/* A quoted label value (cursor on the opening quote), unescaped into scratch. */
static int read_label_value(struct parser *ps, const char **ret)
{
	char *out = ps->scratch + ps->scratch_len;
	size_t n = 0;

	ps->p++; /* '"' */
	for (;;) {
		char c;

		if (ps->p >= ps->end)
			return fail(ps, "unterminated label value");
		c = *ps->p;
		if (c == '"')
			break;
		if (c == '\\') {
			ps->p++;
			if (ps->p >= ps->end)
				return fail(ps, "unterminated label value");
			switch (*ps->p) {
			case '\\':
				c = '\\';
				break;
			case '"':
				c = '"';
				break;
			case 'n':
				c = '\n';
				break;
			default:
				ps->p--;
				return fail(ps, "invalid escape sequence in label value");
			}
		}
		out[n++] = c;
		ps->p++;
	}
	ps->p++; /* closing '"' */
	out[n] = '\0';
	ps->scratch_len += n + 1;
	*ret = out;
	return 0;
}

static int parse_labels(struct parser *ps, size_t *ret_n)
{
	size_t n = 0;

	ps->p++; /* '{' */
	for (;;) {
		const char *name, *value = NULL;
		int r;

		skip_blanks(ps);
		if (ps->p >= ps->end)
			return fail(ps, "unterminated label set, expected '}'");
		if (*ps->p == '}') {
			ps->p++;
			break;
		}
		name = read_name(ps, false);
		if (!name)
			return fail(ps, "invalid label name");
		skip_blanks(ps);
		if (ps->p >= ps->end || *ps->p != '=')
			return fail(ps, "expected '=' after label name '%s'", name);
		ps->p++;
		skip_blanks(ps);
		if (ps->p >= ps->end || *ps->p != '"')
			return fail(ps, "expected '\"' to start the value of label '%s'", name);
		r = read_label_value(ps, &value);
		if (r < 0)
			return r;
		for (size_t i = 0; i < n; i++)
			if (strcmp(ps->labels[i].name, name) == 0)
				return fail(ps, "duplicate label '%s'", name);
		if (n == SM_PROMTEXT_MAX_LABELS)
			return fail(ps, "more than %d labels", SM_PROMTEXT_MAX_LABELS);
		ps->labels[n++] = (struct sm_label){.name = name, .value = value};
		skip_blanks(ps);
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p++;
			continue;
		}
		if (ps->p < ps->end && *ps->p == '}') {
			ps->p++;
			break;
		}
		return fail(ps, "expected ',' or '}' after the value of label '%s'", name);
	}
	*ret_n = n;
	return 0;
}

static bool has_suffix(const char *name, size_t base_len, const char *suffix)
{
	return strcmp(name + base_len, suffix) == 0;
}

/* The type a sample inherits from the family of the last TYPE line. */
static enum sm_prom_type sample_type(const struct parser *ps, const char *name, bool *ret_bucket)
{
	size_t fl;

	*ret_bucket = false;
	if (!ps->family || !*ps->family)
		return SM_PROM_UNTYPED;
	fl = strlen(ps->family);
	if (strncmp(name, ps->family, fl) != 0)
		return SM_PROM_UNTYPED;
	if (name[fl] == '\0')
		return ps->family_type;
	switch (ps->family_type) {
	case SM_PROM_HISTOGRAM:
		if (has_suffix(name, fl, "_bucket")) {
			*ret_bucket = true;
			return SM_PROM_HISTOGRAM;
		}
		if (has_suffix(name, fl, "_sum") || has_suffix(name, fl, "_count"))
			return SM_PROM_HISTOGRAM;
		break;
	case SM_PROM_SUMMARY:
		if (has_suffix(name, fl, "_sum") || has_suffix(name, fl, "_count"))
			return SM_PROM_SUMMARY;
		break;
	default:
		break;
	}
	return SM_PROM_UNTYPED;
}

static const char *label_get(const struct sm_label *l, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(l[i].name, name) == 0)
			return l[i].value;
	return NULL;
}

static int parse_sample(struct parser *ps, sm_promtext_sample_fn fn, void *userdata)
{
	struct sm_prom_sample s = {.line = ps->line};
	const char *tok;
	bool bucket;
	double v;
	int r;

	s.name = read_name(ps, true);
	if (!s.name)
		return fail(ps, "invalid metric name");
	if (skip_blanks(ps) == 0 && ps->p < ps->end && *ps->p != '{')
		return fail(ps, "expected '{' or a blank after the metric name '%s'", s.name);
	if (ps->p < ps->end && *ps->p == '{') {
		r = parse_labels(ps, &s.n_labels);
		if (r < 0)
			return r;
		s.labels = ps->labels;
		skip_blanks(ps);
	}
	if (ps->p >= ps->end)
		return fail(ps, "missing value for '%s'", s.name);
	tok = read_token(ps);
	if (sm_number_parse_float_special(tok, &v) < 0) {
		ps->p -= strlen(tok);
		return fail(ps, "invalid value '%s' for '%s'", tok, s.name);
	}
	s.value = v;
	skip_blanks(ps);
	if (ps->p < ps->end && *ps->p != '#') {
		int64_t ts;

		tok = read_token(ps);
		if (sm_number_parse_int64(tok, &ts) < 0) {
			ps->p -= strlen(tok);
			return fail(ps, "invalid timestamp '%s' (expected integer milliseconds)",
			            tok);
		}
		s.has_timestamp = true;
		s.timestamp_ms = ts;
		skip_blanks(ps);
		if (ps->p < ps->end && *ps->p != '#')
			return fail(ps, "unexpected text after the timestamp");
	}
	/* Whatever follows '#' here is an exemplar (OpenMetrics): ignored. */

	s.type = sample_type(ps, s.name, &bucket);
	if (bucket) {
		const char *le = label_get(s.labels, s.n_labels, "le");

		if (!le || sm_number_parse_float_special(le, &v) < 0) {
			ps->p = ps->end;
			return fail(ps, "histogram bucket '%s' needs a numeric 'le' label", s.name);
		}
	}
	if (s.type == SM_PROM_SUMMARY && strcmp(s.name, ps->family) == 0) {
		const char *q = label_get(s.labels, s.n_labels, "quantile");

		if (!q || sm_number_parse_float_special(q, &v) < 0) {
			ps->p = ps->end;
			return fail(ps, "summary '%s' needs a numeric 'quantile' label", s.name);
		}
	}
	r = fn(&s, userdata);
	return r < 0 ? r : 1;
}

/* "# HELP name doc" and "# TYPE name type" are checked; other comments are skipped. */
static int parse_comment(struct parser *ps)
{
	const char *word, *name;
	bool help, type;

	ps->p++; /* '#' */
	skip_blanks(ps);
	word = read_token(ps);
	help = strcmp(word, "HELP") == 0;
	type = strcmp(word, "TYPE") == 0;
	if (!help && !type)
		return 0;
	if (skip_blanks(ps) == 0)
		return fail(ps, "expected a metric name after %s", word);
	name = read_name(ps, true);
	if (!name)
		return fail(ps, "invalid metric name in %s line", word);
	if (ps->p < ps->end && !at_blank(ps))
		return fail(ps, "invalid metric name in %s line", word);
	if (help) {
		/* The docstring: only \\ and \n are valid escapes. */
		for (; ps->p < ps->end; ps->p++) {
			if (*ps->p != '\\')
				continue;
			if (ps->p + 1 >= ps->end || (ps->p[1] != '\\' && ps->p[1] != 'n'))
				return fail(ps, "invalid escape sequence in HELP text");
			ps->p++;
		}
		return 0;
	}
	if (skip_blanks(ps) == 0)
		return fail(ps, "expected a type after the metric name '%s'", name);
	word = read_token(ps);
	skip_blanks(ps);
	if (ps->p < ps->end)
		return fail(ps, "unexpected text after the type");
	{
		enum sm_prom_type t = sm_prom_type_from_string(word);
		size_t len = strlen(name);

		if (t == SM_PROM_TYPE_INVALID) {
			ps->p -= strlen(word);
			return fail(ps,
			            "unknown type '%s' (expected counter, gauge, histogram, "
			            "summary or untyped)",
			            word);
		}
		if (len + 1 > ps->family_cap) {
			char *f = realloc(ps->family, len + 1);

			if (!f)
				return -ENOMEM;
			ps->family = f;
			ps->family_cap = len + 1;
		}
		memcpy(ps->family, name, len + 1);
		ps->family_type = t;
	}
	return 0;
}

int sm_promtext_parse(const char *text, size_t len, sm_promtext_sample_fn fn, void *userdata,
                      struct sm_error *reterr)
{
	struct parser ps = {.reterr = reterr};
	const char *pos = text, *stop = text + len;
	int count = 0, r = 0;

	if (!text && len)
		return -EINVAL;
	while (pos < stop) {
		const char *nl = memchr(pos, '\n', (size_t)(stop - pos));
		const char *eol = nl ? nl : stop;
		size_t line_len;

		ps.line++;
		ps.p = pos;
		ps.end = eol;
		if (ps.end > ps.p && ps.end[-1] == '\r')
			ps.end--;
		pos = nl ? nl + 1 : stop;
		line_len = (size_t)(ps.end - ps.p);
		/* Names and values of one line fit in twice its length plus the NULs. */
		if (line_len * 2 + 4 > ps.scratch_cap) {
			size_t cap = line_len * 2 + 64;
			char *s = realloc(ps.scratch, cap);

			if (!s) {
				r = -ENOMEM;
				goto out;
			}
			ps.scratch = s;
			ps.scratch_cap = cap;
		}
		ps.scratch_len = 0;
		if (memchr(ps.p, '\0', line_len)) {
			r = fail(&ps, "NUL byte in line");
			goto out;
		}
		skip_blanks(&ps);
		if (ps.p >= ps.end)
			continue;
		if (*ps.p == '#') {
			r = parse_comment(&ps);
		} else {
			r = parse_sample(&ps, fn, userdata);
			if (r > 0) {
				if (count == INT32_MAX) {
					r = fail(&ps, "too many samples");
					goto out;
				}
				count++;
			}
		}
		if (r < 0)
			goto out;
	}
	r = count;
out:
	free(ps.scratch);
	free(ps.family);
	return r;
}
