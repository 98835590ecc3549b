/* SPDX-License-Identifier: MIT */
#ifndef SM_FORWARD_H
#define SM_FORWARD_H

#include <stdbool.h>
#include <stddef.h>

#include "scalemetrics/error.h"

struct sm_api_response;
struct sm_config;
struct sm_forward_list;

/* Sharing a metrics API group with another adapter (docs/sharing.md): a request for a metric
 * that no source declares, in a group with a `forward` entry, goes to that entry's adapter
 * (the upstream), and discovery lists the upstream's metrics beside ours. This is the pure
 * part: which requests go, the upstreams' resource lists and their union with ours, which
 * upstream answers are passed on, and the 503 that replaces the others. The I/O is in
 * src/http/upstream.c. Upstreams are numbered by their index in the config's list.
 * Thread-safe: the resource lists are replaced and read under one mutex. */

struct sm_forward;

/* One upstream per entry of list, which is borrowed and must outlive the result. NULL: out of
 * memory. */
struct sm_forward *sm_forward_new(const struct sm_forward_list *list);
void sm_forward_free(struct sm_forward *f);
size_t sm_forward_count(const struct sm_forward *f);
const struct sm_forward_list *sm_forward_list(const struct sm_forward *f);
/* The upstream's URL with any userinfo hidden, for messages and logs. */
const char *sm_forward_name(const struct sm_forward *f, size_t upstream);
/* The API versions of the upstream's group that we serve, most preferred first: k from 0
 * until NULL. Static strings. */
const char *sm_forward_version(const struct sm_forward *f, size_t upstream, size_t k);

/* Which upstream answers a request under /apis/<group>/<version>/ whose decoded path
 * segments after the version are segs: the index of the group's upstream when the request has
 * the shape of a metric request of that group (external: namespaces/NS/METRIC; custom:
 * R/NAME/METRIC, namespaces/NS/metrics/METRIC, namespaces/NS/R/NAME/METRIC), no segment is
 * "." or ".." or holds a '/', and no source of cfg declares METRIC (ours win a name clash);
 * else -1. A metric the upstream's last resource list does not name asks for a refresh
 * (sm_forward_take_refresh). */
int sm_forward_decide(struct sm_forward *f, const struct sm_config *cfg, const char *group,
                      const char *version, char *const *segs, size_t n_segs);
/* Marks ret for upstream (ret->forward, ret->forward_to), with a 503 naming it as the
 * answer of callers that do not forward. 0 or -ENOMEM. */
int sm_forward_mark(const struct sm_forward *f, size_t upstream, struct sm_api_response *ret);
/* Whether the upstream's lists were found to lack a metric asked for since the last call;
 * clears the request. */
bool sm_forward_take_refresh(struct sm_forward *f, size_t upstream);

/* Keeps body, the upstream's answer to GET /apis/<group>/<version>, as its resource list for
 * version, replacing the last one. 0; -EPROTO (reterr says why: not JSON, not an
 * APIResourceList of that group and version), the last list kept; -ENOMEM. */
int sm_forward_set_resources(struct sm_forward *f, size_t upstream, const char *version,
                             const char *body, size_t len, struct sm_error *reterr) SM_MUSTCHECK;
/* Forgets the upstream's list for version (it does not serve that version). */
void sm_forward_clear_resources(struct sm_forward *f, size_t upstream, const char *version);

typedef void (*sm_forward_resource_fn)(const char *name, bool namespaced, void *userdata);
/* Calls fn, under the lock (fn must not call this module), for each resource ("pods/m",
 * "namespaces/m", "m" for external) that the upstream of group lists for version and whose
 * metric no source of cfg declares. Returns whether group has an upstream. */
bool sm_forward_for_each_resource(struct sm_forward *f, const struct sm_config *cfg,
                                  const char *group, const char *version, sm_forward_resource_fn fn,
                                  void *userdata);
typedef void (*sm_forward_clash_fn)(const char *metric, void *userdata);
/* Calls fn for each metric that the upstream's lists name and a source of cfg declares (ours
 * answer it, and discovery lists ours), once per name; under the lock as above. */
void sm_forward_for_each_clash(struct sm_forward *f, size_t upstream, const struct sm_config *cfg,
                               sm_forward_clash_fn fn, void *userdata);

/* Whether the upstream's answer (HTTP status and body) to a forwarded metric request may be
 * passed on unchanged: any status with a metav1.Status body, or a 2xx with the list kind of
 * the upstream's group (ExternalMetricValueList, MetricValueList). 0 if so; -EPROTO with the
 * reason in reterr if not. */
int sm_forward_check_answer(const struct sm_forward *f, size_t upstream, long status,
                            const char *body, size_t len, struct sm_error *reterr);
/* The 503 ServiceUnavailable Status naming the upstream, and why it cannot answer. 0 or
 * -ENOMEM (as sm_api_status). */
int sm_forward_unavailable(const struct sm_forward *f, size_t upstream, const char *why,
                           struct sm_api_response *ret);

#endif
