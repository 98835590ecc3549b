/* SPDX-License-Identifier: MIT */
/* `scalemetrics explain`: what an HPA sees from this server and what it will do about it.
 * Reads the HPA, asks the server the HPA controller's own questions, and shows its arithmetic. */
#include "scalemetrics/explain.h"

#include <cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "scalemetrics/error.h"
#include "scalemetrics/hpa.h"
#include "scalemetrics/number.h"
#include "scalemetrics/selector.h"

#define EXIT_OK     0
#define EXIT_FAILED 1
#define EXIT_USAGE  2

#define MAX_INPUT_BYTES    (4u << 20)  /* an HPA document, or a List of them */
#define MAX_RESPONSE_BYTES (16u << 20) /* one metric list */
#define MAX_ITEMS_SHOWN    20
#define DEFAULT_TIMEOUT_MS 10000

#define EXTERNAL_BASE "/apis/external.metrics.k8s.io/v1beta1"
#define CUSTOM_GROUP  "custom.metrics.k8s.io"

struct options {
	const char *hpa_path;
	const char *server; /* scheme://host:port, no trailing slash */
	const char *ca_file;
	const char *token_file;
	const char *cert_file;
	const char *key_file;
	bool insecure;
	bool has_current;
	int32_t current;
	const char *namespace;
	const char *pod_selector;
	int64_t timeout_ms;
};

struct client {
	const struct options *opt;
	CURL *curl;
	struct curl_slist *headers;
	char *custom_version; /* preferred custom.metrics.k8s.io version, found lazily */
	char errbuf[CURL_ERROR_SIZE];
};

struct response {
	long code;
	char *body;
	size_t len;
	bool too_big;
};

/* One HPA metric, its strings borrowed from the YAML document. */
struct metric {
	enum sm_hpa_metric_type type;
	const char *name;
	char *selector; /* canonical metric selector; "" when none */
	enum sm_hpa_target_type target_type;
	const char *target_text; /* the quantity as written */
	int64_t target_milli;
	const char *object_kind;
	const char *object_name;
	const char *object_api_version;
	const char *resource_name; /* Resource and ContainerResource */
	const char *container;     /* ContainerResource */
	char error[512];           /* set when the spec itself is unusable */
};

struct hpa {
	const char *name;
	const char *namespace;
	const char *target_kind;
	const char *target_name;
	int32_t min_replicas;
	int32_t max_replicas;
	bool has_behavior;
	int32_t current;
	const char *current_from;
	struct metric *metrics;
	size_t n_metrics;
};

/* ---------------------------------------------------------------------------------------- */
/* Output helpers */

/* A milli-value as a plain decimal: 37000 -> "37", 1500 -> "1.5", -2 -> "-0.002". */
static const char *milli_text(int64_t m, char buf[40])
{
	uint64_t a = m < 0 ? (uint64_t)0 - (uint64_t)m : (uint64_t)m;
	unsigned frac = (unsigned)(a % 1000);
	int n;

	n = snprintf(buf, 40, "%s%llu", m < 0 ? "-" : "", (unsigned long long)(a / 1000));
	if (frac != 0 && n > 0 && n < 30) {
		(void)snprintf(buf + n, (size_t)(40 - n), ".%03u", frac);
		for (char *e = buf + strlen(buf) - 1; *e == '0'; e--)
			*e = '\0';
	}
	return buf;
}

/* "37000m (37)" */
static const char *milli_both(int64_t m, char buf[96])
{
	char t[40];

	(void)snprintf(buf, 96, "%lldm (%s)", (long long)m, milli_text(m, t));
	return buf;
}

/* ---------------------------------------------------------------------------------------- */
/* URL building */

/* Go's url.QueryEscape: unreserved kept, space as '+', the rest %XX. */
static int query_escape(const char *s, char *out, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		bool keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		            (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' ||
		            *p == '~';

		if (o + 4 >= size)
			return -ENAMETOOLONG;
		if (keep) {
			out[o++] = (char)*p;
		} else if (*p == ' ') {
			out[o++] = '+';
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
	return 0;
}

/* A path segment as Go's url.PathEscape would write it, except that '*' is written %2A,
 * which is what the HPA's client sends for the wildcard. */
static int path_escape(const char *s, char *out, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		bool keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		            (*p >= '0' && *p <= '9') || strchr("-_.~$&+,;=:@", *p);

		if (o + 4 >= size)
			return -ENAMETOOLONG;
		if (keep) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
	return 0;
}

/* Appends "?k=v" or "&k=v" (v escaped) when v is not empty. Keys must come sorted. */
static int add_query(char *path, size_t size, const char *key, const char *value)
{
	char esc[4096];
	size_t len = strlen(path);
	int r;

	if (!value || value[0] == '\0')
		return 0;
	r = query_escape(value, esc, sizeof(esc));
	if (r < 0)
		return r;
	r = snprintf(path + len, size - len, "%c%s=%s", strchr(path, '?') ? '&' : '?', key, esc);
	if (r < 0 || (size_t)r >= size - len)
		return -ENAMETOOLONG;
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* HTTP */

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct response *resp = userdata;
	size_t n = size * nmemb;
	char *nb;

	if (resp->len + n > MAX_RESPONSE_BYTES) {
		resp->too_big = true;
		return 0;
	}
	nb = realloc(resp->body, resp->len + n + 1);
	if (!nb)
		return 0;
	memcpy(nb + resp->len, data, n);
	resp->body = nb;
	resp->len += n;
	resp->body[resp->len] = '\0';
	return n;
}

static void response_done(struct response *resp)
{
	free(resp->body);
	*resp = (struct response){0};
}

static int read_small_file(const char *path, size_t max, char **ret, size_t *ret_len);

static int client_init(struct client *c, const struct options *opt, struct sm_error *reterr)
{
	char *token = NULL, *hdr = NULL;
	struct curl_slist *nh;
	size_t len = 0;
	int r = -ENOMEM;

	*c = (struct client){.opt = opt};
	c->curl = curl_easy_init();
	if (!c->curl) {
		sm_error_set(reterr, "cannot initialise libcurl");
		goto out;
	}
	c->headers = curl_slist_append(NULL, "Accept: application/json");
	if (!c->headers)
		goto out;
	if (opt->token_file) {
		r = read_small_file(opt->token_file, 64 * 1024, &token, &len);
		if (r < 0) {
			sm_error_set(reterr, "cannot read --token-file '%s': %s", opt->token_file,
			             strerror(-r));
			goto out;
		}
		while (len > 0 &&
		       (token[len - 1] == '\n' || token[len - 1] == '\r' || token[len - 1] == ' '))
			token[--len] = '\0';
		hdr = malloc(len + 32);
		r = -ENOMEM;
		if (!hdr)
			goto out;
		(void)snprintf(hdr, len + 32, "Authorization: Bearer %s", token);
		nh = curl_slist_append(c->headers, hdr);
		if (!nh)
			goto out;
		c->headers = nh;
	}
	(void)curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
	(void)curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "scalemetrics-explain/" SM_VERSION);
	(void)curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->errbuf);
	(void)curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	(void)curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, (long)opt->timeout_ms);
	(void)curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "https,http");
	(void)curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
	if (opt->ca_file)
		(void)curl_easy_setopt(c->curl, CURLOPT_CAINFO, opt->ca_file);
	if (opt->insecure) {
		(void)curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, 0L);
		(void)curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (opt->cert_file) {
		(void)curl_easy_setopt(c->curl, CURLOPT_SSLCERT, opt->cert_file);
		(void)curl_easy_setopt(c->curl, CURLOPT_SSLKEY, opt->key_file);
	}
	r = 0;
