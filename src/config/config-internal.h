/* SPDX-License-Identifier: MIT */
#ifndef SM_CONFIG_INTERNAL_H
#define SM_CONFIG_INTERNAL_H

#include <stddef.h>

#include "scalemetrics/config.h"

/* Parses a YAML document's root mapping against one descriptor table into target, with
 * every error appended to reterrs as in sm_config_load_string(). For the unit test of the
 * table machinery (types, flags, bounds) independent of the real config's tables. */
int sm_config_parse_table_string(const char *name, const char *text, size_t len,
                                 const struct sm_config_key *keys, size_t n_keys, void *target,
                                 struct sm_error_list *reterrs) SM_MUSTCHECK;

/* config-forward.c: the top-level `forward` list into a struct sm_forward_list. */
int sm_config_parse_forward(struct sm_config_parser *p, const struct sm_config_node *v,
                            void *target);

#endif
