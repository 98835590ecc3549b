/* SPDX-License-Identifier: MIT */
#ifndef SM_CONFIG_H
#define SM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scalemetrics/error.h"

struct sm_source_ops;
struct sm_config_parser;
struct sm_config_node;

/* Every key is documented in docs/configuration.md (tests/lint/config-keys.py checks it). The whole
 * file is parsed and validated into an immutable struct before anything starts; a reload builds a
 * new one. */

enum sm_auth_mode {
	SM_AUTH_DELEGATED,
	SM_AUTH_NONE,
	SM_AUTH_MODE_MAX,
	SM_AUTH_MODE_INVALID = -1,
};

struct sm_strv {
	char **v;
	size_t n;
};

struct sm_opt_double {
	bool set;
	double value;
};

/* Where in the file a thing was written, for errors found after parsing. */
struct sm_config_mark {
	unsigned line;
	unsigned column;
};

struct sm_server_config {
	char *listen;    /* "host:port", default "0.0.0.0:6443" */
	char *cert_file; /* NULL: self-signed pair made at start */
	char *key_file;
	enum sm_auth_mode auth_mode; /* default delegated */
	char *requestheader_client_ca_file;
	struct sm_strv requestheader_allowed_names;
	char *client_ca_file;
	int64_t cache_ttl_ms; /* default 10s */
	/* Extensions (src/http/auth.c): empty lists mean "from the ConfigMap, else the
	 * defaults X-Remote-User, X-Remote-Group, X-Remote-Extra-". */
	struct sm_strv requestheader_username_headers;
	struct sm_strv requestheader_group_headers;
	struct sm_strv requestheader_extra_headers_prefix;
	struct sm_strv always_allow_paths; /* open to anyone besides /healthz /livez /readyz */
	int64_t auth_refresh_interval_ms;  /* re-read the ConfigMap / CA files; default 1m */
	uint32_t max_connections;          /* default 1024 */
	uint32_t max_connections_per_ip;   /* default 256 */
	int64_t connection_timeout_ms;     /* default 30s */
	uint32_t max_header_bytes;         /* default 16384 */
	char *namespace;                   /* default "default" */
	char *log_level;                   /* extension: "info" default; error|warn|info|debug */
	char *log_format;                  /* extension: "logfmt" default; logfmt|json */
	bool access_log; /* one log line per request (src/http/server.c); default false */
};

struct sm_kube_config {
	char *kubeconfig; /* "" or NULL: in-cluster service account ($KUBECONFIG outside one) */
	/* Extensions (for src/kube): NULL when unset or "". */
	char *context;                 /* a kubeconfig context instead of its current-context */
	char *server;                  /* "https://host:port" or "http://127.0.0.1:8001" */
	char *token_file;              /* bearer token, re-read when it changes */
	char *ca_file;                 /* PEM bundle for the API server's certificate */
	bool insecure_skip_tls_verify; /* default false */
};

enum sm_metric_scope {
	SM_METRIC_EXTERNAL, /* external.metrics.k8s.io only */
	SM_METRIC_OBJECT,   /* also custom metrics on `resource` objects */
	SM_METRIC_PODS,     /* custom metrics on pods (scraped) */
	SM_METRIC_SCOPE_MAX,
};

/* One metric a source serves, known before its first round: discovery lists it, and a
 * query for it gets 503 (not 404) while its source is stale. */
struct sm_metric_def {
	char *name;
	enum sm_metric_scope scope;
	char *resource;                /* SM_METRIC_OBJECT: "deployments.apps"; else NULL */
	struct sm_opt_double fallback; /* served instead of 503 when stale or not read */
	uint32_t window_s;
	/* Absent means 0 (docs/configuration.md "Empty queues and failed series"): the series are
	 * keyed by this label, and one the source does not have is an empty queue (Redis deletes an
	 * emptied list, so a glob or a preset's discovery no longer finds it). A query whose
	 * selector names zero_label=V for a V no series (nor failure) carries gets an item of
	 * value 0 with that label while the source is fresh. NULL: absent is absent. */
	char *zero_label;
	/* SM_METRIC_OBJECT with zero_label: the object name template, "{zero_label}" standing for
	 * the value, so that a query for an object whose name fits it gets that 0 too. */
	char *object_template;
	/* SM_METRIC_PODS: the pods' namespace, where the per-pod series are served besides the
	 * source's `namespaces` (for the check of names shared by sources); else NULL. */
	char *pods_namespace;
};