out:
	if (token) {
		memset(token, 0, len);
		free(token);
	}
	if (hdr) {
		memset(hdr, 0, strlen(hdr));
		free(hdr);
	}
	return r;
}

static void client_done(struct client *c)
{
	if (c->curl)
		curl_easy_cleanup(c->curl);
	curl_slist_free_all(c->headers);
	free(c->custom_version);
	*c = (struct client){0};
}

/* GET server + path. A transport failure returns -EIO with libcurl's message in reterr; any
 * HTTP answer returns 0 with its code and body. */
static int client_get(struct client *c, const char *path, struct response *resp,
                      struct sm_error *reterr)
{
	char url[8192];
	CURLcode cc;
	int n;

	*resp = (struct response){0};
	n = snprintf(url, sizeof(url), "%s%s", c->opt->server, path);
	if (n < 0 || (size_t)n >= sizeof(url)) {
		sm_error_set(reterr, "request URL too long");
		return -ENAMETOOLONG;
	}
	c->errbuf[0] = '\0';
	(void)curl_easy_setopt(c->curl, CURLOPT_URL, url);
	(void)curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, resp);
	cc = curl_easy_perform(c->curl);
	if (cc != CURLE_OK) {
		if (resp->too_big)
			sm_error_set(reterr, "response larger than %u bytes", MAX_RESPONSE_BYTES);
		else
			sm_error_set(reterr, "%s",
			             c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc));
		response_done(resp);
		return -EIO;
	}
	(void)curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &resp->code);
	return 0;
}

/* The error a non-2xx answer stands for: a Status document's message (and reason), else the
 * body text as client-go would quote it. */
static void describe_failure(const struct response *resp, struct sm_error *reterr)
{
	cJSON *doc = resp->body ? cJSON_ParseWithLength(resp->body, resp->len) : NULL;
	const cJSON *kind = cJSON_GetObjectItemCaseSensitive(doc, "kind");
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(doc, "message");
	const cJSON *reason = cJSON_GetObjectItemCaseSensitive(doc, "reason");

	if (cJSON_IsString(kind) && strcmp(kind->valuestring, "Status") == 0 &&
	    cJSON_IsString(msg)) {
		sm_error_set(reterr, "HTTP %ld %s: %s", resp->code,
		             cJSON_IsString(reason) ? reason->valuestring : "(no reason)",
		             msg->valuestring);
	} else {
		int len = resp->len > 300 ? 300 : (int)resp->len;

		sm_error_set(reterr, "HTTP %ld: %.*s", resp->code, len,
		             resp->body ? resp->body : "");
		/* One line. */
		for (char *p = reterr ? reterr->message : NULL; p && *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
	}
	cJSON_Delete(doc);
}

/* GET path and parse a 200 JSON answer. */
static int get_json(struct client *c, const char *path, cJSON **ret, struct sm_error *reterr)
{
	struct response resp;
	cJSON *doc;
	int r;

	r = client_get(c, path, &resp, reterr);
	if (r < 0)
		return r;
	if (resp.code < 200 || resp.code > 299) {
		describe_failure(&resp, reterr);
		response_done(&resp);
		return -EPROTO;
	}
	doc = cJSON_ParseWithLength(resp.body ? resp.body : "", resp.len);
	if (!doc) {
		sm_error_set(reterr, "HTTP %ld with a body that is not JSON", resp.code);
		response_done(&resp);
		return -EPROTO;
	}
	response_done(&resp);
	*ret = doc;
	return 0;
}

/* The preferred custom.metrics.k8s.io version from /apis, as the HPA's client picks it;
 * v1beta2 when discovery does not say. */
static const char *custom_version(struct client *c)
{
	struct sm_error err = {0};
	cJSON *doc = NULL;
	const cJSON *groups, *g;
	const char *found = NULL;

	if (c->custom_version)
		return c->custom_version;
	if (get_json(c, "/apis", &doc, &err) < 0) {
		(void)printf("note: discovery GET /apis failed (%s); using %s/v1beta2\n",
		             err.message, CUSTOM_GROUP);
	} else {
		groups = cJSON_GetObjectItemCaseSensitive(doc, "groups");
		cJSON_ArrayForEach(g, groups)
		{
			const cJSON *name = cJSON_GetObjectItemCaseSensitive(g, "name");
			const cJSON *pref = cJSON_GetObjectItemCaseSensitive(g, "preferredVersion");
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(pref, "version");

			if (cJSON_IsString(name) && strcmp(name->valuestring, CUSTOM_GROUP) == 0 &&
			    cJSON_IsString(v))
				found = v->valuestring;
		}
		if (!found)
			(void)printf("note: /apis does not list %s; using v1beta2\n", CUSTOM_GROUP);
	}
	c->custom_version = strdup(found ? found : "v1beta2");
	cJSON_Delete(doc);
	return c->custom_version ? c->custom_version : "v1beta2";
}

/* ---------------------------------------------------------------------------------------- */
/* Input */

static int read_stream(FILE *f, size_t max, char **ret, size_t *ret_len)
{
	char *buf = NULL, *nb;
	size_t len = 0, cap = 0, n;

	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 16384;
			if (cap > max + 1)
				cap = max + 1;
			if (cap <= len) {
				free(buf);
				return -EFBIG;
			}
			nb = realloc(buf, cap + 1);
			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (len > max) {
			free(buf);
			return -EFBIG;
		}
		if (n == 0) {
			if (ferror(f)) {
				free(buf);
				return -EIO;
			}
			break;
		}
	}
	if (!buf) {
		buf = malloc(1);
		if (!buf)
			return -ENOMEM;
	}
	buf[len] = '\0';
	*ret = buf;
	*ret_len = len;
	return 0;
}

static int read_small_file(const char *path, size_t max, char **ret, size_t *ret_len)
{
	FILE *f;
	int r;

	if (strcmp(path, "-") == 0)
		return read_stream(stdin, max, ret, ret_len);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	r = read_stream(f, max, ret, ret_len);
	(void)fclose(f);
	return r;
}

/* ---------------------------------------------------------------------------------------- */
/* The HPA document (libyaml's document API: the whole tree, then lookups). */

struct doc_ctx {
	yaml_document_t *doc;
	const char *file;
};

static yaml_node_t *ynode(const struct doc_ctx *d, yaml_node_item_t id)
{
	return yaml_document_get_node(d->doc, id);
}

static yaml_node_t *yget(const struct doc_ctx *d, const yaml_node_t *map, const char *key)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = ynode(d, p->key);

		if (k && k->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)k->data.scalar.value, key) == 0)
			return ynode(d, p->value);
	}
	return NULL;
}

static const char *yscalar(const yaml_node_t *n)
{
	if (!n || n->type != YAML_SCALAR_NODE)
		return NULL;
	return (const char *)n->data.scalar.value;
}

static const char *ystr(const struct doc_ctx *d, const yaml_node_t *map, const char *key)
{
	return yscalar(yget(d, map, key));
}

