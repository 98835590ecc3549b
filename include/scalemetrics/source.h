/* SPDX-License-Identifier: MIT */
#ifndef SM_SOURCE_H
#define SM_SOURCE_H

#include "scalemetrics/error.h"

struct sm_batch;
struct sm_config_parser;
struct sm_config_node;
struct sm_source_config;

/* A collector plugs in through one const table of operations, registered by name in
 * src/collectors/registry.c. Collectors never see HTTP or JSON: the batch is the contract. */
struct sm_source_ops {
	/* The config `type:` string. */
	const char *type;

	/* Called by sm_source_config_parse on the main thread while loading, with node = the
	 * source's whole mapping. The common keys (name, type, interval, timeout, max_age,
	 * namespaces, max_series) are already parsed into the source; the collector parses the
	 * rest of the mapping with sm_config_parse_mapping() (its table leaves the common keys
	 * out: on the source's own mapping they are skipped), stores its own struct in
	 * src->priv, and declares every metric with sm_config_add_metric(). Returns 0 or
	 * -EINVAL after reporting each problem with sm_config_report(). */
	int (*config_parse)(struct sm_config_parser *p, const struct sm_config_node *node,
	                    struct sm_source_config *src);

	/* Frees src->priv. Accepts NULL. */
	void (*config_free)(void *priv);

	/* Called once by the scheduler before the first round, on the main thread. Must not do
	 * network I/O (connect lazily in collect). 0 or -ENOMEM/-EINVAL. */
	int (*create)(const struct sm_source_config *src, void **ret_state);

	/* One sampling round, on a collector thread; never concurrently for one state. May block
	 * on I/O, bounded by src->timeout_ms per round trip. Fills batch and returns 0; on
	 * failure returns a negative errno (-ECONNREFUSED, -ETIMEDOUT, -EPROTO, ...) and fills
	 * reterr with the system's error text verbatim, and the batch is discarded. A per-series
	 * problem (a key of the wrong type) is not a round failure: skip that series and say
	 * so in reterr while still returning 0 (the scheduler logs it once). */
	int (*collect)(void *state, struct sm_batch *batch, struct sm_error *reterr);

	/* Releases the state (closes connections). Accepts NULL. Main thread, after the last
	 * collect has returned. */
	void (*destroy)(void *state);
};

/* Looks a collector up by its type string; NULL when unknown. */
const struct sm_source_ops *sm_source_ops_find(const char *type);
/* For "expected one of ..." messages: the registered type names, comma-separated. */
const char *sm_source_types_list(void);
/* The config's source parser (sm_config_set_source_parser): the collector of src->type
 * parses its keys. A program registers it before loading a config. */
int sm_source_config_parse(struct sm_config_parser *p, const struct sm_config_node *node,
                           struct sm_source_config *src);

extern const struct sm_source_ops sm_source_pgbouncer;
extern const struct sm_source_ops sm_source_postgresql;
extern const struct sm_source_ops sm_source_redis;
extern const struct sm_source_ops sm_source_scrape;

#endif
