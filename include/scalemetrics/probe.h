/* SPDX-License-Identifier: MIT */
#ifndef SM_PROBE_H
#define SM_PROBE_H

#include <stdio.h>

struct sm_config;

/* `scalemetrics check --config FILE --probe`: runs every configured source once, in config
 * order and on the calling thread (ops->create, one ops->collect into a fresh batch bounded by
 * max_series, ops->destroy), and writes a table to out: source, type, status ("ok" or
 * "FAILED: " and the source's error verbatim), series found, up to 3 sample values as
 * metric{labels}=value, round time in ms. Progress ("probing 'jobs' (redis)...") goes to
 * stderr as each source starts, since a source may take up to its timeout. SIGPIPE is ignored
 * while probing. Returns 0 when every source succeeded, 1 when any failed, -ENOMEM. */
int sm_probe_run(const struct sm_config *cfg, FILE *out);

#endif
