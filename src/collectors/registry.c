/* SPDX-License-Identifier: MIT */
/* The collectors known by their config `type:` string: one static table of ops, looked up by
 * name when the config is loaded. */
#include <assert.h>
#include <stddef.h>
#include <string.h>

#include "scalemetrics/config.h"
#include "scalemetrics/source.h"

/* How much of an unknown type is echoed in its message, as the config's own messages do. */
#define MAX_TYPE_ECHO 100

/* Alphabetical, like the names in types_list below (a unit test checks they agree). */
static const struct sm_source_ops *const registry[] = {
    &sm_source_pgbouncer,
    &sm_source_postgresql,
    &sm_source_redis,
    &sm_source_scrape,
};

static const char types_list[] = "pgbouncer, postgresql, redis, scrape";

static_assert(sizeof(registry) / sizeof(registry[0]) == 4, "update types_list with registry");

const struct sm_source_ops *sm_source_ops_find(const char *type)
{
	if (!type)
		return NULL;
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		if (strcmp(registry[i]->type, type) == 0)
			return registry[i];
	return NULL;
}

const char *sm_source_types_list(void)
{
	return types_list;
}

int sm_source_config_parse(struct sm_config_parser *p, const struct sm_config_node *node,
                           struct sm_source_config *src)
{
	const struct sm_source_ops *ops = sm_source_ops_find(src->type);

	if (!ops)
		return sm_config_report(p, sm_config_node_get(p, node, "type"),
		                        "unknown source type '%.*s' (expected one of: %s)",
		                        MAX_TYPE_ECHO, src->type, types_list);
	src->ops = ops;
	src->priv_free = ops->config_free;
	return ops->config_parse(p, node, src);
}