struct sm_source_config {
	char *name;                      /* unique, [a-z0-9-] */
	char *type;                      /* "redis", ... */
	const struct sm_source_ops *ops; /* its collector, set by the source parser */
	int64_t interval_ms;             /* default 5s */
	int64_t timeout_ms;              /* default 1s */
	int64_t max_age_ms;              /* default 3 x interval */
	struct sm_strv namespaces;       /* default: [server.namespace] */
	uint32_t max_series;             /* default 10000 */
	struct sm_metric_def *metrics;   /* filled by ops->config_parse via sm_config_add_metric */
	size_t n_metrics;
	void *priv;                    /* the collector's own parsed keys */
	void (*priv_free)(void *priv); /* frees priv; set with ops */
	struct sm_config_mark mark;
	/* The source's YAML mapping written out canonically (mapping keys sorted, scalars with
	 * their lengths), so a reload can tell an unchanged source; NULL when it was too big or
	 * too deep to write out (then it never equals another). */
	char *canonical;
};

/* The metrics API groups a `forward` entry can name. */
enum sm_forward_group {
	SM_FORWARD_CUSTOM,   /* custom.metrics.k8s.io */
	SM_FORWARD_EXTERNAL, /* external.metrics.k8s.io */
	SM_FORWARD_GROUP_MAX,
	SM_FORWARD_GROUP_INVALID = -1,
};

/* One `forward` entry (docs/configuration.md "Sharing the metrics APIs with another adapter"):
 * the adapter that answers requests of its group for metrics no source declares. */
struct sm_forward_config {
	enum sm_forward_group group;
	char *url;                     /* "https://host:port" or "http://...", no trailing '/' */
	char *ca_file;                 /* NULL: the system's trust store */
	bool insecure_skip_tls_verify; /* default false */
	char *token_file;              /* NULL: no Authorization header; re-read when it changes */
	int64_t timeout_ms;            /* default 5s */
	struct sm_config_mark mark;
};

struct sm_forward_list {
	struct sm_forward_config *v;
	size_t n; /* at most one per group */
};

struct sm_config {
	char *path;
	struct sm_server_config server;
	struct sm_kube_config kubernetes;
	struct sm_source_config *sources;
	size_t n_sources;
	struct sm_forward_list forward; /* read at start only: a change needs a restart */
};

/* Loads and validates path. On failure returns -EINVAL (or -ENOENT/-EACCES for the file,
 * -ENOMEM) and appends every error found, each with file, line and column, to reterrs;
 * *ret untouched. */
int sm_config_load(const char *path, struct sm_config **ret,
                   struct sm_error_list *reterrs) SM_MUSTCHECK;
/* Same, from a string; `name` is used as the file name in errors (tests, fuzzing). */
int sm_config_load_string(const char *name, const char *text, size_t len, struct sm_config **ret,
                          struct sm_error_list *reterrs) SM_MUSTCHECK;
void sm_config_free(struct sm_config *c);
/* Reads a config file whole, as sm_config_load does: 0 with the bytes in *ret_text
 * (NUL-terminated, the caller frees it) and their count in *ret_len; or -ENOENT, -EACCES,
 * -EINVAL (larger than a ConfigMap can be), -ENOMEM with the reason appended to reterrs. */
int sm_config_read_file(const char *path, char **ret_text, size_t *ret_len,
                        struct sm_error_list *reterrs) SM_MUSTCHECK;

/* ---- Reloading (config-reload.c; docs/design.md "Reloading the config") ---- */

