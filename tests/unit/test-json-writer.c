/* SPDX-License-Identifier: MIT */
/* The JSON writer (src/api/json-writer.c) and the metric list encoders built on it, checked byte
 * for byte against cJSON: escaping and numbers directly, and the encoders differentially against
 * the cJSON-tree encoders they replaced (kept here, and only here, as the reference). */
/* cmocka needs setjmp.h, stdarg.h and stddef.h before it. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/quantity.h"
#include "scalemetrics/query.h"
#include "scalemetrics/resource-kind.h"
#include "scalemetrics/selector.h"
#include "scalemetrics/series.h"

#include "../../src/api/api-internal.h"

/* 2024-05-01T12:00:00Z */
#define WALL_MS 1714564800000LL

/* ---- the reference: the same documents encoded with cJSON ---- */

static bool ref_add_quantity(cJSON *obj, const char *key, double v)
{
	char buf[SM_QUANTITY_MAX];

	if (isnan(v))
		return false;
	if (sm_quantity_format(v, buf, sizeof(buf)) < 0)
		(void)snprintf(buf, sizeof(buf), "%s",
		               v < 0 ? "-9223372036854775808" : "9223372036854775807");
	return cJSON_AddStringToObject(obj, key, buf) != NULL;
}

static bool ref_external_item(cJSON *items, const struct sm_query_item *it, int64_t now_wall_ms)
{
	char ts[32];
	cJSON *o = cJSON_CreateObject();
	cJSON *labels;
	bool ok;

	sm_api_format_timestamp(it->timestamp_wall_ms > 0 ? it->timestamp_wall_ms : now_wall_ms, ts,
	                        sizeof(ts));
	ok = cJSON_AddItemToArray(items, o) &&
	     cJSON_AddStringToObject(o, "metricName", it->metric ? it->metric : "");
	labels = ok ? cJSON_AddObjectToObject(o, "metricLabels") : NULL;
	ok = ok && labels;
	for (size_t i = 0; i < it->n_labels && ok; i++)
		ok =
		    cJSON_AddStringToObject(labels, it->labels[i].name,
		                            it->labels[i].value ? it->labels[i].value : "") != NULL;
	ok = ok && cJSON_AddStringToObject(o, "timestamp", ts) &&
	     (it->window_s == 0 || cJSON_AddNumberToObject(o, "window", it->window_s)) &&
	     ref_add_quantity(o, "value", it->value);
	return ok;
}

static char *ref_external_encode(const struct sm_query_result *r, int64_t now_wall_ms)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON *items;
	char *body = NULL;
	bool ok;

	ok = doc && cJSON_AddStringToObject(doc, "kind", "ExternalMetricValueList") &&
	     cJSON_AddStringToObject(doc, "apiVersion", SM_API_EXTERNAL_GROUP "/v1beta1") &&
	     cJSON_AddObjectToObject(doc, "metadata");
	items = ok ? cJSON_AddArrayToObject(doc, "items") : NULL;
	ok = ok && items;
	for (size_t i = 0; i < r->n_items && ok; i++) {
		if (isnan(r->items[i].value))
			continue;
		ok = ref_external_item(items, &r->items[i], now_wall_ms);
	}
	if (ok)
		body = cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	return body;
}

