/* SPDX-License-Identifier: MIT */
/* The well-known Kubernetes resources: lookup by GroupResource, their kinds and scopes, and
 * the namespaced default for resources the table does not know. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "scalemetrics/resource-kind.h"

static void test_find(void **state)
{
	const struct sm_resource_kind *k;

	(void)state;
	k = sm_resource_kind_find("deployments.apps");
	assert_non_null(k);
	assert_string_equal(k->resource, "deployments.apps");
	assert_string_equal(k->kind, "Deployment");
	assert_string_equal(k->api_version, "apps/v1");
	assert_true(k->namespaced);
	k = sm_resource_kind_find("nodes");
	assert_non_null(k);
	assert_string_equal(k->kind, "Node");
	assert_string_equal(k->api_version, "v1");
	assert_false(k->namespaced);
	/* Whole names only: no prefix, no group left out, no case folding. */
	assert_null(sm_resource_kind_find("deployments"));
	assert_null(sm_resource_kind_find("deployments.apps.x"));
	assert_null(sm_resource_kind_find("Nodes"));
	assert_null(sm_resource_kind_find("scaledjobs.keda.sh"));
	assert_null(sm_resource_kind_find(""));
	assert_null(sm_resource_kind_find(NULL));
}

static void test_namespaced(void **state)
{
	static const struct {
		const char *resource;
		bool namespaced;
	} cases[] = {
	    {"pods", true},
	    {"statefulsets.apps", true},
	    {"scaledobjects.keda.sh", true},
	    {"nodes", false},
	    {"namespaces", false},
	    {"persistentvolumes", false},
	    {"storageclasses.storage.k8s.io", false},
	    {"widgets.example.com", true}, /* unknown: namespaced */
	    {NULL, true},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (sm_resource_is_namespaced(cases[i].resource) != cases[i].namespaced)
			fail_msg("case %zu '%s': want %s", i,
			         cases[i].resource ? cases[i].resource : "(null)",
			         cases[i].namespaced ? "namespaced" : "cluster-scoped");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_find),
	    cmocka_unit_test(test_namespaced),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