/* Same name, type and namespaces (after defaults) and the same YAML under the source's entry
 * (keys in any order): a reload keeps such a source running with its state. */
bool sm_source_config_equal(const struct sm_source_config *a, const struct sm_source_config *b);
/* For each source i of next, the index of the running source it equals
 * (sm_source_config_equal) in ret_from[i], or SIZE_MAX when it is new or changed. ret_from has
 * room for next->n_sources. Returns how many are kept. */
size_t sm_config_match_sources(const struct sm_config *running, const struct sm_config *next,
                               size_t *ret_from);
/* The keys of server and kubernetes that the running server cannot take over without a
 * restart (the listening socket, TLS files, access checks, limits, the Kubernetes API
 * connection) and whose value differs in next: their names ("server.listen",
 * "kubernetes.server", ...; static strings) in ret_keys[0..cap). Returns how many differ
 * (possibly more than cap). */
size_t sm_config_restart_keys(const struct sm_config *running, const struct sm_config *next,
                              const char **ret_keys, size_t cap);
/* Replaces next's kubernetes section with a copy of running's, so that sources of a reloaded
 * config reach the same API server as the rest of the running process. 0 or -ENOMEM (next
 * untouched). */
int sm_config_keep_kubernetes(struct sm_config *next, const struct sm_config *running) SM_MUSTCHECK;

/* ---- Descriptor tables (config-descriptor.c), for config and each collector ---- */

enum sm_config_type {
	SM_CONFIG_STRING,      /* char *  (strdup'd) */
	SM_CONFIG_DURATION,    /* int64_t milliseconds; bounds in min/max (ms) */
	SM_CONFIG_INT,         /* int64_t; bounds in min/max */
	SM_CONFIG_UINT32,      /* uint32_t; bounds in min/max */
	SM_CONFIG_DOUBLE,      /* struct sm_opt_double */
	SM_CONFIG_BOOL,        /* bool: true/false only */
	SM_CONFIG_ENUM,        /* int; names in enum_names, NULL-terminated, index = value */
	SM_CONFIG_STRING_LIST, /* struct sm_strv; a scalar is accepted as a one-item list */
	SM_CONFIG_CUSTOM,      /* parse() does it */
	SM_CONFIG_TYPE_MAX,
};

enum {
	SM_CONFIG_REQUIRED = 1 << 0,
	SM_CONFIG_SECRET = 1 << 1, /* value never echoed in errors or logs */
	SM_CONFIG_NO_RELOAD = 1 << 2,
};

typedef int (*sm_config_parse_fn)(struct sm_config_parser *p, const struct sm_config_node *node,
                                  void *target);

/* Tables are sorted by name (alphabetically); unknown keys are errors. Defaults are whatever
 * the target held before parsing; a STRING or STRING_LIST default must be heap-allocated (or
 * NULL), as it is freed when the key replaces it. A plain null value (`key:`, `~`, `null`)
 * gives "" for STRING, an empty list for STRING_LIST, an unset DOUBLE, and an error for the
 * other scalar types. A duplicate key is reported and its second value ignored. */
struct sm_config_key {
	const char *name;
	enum sm_config_type type;
	size_t offset;    /* offsetof into the target struct */
	int64_t min, max; /* INT, UINT32, DURATION; both 0: no bounds; max 0 over a positive
	                   * min: no upper bound */
	const char *const *enum_names;
	sm_config_parse_fn parse; /* CUSTOM: called with target + offset */
	unsigned flags;
};

/* Parses a mapping node against a table into target. Every problem is reported (not just
 * the first) through sm_config_report; returns 0, -EINVAL if anything was reported, or
 * -ENOMEM. `what` names the mapping in messages, e.g. "server.tls". Inside a source, the
 * source's own mapping is always named "source 'jobs'" (what may be NULL there) and a nested
 * mapping "WHAT of source 'jobs'". A NULL or null node parses as an empty mapping. */
int sm_config_parse_mapping(struct sm_config_parser *p, const struct sm_config_node *node,
                            const struct sm_config_key *keys, size_t n_keys, void *target,
                            const char *what);

