/* SPDX-License-Identifier: MIT */
/* Shared by the files of src/config/ and their unit tests only: the node tree, the parser
 * state one load carries through the descriptor tables, and each file's entry points.
 *
 * A load runs: config-yaml.c turns the text into nodes; config.c walks the top-level
 * mapping's table, whose custom keys hand over to config-server.c (server, kubernetes),
 * config-sources.c (sources, each one's collector) and config-forward.c; every mapping goes
 * through config-descriptor.c's engine; config-metrics.c checks the metric names the sources
 * declared once all are read; config.c sorts the errors. */
#ifndef SM_CONFIG_INTERNAL_H
#define SM_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scalemetrics/config.h"

#define SM_CONFIG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* How much of a user value is echoed in a message. */
#define SM_CONFIG_MAX_ECHO 100
/* Source names are DNS-1123 labels' length. */
#define SM_CONFIG_MAX_NAME_LEN 63
/* A ConfigMap holds at most 1 MiB, so a bigger file is a mistake. */
#define SM_CONFIG_MAX_FILE_BYTES (1024 * 1024)

enum sm_config_node_kind {
	SM_CONFIG_NODE_SCALAR,
	SM_CONFIG_NODE_SEQUENCE,
	SM_CONFIG_NODE_MAPPING,
};

struct sm_config_node {
	enum sm_config_node_kind kind;
	bool null;          /* plain "", "~" or "null": an empty value */
	const char *scalar; /* SM_CONFIG_NODE_SCALAR; owned by the yaml document */
	struct sm_config_mark mark;
	/* SEQUENCE: n items; MAPPING: n pairs as key, value, key, value, ... */
	struct sm_config_node **items;
	size_t n;
};

/* Where each metric was declared, for the check of names defined twice (config-metrics.c). */
struct sm_config_metric_seen {
	const char *name; /* borrowed from the source's sm_metric_def */
	size_t source;    /* index into cfg->sources */
	size_t def;       /* index into that source's metrics */
	struct sm_config_mark mark;
	size_t seq;
};

struct sm_config_parser {
	const char *file;
	struct sm_error_list *errs;
	size_t first_error; /* errs->n when the load started */
	size_t n_errors;    /* reported, including those past the cap */
	bool oom;
	struct sm_config *cfg; /* NULL when parsing one table (sm_config_parse_table_string) */

	/* The mapping being parsed (for reports with node == NULL), its description and the
	 * key whose value is being parsed (for custom parsers' messages). */
	const struct sm_config_node *map;
	const char *desc;
	const char *key;

	struct sm_source_config *src; /* the source being parsed, or NULL */
	const struct sm_config_node *src_node;
	/* The keys config-sources.c has parsed on src_node already, which a collector's table
	 * for the same mapping leaves out. */
	const struct sm_config_key *src_keys;
	size_t n_src_keys;
	char src_what[96]; /* "source 'jobs'" or "source #2" */

	struct sm_config_metric_seen *metrics;
	size_t n_metrics;
	size_t cap_metrics;
};

/* config.c: error reports. */
int sm_config_report_at(struct sm_config_parser *p, const struct sm_config_mark *mark,
                        const char *fmt, ...) SM_PRINTF(3, 4);
/* Marks the load out of memory; returns -ENOMEM. */
int sm_config_oom(struct sm_config_parser *p);

/* config-yaml.c: the node tree. */
struct sm_config_yaml;
/* Parses text (at most SM_CONFIG_MAX_FILE_BYTES; one document; flow collections nested at
 * most 64 deep) into a node tree whose scalars live as long as the tree. Problems are
 * reported through p: -EINVAL with *ret set to NULL when no tree could be read, 0 with a tree
 * (maybe with problems reported, such as NUL characters or a second document) otherwise, or
 * -ENOMEM. */
int sm_config_yaml_parse(struct sm_config_parser *p, const char *text, size_t len,
                         struct sm_config_yaml **ret);
/* The root node; NULL for an empty document. */
const struct sm_config_node *sm_config_yaml_root(const struct sm_config_yaml *y);
void sm_config_yaml_free(struct sm_config_yaml *y);
/* "a list", "a mapping", "a scalar" or "nothing", for messages. */
const char *sm_config_node_kind_name(const struct sm_config_node *n);

/* config-descriptor.c: the table engine, and what custom parsers share with it. */
/* As sm_config_parse_mapping; with only_known, keys missing from the table are skipped
 * rather than reported (the common keys of a source, whose collector reads the rest). */
int sm_config_parse_keys(struct sm_config_parser *p, const struct sm_config_node *node,
                         const struct sm_config_key *keys, size_t n_keys, void *target,
                         const char *what, bool only_known);
/* "\"key\" in DESC must be EXPECTED, not a list" at v. Returns -EINVAL. */
int sm_config_type_error(struct sm_config_parser *p, const struct sm_config_node *v,
                         const char *key, const char *desc, const char *expected);
/* The scalar v of the key being parsed by a custom parser into *dst ("" for null). */
int sm_config_take_string(struct sm_config_parser *p, const struct sm_config_node *v, char **dst);
/* The scalar v, one of the NULL-terminated names, copied into *dst. */
int sm_config_take_name(struct sm_config_parser *p, const struct sm_config_node *v, char **dst,
                        const char *const *names);
/* "" means unset for optional file paths and URLs: frees it and sets NULL. */
void sm_config_empty_to_null(char **s);
/* ms as the largest whole unit, for messages: "2h", "5m", "30s", "1500ms". */
void sm_config_format_duration(int64_t ms, char *buf, size_t len);

/* config-server.c, config-sources.c, config-forward.c: the top-level keys' parsers. */
/* The server's defaults: 0, or -ENOMEM with some strings unset (sm_config_free frees the
 * rest). */
int sm_config_server_init(struct sm_server_config *s) SM_MUSTCHECK;
int sm_config_parse_server(struct sm_config_parser *p, const struct sm_config_node *v,
                           void *target);
int sm_config_parse_kubernetes(struct sm_config_parser *p, const struct sm_config_node *v,
                               void *target);
int sm_config_parse_sources(struct sm_config_parser *p, const struct sm_config_node *v,
                            void *target);
int sm_config_parse_forward(struct sm_config_parser *p, const struct sm_config_node *v,
                            void *target);
/* Defaults that depend on other keys (max_age, namespaces), once the document is read. */
void sm_config_sources_finish(struct sm_config_parser *p);
void sm_config_source_done(struct sm_source_config *s);

/* config-metrics.c: metric names defined more than once, reported at the later definition. */
void sm_config_check_metrics(struct sm_config_parser *p);

/* config-reload.c: the canonical text of a source's mapping (struct sm_source_config's
 * `canonical`); NULL when too big, too deep or out of memory. */
char *sm_config_canonical_text(const struct sm_config_node *node);

/* Parses a YAML document's root mapping against one descriptor table into target, with
 * every error appended to reterrs as in sm_config_load_string(). For the unit test of the
 * table machinery (types, flags, bounds) independent of the real config's tables. */
int sm_config_parse_table_string(const char *name, const char *text, size_t len,
                                 const struct sm_config_key *keys, size_t n_keys, void *target,
                                 struct sm_error_list *reterrs) SM_MUSTCHECK;

#endif
