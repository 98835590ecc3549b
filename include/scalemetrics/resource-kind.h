/* SPDX-License-Identifier: MIT */
#ifndef SM_RESOURCE_KIND_H
#define SM_RESOURCE_KIND_H

#include <stdbool.h>

/* A well-known Kubernetes resource, by its GroupResource.String() ("deployments.apps"). */
struct sm_resource_kind {
	const char *resource;
	const char *kind;        /* "Deployment" */
	const char *api_version; /* "apps/v1" */
	bool namespaced;
};

/* The entry for resource; NULL for NULL or a resource not in the table (custom resources). */
const struct sm_resource_kind *sm_resource_kind_find(const char *resource);
/* Whether objects of resource live in a namespace. NULL or unknown: namespaced, as custom
 * resources mostly are. A pure function of the resource, so discovery's `namespaced` flags
 * agree per prefix and the config knows which objects are asked for at the root. */
bool sm_resource_is_namespaced(const char *resource);

#endif