/* Records "file:line:col: message" at node's mark (node may be NULL: the parser's current
 * mapping). Always returns -EINVAL, so `return sm_config_report(...)` reads well. */
int sm_config_report(struct sm_config_parser *p, const struct sm_config_node *node, const char *fmt,
                     ...) SM_PRINTF(3, 4);

/* Node inspection. */
bool sm_config_node_is_scalar(const struct sm_config_node *n);
bool sm_config_node_is_sequence(const struct sm_config_node *n);
bool sm_config_node_is_mapping(const struct sm_config_node *n);
const char *sm_config_node_scalar(const struct sm_config_node *n); /* NULL if not a scalar */
size_t sm_config_node_length(const struct sm_config_node *n);      /* sequence items / map pairs */
const struct sm_config_node *sm_config_node_item(const struct sm_config_parser *p,
                                                 const struct sm_config_node *seq, size_t i);
/* Mapping lookup by key; NULL when absent. */
const struct sm_config_node *sm_config_node_get(const struct sm_config_parser *p,
                                                const struct sm_config_node *map, const char *key);
struct sm_config_mark sm_config_node_mark(const struct sm_config_node *n);

/* The source being parsed (for collectors' config_parse and custom parsers). */
struct sm_source_config *sm_config_parser_source(struct sm_config_parser *p);
/* The `kubernetes:` section of the config being loaded, for collectors that reach the API
 * (scrape's pod discovery). Borrowed and valid as long as the loaded config, so it may be kept
 * in src->priv; it may be filled after the sources are parsed, so read it only at run time. */
const struct sm_kube_config *sm_config_parser_kube(struct sm_config_parser *p);
/* Parses the keys of a source that belong to its collector, with src->type set: finds the
 * collector by type (reporting an unknown one), sets src->ops and src->priv_free, has the
 * collector parse the mapping into src->priv and declare the source's metrics
 * (sm_config_add_metric). Returns 0, -EINVAL after reporting each problem, or -ENOMEM. */
typedef int (*sm_config_source_parse_fn)(struct sm_config_parser *p,
                                         const struct sm_config_node *node,
                                         struct sm_source_config *src);
/* The collectors sit in a layer above config, so a program registers their parser
 * (sm_source_config_parse, from src/collectors/registry.c) once, before its first load; until
 * then every source's type is unknown. Not thread-safe: call it before any thread loads. */
void sm_config_set_source_parser(sm_config_source_parse_fn parse);

/* Appends a metric definition to the current source (copies strings). Once the whole file
 * is read, a name defined twice is reported at the second definition's node: twice in one
 * source, in two sources as different kinds of metric, or in two sources that serve it in a
 * common namespace (docs/configuration.md "Metric names shared by sources"). */
int sm_config_add_metric(struct sm_config_parser *p, const struct sm_config_node *node,
                         const struct sm_metric_def *def);

void sm_strv_done(struct sm_strv *v);

/* The group's name ("custom.metrics.k8s.io"); NULL for an invalid group. */
const char *sm_forward_group_to_string(enum sm_forward_group g);
/* Equal entries in the same order (what a reload compares: `forward` needs a restart). */
bool sm_config_forward_equal(const struct sm_forward_list *a, const struct sm_forward_list *b);
void sm_config_forward_done(struct sm_forward_list *l);

/* A DNS-1123 label (namespaces, source names' rules): a-z, 0-9, '-', 1-63, no '-' at ends. */
bool sm_config_dns_label_is_valid(const char *s);

/* url for messages and logs: everything from after "://" (or from the start, without a
 * scheme) to the last '@' replaced by "***", so a userinfo ("user:password@", which libcurl
 * sends as Basic auth) is hidden even when its password holds an unescaped '/', '?', '#' or
 * '@'; a path or query with an '@' is shown cut short. Strings without '@' are copied
 * unchanged. Cut to fit len (len >= strlen(url) + 4 always holds all of it). */
void sm_config_url_redact(const char *url, char *buf, size_t len);

#endif