static size_t yseq_len(const yaml_node_t *n)
{
	if (!n || n->type != YAML_SEQUENCE_NODE)
		return 0;
	return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static yaml_node_t *yseq_item(const struct doc_ctx *d, const yaml_node_t *n, size_t i)
{
	return ynode(d, n->data.sequence.items.start[i]);
}

static bool yis_null(const yaml_node_t *n)
{
	const char *s = yscalar(n);

	return !n || (s && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	              (s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0));
}

static void where(const struct doc_ctx *d, const yaml_node_t *n, char *buf, size_t size)
{
	if (n)
		(void)snprintf(buf, size, "%s:%zu:%zu", d->file, n->start_mark.line + 1,
		               n->start_mark.column + 1);
	else
		(void)snprintf(buf, size, "%s", d->file);
}

static int int32_field(const struct doc_ctx *d, const yaml_node_t *map, const char *key,
                       int32_t *ret, bool *ret_found)
{
	const yaml_node_t *n = yget(d, map, key);
	char at[300];
	int64_t v;

	*ret_found = false;
	if (yis_null(n))
		return 0;
	if (!yscalar(n) || sm_number_parse_int64(yscalar(n), &v) < 0 || v < 0 || v > INT32_MAX) {
		where(d, n, at, sizeof(at));
		(void)fprintf(stderr, "%s: %s must be a non-negative integer\n", at, key);
		return -EINVAL;
	}
	*ret = (int32_t)v;
	*ret_found = true;
	return 0;
}

/* A bounded string builder: appends until full, then only remembers that it overflowed. */
struct strbuf {
	char *buf;
	size_t size;
	size_t len;
	bool overflow;
};

static void sb_add(struct strbuf *sb, const char *fmt, ...) SM_PRINTF(2, 3);
static void sb_add(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (sb->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(sb->buf + sb->len, sb->size - sb->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sb->size - sb->len) {
		sb->overflow = true;
		sb->buf[sb->len] = '\0';
		return;
	}
	sb->len += (size_t)n;
}

/* metav1.LabelSelectorAsSelector(...).String(): matchLabels as k=v, matchExpressions as
 * "k in (a,b)", "k notin (a,b)", "k", "!k"; then canonical (sorted) through our parser. */
static int selector_string(const struct doc_ctx *d, const yaml_node_t *sel, char **ret, char *err,
                           size_t errlen)
{
	char text[8192] = "", canon[8192];
	struct strbuf sb = {text, sizeof(text), 0, false};
	const yaml_node_t *ml, *me;
	struct sm_selector *parsed = NULL;
	struct sm_error perr = {0};
	int r;

	if (!yis_null(sel) && sel->type != YAML_MAPPING_NODE) {
		(void)snprintf(err, errlen, "selector must be a mapping");
		return -EINVAL;
	}
	ml = yget(d, sel, "matchLabels");
	if (ml && ml->type == YAML_MAPPING_NODE) {
		for (yaml_node_pair_t *p = ml->data.mapping.pairs.start;
		     p < ml->data.mapping.pairs.top; p++) {
			const char *k = yscalar(ynode(d, p->key));
			const char *v = yscalar(ynode(d, p->value));

			if (!k || !v) {
				(void)snprintf(err, errlen,
				               "matchLabels must map strings to strings");
				return -EINVAL;
			}
			sb_add(&sb, "%s%s=%s", sb.len ? "," : "", k, v);
		}
	}
	me = yget(d, sel, "matchExpressions");
	for (size_t i = 0; i < yseq_len(me); i++) {
		const yaml_node_t *e = yseq_item(d, me, i);
		const char *key = ystr(d, e, "key"), *op = ystr(d, e, "operator");
		const yaml_node_t *vals = yget(d, e, "values");

		if (!key || !op) {
			(void)snprintf(err, errlen, "matchExpressions[%zu] needs key and operator",
			               i);
			return -EINVAL;
		}
		if (strcmp(op, "In") == 0 || strcmp(op, "NotIn") == 0) {
			if (yseq_len(vals) == 0) {
				(void)snprintf(
				    err, errlen,
				    "matchExpressions[%zu]: for 'In', 'NotIn' operators, "
				    "values set can't be empty",
				    i);
				return -EINVAL;
			}
			sb_add(&sb, "%s%s %s (", sb.len ? "," : "", key,
			       strcmp(op, "In") == 0 ? "in" : "notin");
			for (size_t j = 0; j < yseq_len(vals); j++) {
				const char *v = yscalar(yseq_item(d, vals, j));

				sb_add(&sb, "%s%s", j ? "," : "", v ? v : "");
			}
			sb_add(&sb, ")");
		} else if (strcmp(op, "Exists") == 0) {
			sb_add(&sb, "%s%s", sb.len ? "," : "", key);
		} else if (strcmp(op, "DoesNotExist") == 0) {
			sb_add(&sb, "%s!%s", sb.len ? "," : "", key);
		} else {
			(void)snprintf(err, errlen, "'%s' is not a valid label selector operator",
			               op);
			return -EINVAL;
		}
	}
	if (sb.overflow) {
		(void)snprintf(err, errlen, "selector too long");
		return -EINVAL;
	}
	r = sm_selector_parse(text, &parsed, &perr);
	if (r < 0) {
		(void)snprintf(err, errlen, "invalid selector '%.200s': %.250s", text,
		               perr.message);
		return r;
	}
	(void)sm_selector_format(parsed, canon, sizeof(canon));
	sm_selector_free(parsed);
	*ret = strdup(canon);
	return *ret ? 0 : -ENOMEM;
}

/* The MetricTarget: type and the quantity for it, as milli-values. */
static void parse_target(const struct doc_ctx *d, const yaml_node_t *target, struct metric *m)
{
	const char *type = ystr(d, target, "type");
	const char *field;
	struct sm_error err = {0};

	m->target_type = sm_hpa_target_type_from_string(type);
	switch (m->target_type) {
	case SM_HPA_TARGET_VALUE:
		field = "value";
		break;
	case SM_HPA_TARGET_AVERAGE_VALUE:
		field = "averageValue";
		break;
	case SM_HPA_TARGET_UTILIZATION:
		m->target_text = ystr(d, target, "averageUtilization");
		return;
	default:
		(void)snprintf(m->error, sizeof(m->error),
		               "target.type '%s' is not Value, AverageValue or Utilization",
		               type ? type : "");
		return;
	}
	m->target_text = ystr(d, target, field);
	if (!m->target_text) {
		(void)snprintf(m->error, sizeof(m->error), "target.type %s needs target.%s", type,
		               field);
		return;
	}
	if (sm_hpa_milli_value(m->target_text, &m->target_milli, &err) < 0) {
		(void)snprintf(m->error, sizeof(m->error), "target.%s: %.400s", field, err.message);
		return;
	}
	if (m->target_milli <= 0)
		(void)snprintf(m->error, sizeof(m->error), "target.%s must be positive", field);
}

static const char *const metric_keys[SM_HPA_METRIC_TYPE_MAX] = {
    [SM_HPA_METRIC_CONTAINER_RESOURCE] = "containerResource",
    [SM_HPA_METRIC_EXTERNAL] = "external",
    [SM_HPA_METRIC_OBJECT] = "object",
    [SM_HPA_METRIC_PODS] = "pods",
    [SM_HPA_METRIC_RESOURCE] = "resource",
};

static int parse_metric(const struct doc_ctx *d, const yaml_node_t *node, struct metric *m)
{
	const char *type = ystr(d, node, "type");
	const yaml_node_t *src, *metric;
	int r;

	*m = (struct metric){.type = sm_hpa_metric_type_from_string(type)};
	if (m->type == SM_HPA_METRIC_TYPE_INVALID) {
		(void)snprintf(m->error, sizeof(m->error), "unknown metric type '%s'",
		               type ? type : "");
		return 0;
	}
	src = yget(d, node, metric_keys[m->type]);
	if (!src || src->type != YAML_MAPPING_NODE) {
		(void)snprintf(m->error, sizeof(m->error), "type %s needs a '%s' mapping", type,
		               metric_keys[m->type]);
		return 0;
	}
	if (m->type == SM_HPA_METRIC_RESOURCE || m->type == SM_HPA_METRIC_CONTAINER_RESOURCE) {
		m->resource_name = ystr(d, src, "name");
		m->container = ystr(d, src, "container");
		parse_target(d, yget(d, src, "target"), m);
		m->error[0] = '\0'; /* not ours to judge */
		return 0;
	}
	metric = yget(d, src, "metric");
	m->name = ystr(d, metric, "name");
	if (!m->name || m->name[0] == '\0') {
		(void)snprintf(m->error, sizeof(m->error), "%s.metric.name is missing",
		               metric_keys[m->type]);
		return 0;
	}
	r = selector_string(d, yget(d, metric, "selector"), &m->selector, m->error,
	                    sizeof(m->error));
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return 0;
	if (m->type == SM_HPA_METRIC_OBJECT) {
		const yaml_node_t *obj = yget(d, src, "describedObject");

		m->object_kind = ystr(d, obj, "kind");
		m->object_name = ystr(d, obj, "name");
		m->object_api_version = ystr(d, obj, "apiVersion");
		if (!m->object_kind || !m->object_name) {
			(void)snprintf(m->error, sizeof(m->error),
			               "object.describedObject needs kind and name");
			return 0;
		}
	}
	parse_target(d, yget(d, src, "target"), m);
	return 0;
}

static void hpa_free_metrics(struct hpa *h)
{
	for (size_t i = 0; i < h->n_metrics; i++)
		free(h->metrics[i].selector);
	free(h->metrics);
	h->metrics = NULL;
	h->n_metrics = 0;
}

/* Reads one HorizontalPodAutoscaler mapping. Problems with the document itself go to stderr
 * and return -EINVAL; a single unusable metric is kept, with its error, to be reported in
 * its place. */
static int parse_hpa(const struct doc_ctx *d, const yaml_node_t *root, const struct options *opt,
                     struct hpa *h)
{
	const char *api = ystr(d, root, "apiVersion");
	const yaml_node_t *meta = yget(d, root, "metadata"), *spec = yget(d, root, "spec");
	const yaml_node_t *status = yget(d, root, "status"), *metrics, *ref;
	char at[300];
	bool found;
	int r;

	*h = (struct hpa){.min_replicas = 1};
	where(d, root, at, sizeof(at));
	if (!api ||
	    (strcmp(api, "autoscaling/v2") != 0 && strcmp(api, "autoscaling/v2beta2") != 0)) {
		(void)fprintf(
		    stderr,
		    "%s: apiVersion '%s': explain reads autoscaling/v2 (autoscaling/v1 has "
		    "no custom or external metrics; `kubectl get hpa.v2.autoscaling NAME "
		    "-o yaml` prints v2)\n",
		    at, api ? api : "");
		return -EINVAL;
	}
	if (!spec || spec->type != YAML_MAPPING_NODE) {
		(void)fprintf(stderr, "%s: the HorizontalPodAutoscaler has no spec\n", at);
		return -EINVAL;
	}
	h->name = ystr(d, meta, "name");
	if (!h->name)
		h->name = "(unnamed)";
	h->namespace = opt->namespace ? opt->namespace : ystr(d, meta, "namespace");
	if (!h->namespace || h->namespace[0] == '\0')
		h->namespace = "default";
	ref = yget(d, spec, "scaleTargetRef");
	h->target_kind = ystr(d, ref, "kind");
	h->target_name = ystr(d, ref, "name");
	h->has_behavior = !yis_null(yget(d, spec, "behavior"));

	if (int32_field(d, spec, "minReplicas", &h->min_replicas, &found) < 0)
		return -EINVAL;
	if (!found)
		h->min_replicas = 1;
	if (int32_field(d, spec, "maxReplicas", &h->max_replicas, &found) < 0)
		return -EINVAL;
	if (!found || h->max_replicas < 1 || h->max_replicas < h->min_replicas) {
		(void)fprintf(stderr,
		              "%s: spec.maxReplicas must be set, at least 1 and at least "
		              "minReplicas\n",
		              at);
		return -EINVAL;
	}

	if (opt->has_current) {
		h->current = opt->current;
		h->current_from = "--current-replicas";
	} else if (status && status->type == YAML_MAPPING_NODE) {
		if (int32_field(d, status, "currentReplicas", &h->current, &found) < 0)
			return -EINVAL;
		h->current_from =
		    found ? "status.currentReplicas" : "status without currentReplicas, i.e. 0";
	} else {
		(void)fprintf(stderr,
		              "%s: HPA '%s' has no status.currentReplicas: pass --current-replicas "
		              "N\n",
		              at, h->name);
		return -EINVAL;
	}

	metrics = yget(d, spec, "metrics");
	if (yseq_len(metrics) == 0) {
		(void)fprintf(stderr,
		              "%s: spec.metrics is empty: the HPA then scales on 80%% CPU, which "
		              "scalemetrics does not serve\n",
		              at);
		return -EINVAL;
	}
	h->metrics = calloc(yseq_len(metrics), sizeof(*h->metrics));
	if (!h->metrics)
		return -ENOMEM;
	for (size_t i = 0; i < yseq_len(metrics); i++) {
		r = parse_metric(d, yseq_item(d, metrics, i), &h->metrics[i]);
		h->n_metrics = i + 1;
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Asking the server and doing the HPA's arithmetic */

/* Kind -> plural resource, as the RESTMapper guesses it (Deployment -> deployments, Ingress
 * -> ingresses, NetworkPolicy -> networkpolicies), plus ".group" for non-core groups. */
static int object_resource(const char *kind, const char *api_version, char *buf, size_t size)
{
	char lower[256];
	size_t n = strlen(kind), glen = 0;
	const char *slash = api_version ? strchr(api_version, '/') : NULL;
	int r;

	if (n == 0 || n >= sizeof(lower) - 4)
		return -EINVAL;
	for (size_t i = 0; i <= n; i++)
		lower[i] =
		    (char)((kind[i] >= 'A' && kind[i] <= 'Z') ? kind[i] - 'A' + 'a' : kind[i]);
	if (lower[n - 1] == 's') {
		memcpy(lower + n, "es", 3);
	} else if (lower[n - 1] == 'y') {
		memcpy(lower + n - 1, "ies", 4);
	} else {
		memcpy(lower + n, "s", 2);
	}
	if (slash)
		glen = (size_t)(slash - api_version);
	if (glen > 0)
		r = snprintf(buf, size, "%s.%.*s", lower, (int)glen, api_version);
	else
		r = snprintf(buf, size, "%s", lower);
	return r < 0 || (size_t)r >= size ? -ENAMETOOLONG : 0;
}

static int build_path(struct client *c, const struct hpa *h, const struct metric *m, char *path,
                      size_t size, const char *pod_selector)
{
	char ns[512], name[1024], obj[1024], res[300];
	int r;

	r = path_escape(h->namespace, ns, sizeof(ns));
	if (r == 0)
		r = path_escape(m->name, name, sizeof(name));
	if (r < 0)
		return r;
	switch (m->type) {
	case SM_HPA_METRIC_EXTERNAL:
		r = snprintf(path, size, EXTERNAL_BASE "/namespaces/%s/%s", ns, name);
		if (r < 0 || (size_t)r >= size)
			return -ENAMETOOLONG;
		return add_query(path, size, "labelSelector", m->selector);
	case SM_HPA_METRIC_PODS:
		r = snprintf(path, size, "/apis/" CUSTOM_GROUP "/%s/namespaces/%s/pods/%%2A/%s",
		             custom_version(c), ns, name);
		if (r < 0 || (size_t)r >= size)
			return -ENAMETOOLONG;
		r = add_query(path, size, "labelSelector", pod_selector);
		if (r < 0)
			return r;
		return add_query(path, size, "metricLabelSelector", m->selector);
	case SM_HPA_METRIC_OBJECT:
		if (strcmp(m->object_kind, "Namespace") == 0) {
			/* The HPA ignores the name: objects never leave the HPA's namespace. */
			r = snprintf(path, size,
			             "/apis/" CUSTOM_GROUP "/%s/namespaces/%s/metrics/%s",
			             custom_version(c), ns, name);
		} else {
			if (object_resource(m->object_kind, m->object_api_version, res,
			                    sizeof(res)) < 0 ||
			    path_escape(m->object_name, obj, sizeof(obj)) < 0)
				return -EINVAL;
			r = snprintf(path, size, "/apis/" CUSTOM_GROUP "/%s/namespaces/%s/%s/%s/%s",
			             custom_version(c), ns, res, obj, name);
		}
		if (r < 0 || (size_t)r >= size)
			return -ENAMETOOLONG;
		return add_query(path, size, "metricLabelSelector", m->selector);
	default:
		return -EINVAL;
	}
}

/* Prints one item as the HPA reads it, and returns its value.MilliValue(). */
static int read_item(const cJSON *item, size_t i, bool show, int64_t *ret_milli,
                     struct sm_error *reterr)
{
	const cJSON *value = cJSON_GetObjectItemCaseSensitive(item, "value");
	const cJSON *mname = cJSON_GetObjectItemCaseSensitive(item, "metricName");
	const cJSON *metric = cJSON_GetObjectItemCaseSensitive(item, "metric");
	const cJSON *labels = cJSON_GetObjectItemCaseSensitive(item, "metricLabels");
	const cJSON *obj = cJSON_GetObjectItemCaseSensitive(item, "describedObject");
	const cJSON *okind = cJSON_GetObjectItemCaseSensitive(obj, "kind");
	const cJSON *oname = cJSON_GetObjectItemCaseSensitive(obj, "name");
	const cJSON *l;
	struct sm_error err = {0};
	char line[1024] = "";
	struct strbuf sb = {line, sizeof(line), 0, false};
	int64_t milli;

	if (!cJSON_IsString(value)) {
		sm_error_set(reterr, "item %zu has no value", i);
		return -EPROTO;
	}
	if (sm_hpa_milli_value(value->valuestring, &milli, &err) < 0) {
		sm_error_set(reterr, "item %zu: %s", i, err.message);
		return -EPROTO;
	}
	*ret_milli = milli;
	if (!show)
		return 0;
	/* v1beta1 items name the metric in metricName, v1beta2 in metric.name. */
	if (!cJSON_IsString(mname))
		mname = cJSON_GetObjectItemCaseSensitive(metric, "name");
	if (cJSON_IsString(okind) && cJSON_IsString(oname))
		sb_add(&sb, "%s/%s ", okind->valuestring, oname->valuestring);
	sb_add(&sb, "%s", cJSON_IsString(mname) ? mname->valuestring : "?");
	if (cJSON_IsObject(labels) && labels->child) {
		sb_add(&sb, "{");
		cJSON_ArrayForEach(l, labels)
		{
			sb_add(&sb, "%s%s=\"%s\"", l == labels->child ? "" : ",", l->string,
			       cJSON_IsString(l) ? l->valuestring : "?");
		}
		sb_add(&sb, "}");
	}
	(void)printf("    %s%s = %s   (%lldm)\n", line, sb.overflow ? "..." : "",
	             value->valuestring, (long long)milli);
	return 0;
}

static void print_tolerance(const struct sm_hpa_proposal *p)
{
	if (p->within_tolerance)
		(void)printf(", within the tolerance (|1 - ratio| <= %.1f): the HPA keeps the "
		             "current count\n",
		             SM_HPA_DEFAULT_TOLERANCE);
	else
		(void)printf(", outside the tolerance [%.1f, %.1f]\n",
		             1.0 - SM_HPA_DEFAULT_TOLERANCE, 1.0 + SM_HPA_DEFAULT_TOLERANCE);
}

/* Computes and prints one metric's proposal; -1 when it failed. */
static int32_t explain_metric(struct client *c, const struct hpa *h, size_t idx, bool *ret_ok)
{
	const struct metric *m = &h->metrics[idx];
	const char *type = sm_hpa_metric_type_to_string(m->type);
	char path[8192], a[96], b[96], t[40], pod_sel[4096] = "";
	struct sm_error err = {0};
	struct sm_hpa_proposal p = {0};
	cJSON *doc = NULL;
	const cJSON *items, *item;
	int64_t *values = NULL, usage = 0;
	size_t n = 0, i = 0, missing = 0;
	int32_t proposal = -1;
	int r;

	*ret_ok = false;
	(void)printf("\nmetric %zu of %zu: %s", idx + 1, h->n_metrics, type ? type : "(invalid)");
	if (m->name)
		(void)printf(" '%s'", m->name);
	if (m->selector && m->selector[0])
		(void)printf(" with selector '%s'", m->selector);
	if (m->type == SM_HPA_METRIC_OBJECT && m->object_kind)
		(void)printf(" on %s/%s", m->object_kind, m->object_name ? m->object_name : "?");
	if (m->type == SM_HPA_METRIC_RESOURCE || m->type == SM_HPA_METRIC_CONTAINER_RESOURCE)
		(void)printf(" '%s'%s%s", m->resource_name ? m->resource_name : "?",
		             m->container ? " of container " : "",
		             m->container ? m->container : "");
	if (m->target_text && m->target_type != SM_HPA_TARGET_TYPE_INVALID)
		(void)printf(", target %s %s", sm_hpa_target_type_to_string(m->target_type),
		             m->target_text);
	(void)printf("\n");

	if (m->type == SM_HPA_METRIC_RESOURCE || m->type == SM_HPA_METRIC_CONTAINER_RESOURCE) {
		(void)printf("  not served by scalemetrics: %s metrics come from metrics.k8s.io "
		             "(metrics-server); left out of the decision below, although the HPA "
		             "counts it\n",
		             type);
		*ret_ok = true;
		return -2;
	}
	if (m->error[0]) {
		(void)printf("  FAILED: invalid metric spec: %s\n", m->error);
		return -1;
	}
	if (m->target_type == SM_HPA_TARGET_UTILIZATION ||
	    (m->type == SM_HPA_METRIC_PODS && m->target_type != SM_HPA_TARGET_AVERAGE_VALUE)) {
		(void)printf("  FAILED: a %s metric cannot have a %s target (the API server would "
		             "refuse this HPA)\n",
		             type, sm_hpa_target_type_to_string(m->target_type));
		return -1;
	}

	if (m->type == SM_HPA_METRIC_PODS) {
		if (c->opt->pod_selector) {
			struct sm_selector *ps = NULL;

			if (sm_selector_parse(c->opt->pod_selector, &ps, &err) < 0) {
				(void)printf("  FAILED: --pod-selector: %s\n", err.message);
				return -1;
			}
			(void)sm_selector_format(ps, pod_sel, sizeof(pod_sel));
			sm_selector_free(ps);
		} else {
			(void)printf(
			    "  note: the HPA asks for the pods of %s/%s with the target's "
			    "own selector (its scale subresource's status.selector); without "
			    "--pod-selector this asks for every pod in namespace '%s'\n",
			    h->target_kind ? h->target_kind : "?",
			    h->target_name ? h->target_name : "?", h->namespace);
		}
	}
	r = build_path(c, h, m, path, sizeof(path), pod_sel);
	if (r < 0) {
		(void)printf("  FAILED: cannot build the request path: %s\n", strerror(-r));
		return -1;
	}
	(void)printf("  GET %s\n", path);
	r = get_json(c, path, &doc, &err);
	if (r < 0) {
		(void)printf("  FAILED: %s\n", err.message);
		goto out;
	}
	items = cJSON_GetObjectItemCaseSensitive(doc, "items");
	if (!cJSON_IsArray(items)) {
		(void)printf("  FAILED: the answer has no items list\n");
		goto out;
	}
	n = (size_t)cJSON_GetArraySize(items);
	(void)printf("  %zu item%s%s\n", n, n == 1 ? "" : "s", n ? ":" : "");
	if (n == 0) {
		(void)printf("  FAILED: %s\n", m->type == SM_HPA_METRIC_EXTERNAL
		                                   ? "no metrics returned from external metrics API"
		                                   : "no metrics returned from custom metrics API");
		goto out;
	}
	if (m->type == SM_HPA_METRIC_OBJECT && n != 1) {
		(void)printf("  FAILED: the custom metrics API server returned %zu results when we "
		             "asked for exactly one\n",
		             n);
		goto out;
	}
	values = calloc(n, sizeof(*values));
	if (!values) {
		(void)printf("  FAILED: out of memory\n");
		goto out;
	}
	cJSON_ArrayForEach(item, items)
	{
		if (read_item(item, i, i < MAX_ITEMS_SHOWN, &values[i], &err) < 0) {
			(void)printf("  FAILED: %s\n", err.message);
			goto out;
		}
		i++;
	}
	if (n > MAX_ITEMS_SHOWN)
		(void)printf("    ... and %zu more\n", n - MAX_ITEMS_SHOWN);

	switch (m->type) {
	case SM_HPA_METRIC_EXTERNAL:
		if (sm_hpa_sum_milli(values, n, &usage) < 0) {
			(void)printf("  FAILED: the sum overflows\n");
			goto out;
		}
		(void)printf("  value the HPA uses: the sum of the %zu item%s = %s\n", n,
		             n == 1 ? "" : "s", milli_both(usage, a));
		break;
	case SM_HPA_METRIC_OBJECT:
		usage = values[0];
		(void)printf("  value the HPA uses: %s\n", milli_both(usage, a));
		break;
	default:
		break;
	}

	if (m->type == SM_HPA_METRIC_PODS) {
		missing = h->current > 0 && (size_t)h->current > n ? (size_t)h->current - n : 0;
		r = sm_hpa_pods_replicas(h->current, values, n, missing, 0, m->target_milli,
		                         SM_HPA_DEFAULT_TOLERANCE, &p);
		if (r < 0) {
			(void)printf("  FAILED: %s\n", strerror(-r));
			goto out;
		}
		(void)printf("  value the HPA uses: the average of the %zu pod value%s (integer "
		             "milli division) = %s\n",
		             n, n == 1 ? "" : "s", milli_both(p.current_milli, a));
		(void)printf("  target: averageValue %s = %s per pod\n", m->target_text,
		             milli_both(m->target_milli, b));
		(void)printf("  ratio: %lldm / %lldm = %.4f", (long long)p.current_milli,
		             (long long)m->target_milli, p.ratio);
		if (p.adjusted_pods == 0) {
			print_tolerance(&p);
			if (p.within_tolerance)
				(void)printf("  proposal: %d replicas (the current count)\n",
				             p.replicas);
			else
				(void)printf("  proposal: ceil(%.4f x %zu pods) = %d replicas\n",
				             p.ratio, n, p.replicas);
		} else {
			(void)printf(
			    "\n  %zu of the %d current replicas reported no value: the HPA "
			    "counts them as %s\n",
			    missing, h->current,
			    p.ratio < 1.0 ? "using the target (this is a scale-down)"
			                  : "using 0 (this is a scale-up)");
			(void)printf("  recomputed over %zu pods: average %s, ratio %.4f",
			             p.adjusted_pods, milli_both(p.adjusted_milli, b),
			             p.adjusted_ratio);
			if (p.direction_reversed)
				(void)printf(", which reverses the direction: the HPA keeps the "
				             "current count\n");
			else
				print_tolerance(&p);
			if (p.within_tolerance || p.direction_reversed)
				(void)printf("  proposal: %d replicas (the current count)\n",
				             p.replicas);
			else
				(void)printf("  proposal: ceil(%.4f x %zu pods) = %d replicas\n",
				             p.adjusted_ratio, p.adjusted_pods, p.replicas);
		}
	} else if (m->target_type == SM_HPA_TARGET_VALUE) {
		r = sm_hpa_value_replicas(h->current, h->current, usage, m->target_milli,
		                          SM_HPA_DEFAULT_TOLERANCE, &p);
		if (r < 0) {
			(void)printf("  FAILED: %s\n", strerror(-r));
			goto out;
		}
		(void)printf("  target: value %s = %s in total\n", m->target_text,
		             milli_both(m->target_milli, b));
		(void)printf("  ratio: %lldm / %lldm = %.4f", (long long)usage,
		             (long long)m->target_milli, p.ratio);
		if (h->current == 0) {
			(void)printf(" (current replicas 0: no tolerance)\n");
			(void)printf("  proposal: ceil(%.4f) = %d replicas\n", p.ratio, p.replicas);
		} else {
			print_tolerance(&p);
			if (p.within_tolerance)
				(void)printf("  proposal: %d replicas (the current count)\n",
				             p.replicas);
			else
				(void)printf("  proposal: ceil(%.4f x %d ready pods) = %d replicas "
				             "(assuming all %d current replicas are ready)\n",
				             p.ratio, h->current, p.replicas, h->current);
		}
	} else {
		r = sm_hpa_average_value_replicas(h->current, usage, m->target_milli,
		                                  SM_HPA_DEFAULT_TOLERANCE, &p);
		if (r < 0) {
			(void)printf("  FAILED: %s\n", strerror(-r));
			goto out;
		}
		(void)printf("  target: averageValue %s = %s per replica\n", m->target_text,
		             milli_both(m->target_milli, b));
		(void)printf("  ratio: %lldm / (%lldm x %d current replicas) = %.4f",
		             (long long)usage, (long long)m->target_milli, h->current, p.ratio);
		print_tolerance(&p);
		if (h->current > 0)
			(void)printf("  per replica now: %s (what kubectl describe hpa shows)\n",
			             milli_text(p.current_milli, t));
		if (p.within_tolerance)
			(void)printf("  proposal: %d replicas (the current count)\n", p.replicas);
		else
			(void)printf("  proposal: ceil(%lldm / %lldm) = %d replicas\n",
			             (long long)usage, (long long)m->target_milli, p.replicas);
	}
	proposal = p.replicas;
	*ret_ok = true;
out:
	free(values);
	cJSON_Delete(doc);
	return proposal;
}

static const char *outcome_text(const struct sm_hpa_decision *d)
{
	switch (d->outcome) {
	case SM_HPA_OUTCOME_DISABLED:
		return "the target has 0 replicas and minReplicas is not 0: the HPA considers "
		       "autoscaling disabled and does not touch it";
	case SM_HPA_OUTCOME_ABOVE_MAX:
		return "the current count is above maxReplicas: the HPA sets maxReplicas without "
		       "looking at the metrics";
	case SM_HPA_OUTCOME_BELOW_MIN:
		return "the current count is below minReplicas: the HPA sets minReplicas without "
		       "looking at the metrics";
	case SM_HPA_OUTCOME_ALL_FAILED:
		return "no metric could be computed: the HPA keeps the current count (condition "
		       "ScalingActive=False)";
	case SM_HPA_OUTCOME_FAILED_DOWN:
		return "a metric failed and the others would scale down: the HPA keeps the "
		       "current count (it only scales up on partial metrics)";
	default:
		return NULL;
	}
}

static bool explain_hpa(struct client *c, const struct hpa *h)
{
	struct sm_hpa_bounds bounds = {h->min_replicas, h->max_replicas, h->has_behavior};
	struct sm_hpa_decision d;
	int32_t *proposals = NULL, *decide_in = NULL;
	size_t *decide_idx = NULL, n_in = 0;
	bool all_ok = true, ok;
	const char *why;

	(void)printf("HorizontalPodAutoscaler %s/%s -> %s/%s\n", h->namespace, h->name,
	             h->target_kind ? h->target_kind : "?", h->target_name ? h->target_name : "?");
	(void)printf("  minReplicas %d, maxReplicas %d, current replicas %d (from %s)\n",
	             h->min_replicas, h->max_replicas, h->current, h->current_from);

	proposals = calloc(h->n_metrics, sizeof(*proposals));
	decide_in = calloc(h->n_metrics, sizeof(*decide_in));
	decide_idx = calloc(h->n_metrics, sizeof(*decide_idx));
	if (!proposals || !decide_in || !decide_idx) {
		(void)fprintf(stderr, "scalemetrics explain: out of memory\n");
		all_ok = false;
		goto out;
	}
	for (size_t i = 0; i < h->n_metrics; i++) {
		proposals[i] = explain_metric(c, h, i, &ok);
		all_ok = all_ok && ok;
		if (proposals[i] == -2)
			continue; /* not ours: out of the decision */
		decide_in[n_in] = proposals[i];
		decide_idx[n_in++] = i;
	}

	(void)printf("\ndecision:\n");
	if (sm_hpa_decide(h->current, &bounds, decide_in, n_in, &d) < 0) {
		(void)printf("  cannot decide: invalid replica bounds\n");
		all_ok = false;
		goto out;
	}
	if (n_in == 0) {
		(void)printf("  no metric served by scalemetrics: nothing to decide here\n");
		goto out;
	}
	(void)printf("  proposals:");
	for (size_t i = 0; i < h->n_metrics; i++) {
		if (proposals[i] >= 0)
			(void)printf(" metric %zu: %d;", i + 1, proposals[i]);
		else if (proposals[i] == -1)
			(void)printf(" metric %zu: FAILED;", i + 1);
		else
			(void)printf(" metric %zu: not ours;", i + 1);
	}
	(void)printf("\n");
	why = outcome_text(&d);
	if (why) {
		(void)printf("  %s\n", why);
	} else {
		const struct metric *w = &h->metrics[decide_idx[d.winner]];

		(void)printf("  largest proposal: %d replicas (metric %zu, %s '%s'); the HPA takes "
		             "the largest of all metrics\n",
		             d.proposal, decide_idx[d.winner] + 1,
		             sm_hpa_metric_type_to_string(w->type), w->name);
		switch (d.limit) {
		case SM_HPA_LIMIT_TOO_FEW:
			(void)printf("  raised to minReplicas %d (the HPA never goes below it)\n",
			             h->min_replicas);
			break;
		case SM_HPA_LIMIT_TOO_MANY:
			(void)printf("  lowered to maxReplicas %d\n", h->max_replicas);
			break;
		case SM_HPA_LIMIT_SCALE_UP_LIMIT:
			(void)printf(
			    "  lowered to %d: without spec.behavior the HPA scales up to at "
			    "most max(2 x %d, 4) = %d per step\n",
			    d.desired, h->current, d.desired);
			break;
		default:
			(void)printf("  within minReplicas %d and maxReplicas %d\n",
			             h->min_replicas, h->max_replicas);
			break;
		}
	}
	if (d.desired > h->current)
		(void)printf("  desired replicas: %d (scale up from %d)\n", d.desired, h->current);
	else if (d.desired < h->current)
		(void)printf("  desired replicas: %d (scale down from %d)\n", d.desired,
		             h->current);
	else
		(void)printf("  desired replicas: %d (no change)\n", d.desired);
	if (d.desired < h->current)
		(void)printf(
		    "  note: a scale-down waits for the stabilization window (5 minutes "
		    "by default): the HPA uses the highest recommendation of that window\n");
	if (h->has_behavior)
		(void)printf("  note: spec.behavior policies limit how fast this is reached; they "
		             "depend on the HPA's recent history and are not modelled here\n");
out:
	free(proposals);
	free(decide_in);
	free(decide_idx);
	return all_ok;
}

/* ---------------------------------------------------------------------------------------- */
/* Command line */

static void usage(FILE *f)
{
	(void)fputs(
	    "usage: scalemetrics explain --hpa FILE.yaml|- --server URL [options]\n"
	    "  --hpa FILE|-            an autoscaling/v2 HorizontalPodAutoscaler (or `kubectl get "
	    "hpa X -o yaml`)\n"
	    "  --server URL            the scalemetrics server, e.g. https://127.0.0.1:6443\n"
	    "  --ca-file F             CA to verify the server with\n"
	    "  --insecure              do not verify the server's certificate\n"
	    "  --current-replicas N    default: the HPA's status.currentReplicas\n"
	    "  --namespace NS          default: the HPA's metadata.namespace\n"
	    "  --pod-selector SEL      the target's pod selector, for Pods metrics\n"
	    "  --token-file F          send 'Authorization: Bearer <contents>'\n"
	    "  --cert F --key F        client certificate\n"
	    "  --timeout DURATION      per request, default 10s\n",
	    f);
}

static int parse_args(int argc, char **argv, struct options *o)
{
	static const char *const with_value[] = {
	    "--hpa",       "--server",       "--ca-file",    "--current-replicas",
	    "--namespace", "--pod-selector", "--token-file", "--cert",
	    "--key",       "--timeout",
	};
	const char *val[sizeof(with_value) / sizeof(with_value[0])] = {0};
	int64_t v;

	*o = (struct options){.timeout_ms = DEFAULT_TIMEOUT_MS};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		size_t k, n = sizeof(with_value) / sizeof(with_value[0]);
		const char *eq;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
			return 1;
		if (strcmp(a, "--insecure") == 0) {
			o->insecure = true;
			continue;
		}
		eq = strchr(a, '=');
		for (k = 0; k < n; k++) {
			size_t l = strlen(with_value[k]);

			if (strncmp(a, with_value[k], l) == 0 && (a[l] == '\0' || a[l] == '='))
				break;
		}
		if (k == n) {
			(void)fprintf(stderr, "scalemetrics explain: unexpected argument '%s'\n",
			              a);
			return -EINVAL;
		}
		if (eq) {
			val[k] = eq + 1;
		} else if (i + 1 < argc) {
			val[k] = argv[++i];
		} else {
			(void)fprintf(stderr, "scalemetrics explain: %s needs a value\n", a);
			return -EINVAL;
		}
	}
	o->hpa_path = val[0];
	o->server = val[1];
	o->ca_file = val[2];
	o->namespace = val[4];
	o->pod_selector = val[5];
	o->token_file = val[6];
	o->cert_file = val[7];
	o->key_file = val[8];
	if (!o->hpa_path || !o->server) {
		(void)fprintf(stderr, "scalemetrics explain: --hpa and --server are required\n");
		return -EINVAL;
	}
	if (strncmp(o->server, "https://", 8) != 0 && strncmp(o->server, "http://", 7) != 0) {
		(void)fprintf(stderr, "scalemetrics explain: --server must be an https:// URL\n");
		return -EINVAL;
	}
	if (o->insecure && o->ca_file) {
		(void)fprintf(stderr, "scalemetrics explain: --ca-file and --insecure exclude each "
		                      "other\n");
		return -EINVAL;
	}
	if (!o->cert_file != !o->key_file) {
		(void)fprintf(stderr, "scalemetrics explain: --cert and --key go together\n");
		return -EINVAL;
	}
	if (val[3]) {
		if (sm_number_parse_int64(val[3], &v) < 0 || v < 0 || v > INT32_MAX) {
			(void)fprintf(stderr,
			              "scalemetrics explain: --current-replicas '%s' is not "
			              "a replica count\n",
			              val[3]);
			return -EINVAL;
		}
		o->has_current = true;
		o->current = (int32_t)v;
	}
	if (val[9] &&
	    (sm_number_parse_duration_ms(val[9], &o->timeout_ms) < 0 || o->timeout_ms <= 0)) {
		(void)fprintf(stderr,
		              "scalemetrics explain: --timeout '%s' is not a duration "
		              "such as 5s\n",
		              val[9]);
		return -EINVAL;
	}
	return 0;
}

/* Every HPA in one YAML document: the document itself, or the items of a List. Returns
 * EXIT_OK / EXIT_FAILED / EXIT_USAGE for this document. */
static int explain_document(struct client *c, const struct doc_ctx *d, const struct options *o,
                            size_t *n_hpas)
{
	yaml_node_t *root = yaml_document_get_root_node(d->doc);
	const char *kind = ystr(d, root, "kind");
	const yaml_node_t *items;
	size_t n = 1;
	int ret = EXIT_OK;
	char at[300];

	if (kind && strcmp(kind, "List") == 0) {
		items = yget(d, root, "items");
		n = yseq_len(items);
	} else {
		items = NULL;
	}
	for (size_t i = 0; i < n; i++) {
		const yaml_node_t *node = items ? yseq_item(d, items, i) : root;
		const char *k = ystr(d, node, "kind");
		struct hpa h;
		int r;

		if (!k || strcmp(k, "HorizontalPodAutoscaler") != 0) {
			where(d, node, at, sizeof(at));
			(void)fprintf(stderr, "%s: kind '%s' is not a HorizontalPodAutoscaler\n",
			              at, k ? k : "");
			return EXIT_USAGE;
		}
		r = parse_hpa(d, node, o, &h);
		if (r < 0) {
			hpa_free_metrics(&h);
			return EXIT_USAGE;
		}
		if (*n_hpas > 0)
			(void)printf("\n---\n");
		(*n_hpas)++;
		if (!explain_hpa(c, &h))
			ret = EXIT_FAILED;
		hpa_free_metrics(&h);
	}
	return ret;
}

int sm_explain_main(int argc, char **argv)
{
	struct options o;
	struct client c = {0};
	struct sm_error err = {0};
	yaml_parser_t parser;
	bool parser_ok = false, curl_ok = false;
	char *input = NULL;
	size_t len = 0, n_hpas = 0;
	int ret = EXIT_USAGE, r;

	r = parse_args(argc, argv, &o);
	if (r == 1) {
		usage(stdout);
		return EXIT_OK;
	}
	if (r < 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	r = read_small_file(o.hpa_path, MAX_INPUT_BYTES, &input, &len);
	if (r < 0) {
		(void)fprintf(stderr, "scalemetrics explain: cannot read '%s': %s\n",
		              strcmp(o.hpa_path, "-") == 0 ? "(stdin)" : o.hpa_path,
		              r == -EFBIG ? "larger than 4 MiB" : strerror(-r));
		goto out;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		(void)fprintf(stderr, "scalemetrics explain: cannot initialise libcurl\n");
		goto out;
	}
	curl_ok = true;
	r = client_init(&c, &o, &err);
	if (r < 0) {
		(void)fprintf(stderr, "scalemetrics explain: %s\n",
		              err.message[0] ? err.message : strerror(-r));
		goto out;
	}
	if (!yaml_parser_initialize(&parser))
		goto out;
	parser_ok = true;
	yaml_parser_set_input_string(&parser, (const unsigned char *)input, len);
	ret = EXIT_OK;
	for (;;) {
		yaml_document_t doc;
		struct doc_ctx d = {.doc = &doc,
		                    .file = strcmp(o.hpa_path, "-") == 0 ? "(stdin)" : o.hpa_path};
		int dr;

		if (!yaml_parser_load(&parser, &doc)) {
			(void)fprintf(stderr, "%s:%zu:%zu: %s %s\n", d.file,
			              parser.problem_mark.line + 1, parser.problem_mark.column + 1,
			              parser.problem ? parser.problem : "invalid YAML",
			              parser.context ? parser.context : "");
			ret = EXIT_USAGE;
			break;
		}
		if (!yaml_document_get_root_node(&doc)) {
			yaml_document_delete(&doc);
			break;
		}
		dr = explain_document(&c, &d, &o, &n_hpas);
		yaml_document_delete(&doc);
		if (dr > ret)
			ret = dr;
		if (dr == EXIT_USAGE)
			break;
	}
	if (ret != EXIT_USAGE && n_hpas == 0) {
		(void)fprintf(stderr, "scalemetrics explain: no HorizontalPodAutoscaler in '%s'\n",
		              o.hpa_path);
		ret = EXIT_USAGE;
	}
out:
	if (parser_ok)
		yaml_parser_delete(&parser);
	client_done(&c);
	if (curl_ok)
		curl_global_cleanup();
	free(input);
	return ret;
}