static cJSON *ref_selector_echo(const struct sm_selector *sel)
{
	static const char *const ops[SM_SELECTOR_OP_MAX] = {
	    [SM_SELECTOR_OP_IN] = "In",
	    [SM_SELECTOR_OP_NOT_IN] = "NotIn",
	    [SM_SELECTOR_OP_NOT_EQUALS] = "NotIn",
	    [SM_SELECTOR_OP_EXISTS] = "Exists",
	    [SM_SELECTOR_OP_DOES_NOT_EXIST] = "DoesNotExist",
	};
	cJSON *o, *labels = NULL, *exprs = NULL;
	size_t n = sm_selector_count(sel);
	bool ok = true;

	if (sm_selector_is_empty(sel))
		return cJSON_CreateNull();
	o = cJSON_CreateObject();
	if (!o)
		return NULL;
	for (size_t i = 0; i < n && ok; i++) {
		const struct sm_selector_requirement *req = sm_selector_get(sel, i);
		const char *op;
		cJSON *e, *values;

		if (!req || req->op < 0 || req->op >= SM_SELECTOR_OP_MAX)
			continue;
		if ((req->op == SM_SELECTOR_OP_EQUALS || req->op == SM_SELECTOR_OP_DOUBLE_EQUALS) &&
		    req->n_values == 1 &&
		    !(labels && cJSON_GetObjectItemCaseSensitive(labels, req->key))) {
			if (!labels)
				labels = cJSON_AddObjectToObject(o, "matchLabels");
			ok = labels && cJSON_AddStringToObject(labels, req->key, req->values[0]);
			continue;
		}
		op = ops[req->op];
		if (req->op == SM_SELECTOR_OP_EQUALS || req->op == SM_SELECTOR_OP_DOUBLE_EQUALS)
			op = "In";
		if (!op)
			continue;
		if (!exprs)
			exprs = cJSON_AddArrayToObject(o, "matchExpressions");
		e = cJSON_CreateObject();
		ok = exprs && cJSON_AddItemToArray(exprs, e) &&
		     cJSON_AddStringToObject(e, "key", req->key) &&
		     cJSON_AddStringToObject(e, "operator", op);
		if (ok && req->n_values > 0) {
			values = cJSON_AddArrayToObject(e, "values");
			ok = values != NULL;
			for (size_t k = 0; k < req->n_values && ok; k++)
				ok = cJSON_AddItemToArray(values,
				                          cJSON_CreateString(req->values[k]));
		}
		if (!e)
			ok = false;
	}
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static cJSON *ref_described_object(const struct sm_query *q, const struct sm_query_item *it)
{
	char kind[128], api_version[128];
	const char *resource = it->object.resource ? it->object.resource : q->resource;
	const char *name = it->object.name ? it->object.name : q->name;
	const char *ns = it->object.namespace ? it->object.namespace : q->namespace;
	cJSON *o = cJSON_CreateObject();
	bool ok;

	if (q->kind == SM_QUERY_NAMESPACE) {
		resource = "namespaces";
		name = q->namespace;
		ns = NULL;
	}
	if (!resource)
		resource = "";
	if (!name)
		name = "";
	sm_api_resource_kind(resource, kind, sizeof(kind), api_version, sizeof(api_version));
	ok = o && cJSON_AddStringToObject(o, "kind", kind) &&
	     (!ns || !*ns || !sm_resource_is_namespaced(resource) ||
	      cJSON_AddStringToObject(o, "namespace", ns)) &&
	     cJSON_AddStringToObject(o, "name", name) &&
	     cJSON_AddStringToObject(o, "apiVersion", api_version);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static bool ref_custom_item(cJSON *items, bool v1beta2, const struct sm_query *q,
                            const struct sm_query_item *it, const cJSON *selector,
                            int64_t now_wall_ms)
{
	char ts[32];
	const char *metric = it->metric ? it->metric : q->metric;
	cJSON *o = cJSON_CreateObject();
	bool ok;

	sm_api_format_timestamp(it->timestamp_wall_ms > 0 ? it->timestamp_wall_ms : now_wall_ms, ts,
	                        sizeof(ts));
	ok = cJSON_AddItemToArray(items, o) &&
	     cJSON_AddItemToObject(o, "describedObject", ref_described_object(q, it));
	if (!o)
		return false;
	if (v1beta2) {
		cJSON *m = ok ? cJSON_AddObjectToObject(o, "metric") : NULL;

		ok = m && cJSON_AddStringToObject(m, "name", metric) &&
		     cJSON_AddItemToObject(m, "selector", cJSON_Duplicate(selector, true)) &&
		     cJSON_AddStringToObject(o, "timestamp", ts) &&
		     (it->window_s == 0 ||
		      cJSON_AddNumberToObject(o, "windowSeconds", it->window_s)) &&
		     ref_add_quantity(o, "value", it->value);
	} else {
		ok = ok && cJSON_AddStringToObject(o, "metricName", metric) &&
		     cJSON_AddStringToObject(o, "timestamp", ts) &&
		     (it->window_s == 0 || cJSON_AddNumberToObject(o, "window", it->window_s)) &&
		     ref_add_quantity(o, "value", it->value) &&
		     cJSON_AddItemToObject(o, "selector", cJSON_Duplicate(selector, true));
	}
	return ok;
}

static char *ref_custom_encode(const char *version, const struct sm_query *q,
                               const struct sm_query_result *r, int64_t now_wall_ms)
{
	char api_version[64];
	bool v1beta2 = strcmp(version, "v1beta2") == 0;
	cJSON *doc = cJSON_CreateObject();
	cJSON *selector = ref_selector_echo(q->metric_selector);
	cJSON *items;
	char *body = NULL;
	bool ok;

	(void)snprintf(api_version, sizeof(api_version), "%s/%s", SM_API_CUSTOM_GROUP, version);
	ok = doc && selector && cJSON_AddStringToObject(doc, "kind", "MetricValueList") &&
	     cJSON_AddStringToObject(doc, "apiVersion", api_version) &&
	     cJSON_AddObjectToObject(doc, "metadata");
	items = ok ? cJSON_AddArrayToObject(doc, "items") : NULL;
	ok = ok && items;
	for (size_t i = 0; i < r->n_items && ok; i++) {
		if (isnan(r->items[i].value))
			continue;
		ok = ref_custom_item(items, v1beta2, q, &r->items[i], selector, now_wall_ms);
	}
	if (ok)
		body = cJSON_PrintUnformatted(doc);
	cJSON_Delete(selector);
	cJSON_Delete(doc);
	return body;
}

/* ---- the writer against cJSON's printer ---- */

static char *cjson_string(const char *s)
{
	cJSON *v = cJSON_CreateString(s);
	char *out;

	assert_non_null(v);
	out = cJSON_PrintUnformatted(v);
	cJSON_Delete(v);
	assert_non_null(out);
	return out;
}

static char *jsonw_string(const char *s, size_t cap_hint)
{
	struct sm_api_jsonw w;
	char *body = NULL;
	size_t len = 0;

	sm_api_jsonw_init(&w, cap_hint);
	sm_api_jsonw_string(&w, s);
	assert_int_equal(sm_api_jsonw_finish(&w, &body, &len), 0);
	assert_int_equal(strlen(body), len);
	return body;
}

static void test_escape_every_byte(void **state)
{
	char all[256];

	(void)state;
	/* Each byte alone, and between plain text (the fast path ends at it). */
	for (unsigned c = 1; c < 256; c++) {
		char one[2] = {(char)c, 0}, mid[8];
		char *want, *got;

		(void)snprintf(mid, sizeof(mid), "ab%cz", (char)c);
		want = cjson_string(one);
		got = jsonw_string(one, 0);
		if (strcmp(want, got) != 0)
			fail_msg("byte 0x%02x: %s, cJSON %s", c, got, want);
		free(want);
		free(got);
		want = cjson_string(mid);
		got = jsonw_string(mid, 1);
		if (strcmp(want, got) != 0)
			fail_msg("byte 0x%02x in text: %s, cJSON %s", c, got, want);
		free(want);
		free(got);
	}
	/* All of them in one string (6x growth past a small buffer), the empty string, NULL. */
	for (unsigned c = 1; c < 256; c++)
		all[c - 1] = (char)c;
	all[255] = 0;
	{
		char *want = cjson_string(all), *got = jsonw_string(all, 16);

		assert_string_equal(got, want);
		free(want);
		free(got);
	}
	{
		char *got = jsonw_string("", 0);

		assert_string_equal(got, "\"\"");
		free(got);
		got = jsonw_string(NULL, 0);
		assert_string_equal(got, "\"\"");
		free(got);
	}
	{
		char *want = cjson_string("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 \x7f");
		char *got = jsonw_string("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 \x7f", 0);

		assert_string_equal(got, want);
		free(want);
		free(got);
	}
}

static void test_numbers(void **state)
{
	static const uint32_t cases[] = {
	    0,   1,     9,          10,         30,         59,         60,        99,
	    100, 86400, 2147483646, 2147483647, 2147483648, 4294967294, 4294967295};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cJSON *n = cJSON_CreateNumber(cases[i]);
		char *want = cJSON_PrintUnformatted(n);
		struct sm_api_jsonw w;
		char *got = NULL;
		size_t len = 0;

		sm_api_jsonw_init(&w, 0);
		sm_api_jsonw_uint(&w, cases[i]);
		assert_int_equal(sm_api_jsonw_finish(&w, &got, &len), 0);
		if (strcmp(want, got) != 0)
			fail_msg("case %zu: %s, cJSON %s", i, got, want);
		free(want);
		free(got);
		cJSON_Delete(n);
	}
}

/* Copies and memos stay right while the buffer moves; finish hands over what was written. */
static void test_writer_growth(void **state)
{
	struct sm_api_jsonw w;
	struct sm_api_jsonw_memo memo = {0};
	const char *key = "k\"ey";
	char *body = NULL, want[4096];
	size_t len = 0, n = 0;

	(void)state;
	sm_api_jsonw_init(&w, 1);
	for (int i = 0; i < 200; i++) {
		sm_api_jsonw_string_memo(&w, &memo, key);
		SM_API_JSONW_LIT(&w, ",");
		n += (size_t)snprintf(want + n, sizeof(want) - n, "\"k\\\"ey\",");
	}
	sm_api_jsonw_copy(&w, (struct sm_api_jsonw_span){.off = 0, .len = 8});
	n += (size_t)snprintf(want + n, sizeof(want) - n, "\"k\\\"ey\",");
	assert_int_equal(sm_api_jsonw_finish(&w, &body, &len), 0);
	assert_int_equal(len, n);
	assert_string_equal(body, want);
	free(body);
	/* The writer is reset: finishing again gives an empty text; done accepts anything. */
	assert_int_equal(sm_api_jsonw_finish(&w, &body, &len), 0);
	assert_int_equal(len, 0);
	assert_string_equal(body, "");
	free(body);
	sm_api_jsonw_done(&w);
	sm_api_jsonw_done(NULL);
	sm_api_jsonw_init(&w, 64);
	SM_API_JSONW_LIT(&w, "abandoned");
	sm_api_jsonw_done(&w);
	assert_null(w.buf);
}

/* ---- the encoders, differentially ---- */

struct rng {
	uint64_t s;
};

static uint64_t next(struct rng *r)
{
	r->s ^= r->s << 13;
	r->s ^= r->s >> 7;
	r->s ^= r->s << 17;
	return r->s;
}

static size_t pick(struct rng *r, size_t n)
{
	return (size_t)(next(r) % n);
}

#define STRINGS    64
#define STRING_MAX 48

/* Strings of one case: plain names, every escape class, UTF-8. */
struct arena {
	char s[STRINGS][STRING_MAX];
	size_t used;
};

static const char *random_string(struct rng *r, struct arena *a)
{
	static const char *const pieces[] = {
	    "web",
	    "-",
	    "5d9c",
	    "a",
	    "Z",
	    "0",
	    "9",
	    ".",
	    "/",
	    "_",
	    "\"",
	    "\\",
	    "\n",
	    "\t",
	    "\r",
	    "\b",
	    "\f",
	    "\x01",
	    "\x1f",
	    "\x7f",
	    " ",
	    "\xc3\xa9",
	    "\xe2\x82\xac",
	    "\xf0\x9f\x98\x80",
	    "{",
	    "}",
	    ":",
	    ",",
	    "u",
	};
	char *s;
	size_t n = 0, parts = pick(r, 8);

	if (a->used == STRINGS)
		return "overflow";
	s = a->s[a->used++];
	for (size_t i = 0; i < parts; i++) {
		const char *p = pieces[pick(r, sizeof(pieces) / sizeof(pieces[0]))];
		size_t len = strlen(p);

		if (n + len >= STRING_MAX)
			break;
		memcpy(s + n, p, len);
		n += len;
	}
	s[n] = 0;
	return s;
}

static const char *random_resource(struct rng *r, struct arena *a)
{
	static const char *const resources[] = {
	    "pods",
	    "deployments.apps",
	    "nodes",
	    "namespaces",
	    "services",
	    "widgets.example.com",
	    "policies.x.io",
	    "boxes",
	    "",
	    "we\"ird.x\\y",
	    /* Longer than the kind and apiVersion buffers (127 characters). */
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaas.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb."
	    "io",
	};
	size_t i = pick(r, sizeof(resources) / sizeof(resources[0]) + 2);

	if (i == sizeof(resources) / sizeof(resources[0]))
		return NULL;
	if (i > sizeof(resources) / sizeof(resources[0]))
		return random_string(r, a);
	return resources[i];
}

static double random_value(struct rng *r)
{
	static const double values[] = {
	    0,     -0.0,          1,      0.8,  1500,        1234.5678, -0.0005, 1e-9,
	    4e-10, 5e-10,         1e-12,  1e20, -1e300,      9.2e18,    -9.3e18, 1e15,
	    0.1,   123456789.123, -42.75, 1e-3, 999.9999999, 2.5e-9,    65536,   0.333333333333,
	};
	size_t i = pick(r, sizeof(values) / sizeof(values[0]) + 5);

	if (i < sizeof(values) / sizeof(values[0]))
		return values[i];
	switch (i - sizeof(values) / sizeof(values[0])) {
	case 0:
		return NAN;
	case 1:
		return INFINITY;
	case 2:
		return -INFINITY;
	default: {
		/* A mantissa in [-1, 1) times 10^[-12, 20]. */
		double m = (double)(int64_t)next(r) / 9223372036854775808.0;

		return m * pow(10, (double)pick(r, 33) - 12);
	}
	}
}

static int64_t random_timestamp(struct rng *r)
{
	static const int64_t stamps[] = {
	    0,
	    -1,
	    -1500,
	    WALL_MS,
	    WALL_MS + 999,
	    WALL_MS + 1000,
	    WALL_MS - 1,
	    951782400000LL,
	    253402300799999LL,
	    253402300800000LL,
	    INT64_MAX / 2,
	    INT64_MIN / 2,
	};
	size_t i = pick(r, sizeof(stamps) / sizeof(stamps[0]) + 2);

	if (i < sizeof(stamps) / sizeof(stamps[0]))
		return stamps[i];
	return WALL_MS + (int64_t)pick(r, 5000);
}

static uint32_t random_window(struct rng *r)
{
	static const uint32_t windows[] = {0, 0, 30, 60, 2147483647, 2147483648u, 4294967295u};
	size_t i = pick(r, sizeof(windows) / sizeof(windows[0]) + 1);

	return i < sizeof(windows) / sizeof(windows[0]) ? windows[i] : (uint32_t)next(r);
}

static const char *const selectors[] = {
    NULL,           "",
    "app=web",      "a=b,c!=d,e in (y,x),f notin (z),g,!h,i>5,a==c",
    "!h,a=b",       "x>5",
    "x<3,y>1",      "k=a,k=b",
    "k==a,k=b,k=c", "e in (a),a=b",
    "a,b,c=d",      "example.com/tier notin (cache,db),example.com/tier=web",
};

#define LABELS_MAX 4
#define ITEMS_MAX  12

struct case_data {
	struct arena arena;
	struct sm_label labels[ITEMS_MAX][LABELS_MAX];
	struct sm_query_item items[ITEMS_MAX];
	struct sm_query_result res;
	struct sm_query q;
};

static const char *maybe(struct rng *r, struct arena *a, const char *usual)
{
	switch (pick(r, 4)) {
	case 0:
		return NULL;
	case 1:
		return random_string(r, a);
	default:
		return usual;
	}
}

static void random_case(struct rng *r, struct case_data *c, const struct sm_selector *sel)
{
	static const enum sm_query_kind kinds[] = {SM_QUERY_OBJECT, SM_QUERY_OBJECTS,
	                                           SM_QUERY_NAMESPACE, SM_QUERY_EXTERNAL};
	size_t n = pick(r, ITEMS_MAX + 1);
	double shared_value = random_value(r);

	memset(c, 0, sizeof(*c));
	c->q = (struct sm_query){
	    .kind = kinds[pick(r, sizeof(kinds) / sizeof(kinds[0]))],
	    .namespace = maybe(r, &c->arena, "default"),
	    .resource = random_resource(r, &c->arena),
	    .name = maybe(r, &c->arena, "web"),
	    .metric = pick(r, 2) ? "http_requests" : random_string(r, &c->arena),
	    .metric_selector = sel,
	};
	for (size_t i = 0; i < n; i++) {
		struct sm_query_item *it = &c->items[i];
		size_t n_labels = pick(r, LABELS_MAX + 1);

		for (size_t k = 0; k < n_labels; k++) {
			c->labels[i][k].name =
			    pick(r, 3) ? random_string(r, &c->arena) : "queue"; /* repeats too */
			c->labels[i][k].value = pick(r, 5) ? random_string(r, &c->arena) : NULL;
		}
		*it = (struct sm_query_item){
		    .metric = maybe(r, &c->arena, "http_requests"),
		    .labels = c->labels[i],
		    .n_labels = n_labels,
		    .object = {.resource = pick(r, 2) ? NULL : random_resource(r, &c->arena),
		               .name = maybe(r, &c->arena, "pod-a"),
		               .namespace = maybe(r, &c->arena, pick(r, 2) ? "default" : "")},
		    /* Runs of one value and one second, as real answers have. */
		    .value = pick(r, 3) ? shared_value : random_value(r),
		    .timestamp_wall_ms = pick(r, 2) ? WALL_MS + (int64_t)i : random_timestamp(r),
		    .window_s = random_window(r),
		    .is_fallback = pick(r, 4) == 0,
		};
	}
	c->res = (struct sm_query_result){.items = c->items, .n_items = n};
}

static void compare(const char *what, size_t case_no, char *want, int r, char *got, size_t len)
{
	assert_non_null(want);
	if (r != 0)
		fail_msg("%s, case %zu: error %d", what, case_no, r);
	if (strlen(got) != len || strcmp(want, got) != 0)
		fail_msg("%s, case %zu:\n got  %s\n want %s", what, case_no, got, want);
	free(want);
	free(got);
}

static void test_encoders_match_cjson(void **state)
{
	struct sm_selector *sels[sizeof(selectors) / sizeof(selectors[0])] = {0};
	struct case_data *c = calloc(1, sizeof(*c));
	struct rng r = {.s = 0x9e3779b97f4a7c15ULL};

	(void)state;
	assert_non_null(c);
	for (size_t i = 0; i < sizeof(selectors) / sizeof(selectors[0]); i++) {
		struct sm_error err = {0};

		if (selectors[i] && sm_selector_parse(selectors[i], &sels[i], &err) != 0)
			fail_msg("selector '%s': %s", selectors[i], err.message);
	}
	for (size_t n = 0; n < 3000; n++) {
		const struct sm_selector *sel = sels[pick(&r, sizeof(sels) / sizeof(sels[0]))];
		int64_t now = pick(&r, 4) ? WALL_MS + 61000 : random_timestamp(&r);
		char *body = NULL;
		size_t len = 0;
		int rc;

		random_case(&r, c, sel);
		rc = sm_api_custom_encode("v1beta1", &c->q, &c->res, now, &body, &len);
		compare("v1beta1", n, ref_custom_encode("v1beta1", &c->q, &c->res, now), rc, body,
		        len);
		rc = sm_api_custom_encode("v1beta2", &c->q, &c->res, now, &body, &len);
		compare("v1beta2", n, ref_custom_encode("v1beta2", &c->q, &c->res, now), rc, body,
		        len);
		rc = sm_api_external_encode(&c->res, now, &body, &len);
		compare("external", n, ref_external_encode(&c->res, now), rc, body, len);
	}
	for (size_t i = 0; i < sizeof(sels) / sizeof(sels[0]); i++)
		sm_selector_free(sels[i]);
	free(c);
}

/* A typical answer: 50 pods of one deployment, one selector, one second; and the same with
 * names that escape to six times their length (the buffer must grow past its estimate). */
static void test_encoders_fifty_pods(void **state)
{
	struct sm_query_item items[50];
	char names[50][40];
	struct sm_label labels[50][1];
	struct sm_selector *sel = NULL;
	struct sm_error err = {0};
	struct sm_query q = {.kind = SM_QUERY_OBJECTS,
	                     .namespace = "default",
	                     .resource = "pods",
	                     .metric = "http_requests"};
	struct sm_query_result res = {.items = items, .n_items = 50};

	(void)state;
	assert_int_equal(sm_selector_parse("app=web,tier in (a,b)", &sel, &err), 0);
	q.metric_selector = sel;
	for (int round = 0; round < 2; round++) {
		const char *versions[] = {"v1beta1", "v1beta2"};

		for (int i = 0; i < 50; i++) {
			if (round == 0)
				(void)snprintf(names[i], sizeof(names[i]), "web-5d9c7b6f4-%05d",
				               i * 7919);
			else
				(void)snprintf(names[i], sizeof(names[i]),
				               "\x01\x02\x03\x04\x05\x06\x07\x0e\x0f%02d", i);
			labels[i][0] = (struct sm_label){"pod", names[i]};
			items[i] = (struct sm_query_item){.metric = "http_requests",
			                                  .labels = labels[i],
			                                  .n_labels = 1,
			                                  .object = {.resource = "pods",
			                                             .name = names[i],
			                                             .namespace = "default"},
			                                  .value = 1.5 * i + 0.25,
			                                  .timestamp_wall_ms = WALL_MS + 17 * i,
			                                  .window_s = 60};
		}
		for (size_t v = 0; v < 2; v++) {
			char *body = NULL;
			size_t len = 0;
			int rc = sm_api_custom_encode(versions[v], &q, &res, WALL_MS, &body, &len);

			compare(versions[v], (size_t)round,
			        ref_custom_encode(versions[v], &q, &res, WALL_MS), rc, body, len);
		}
		{
			char *body = NULL;
			size_t len = 0;
			int rc = sm_api_external_encode(&res, WALL_MS, &body, &len);

			compare("external", (size_t)round, ref_external_encode(&res, WALL_MS), rc,
			        body, len);
		}
	}
	sm_selector_free(sel);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escape_every_byte),   cmocka_unit_test(test_numbers),
	    cmocka_unit_test(test_writer_growth),       cmocka_unit_test(test_encoders_match_cjson),
	    cmocka_unit_test(test_encoders_fifty_pods),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
