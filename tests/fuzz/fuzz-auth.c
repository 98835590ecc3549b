/* SPDX-License-Identifier: MIT */
/* Authentication and authorization parsing: request attributes from METHOD\nPATH\nQUERY, the
 * Forbidden message for them, front-proxy headers from the remaining "Name: value" lines, the
 * bearer token of each value, and the same bytes as a ConfigMap, TokenReview and
 * SubjectAccessReview JSON document. */
#include <cjson/cJSON.h>

#include "scalemetrics/api.h"
#include "scalemetrics/auth.h"
#include "scalemetrics/authz.h"

#include "fuzz.h"

#define MAX_HEADERS 64

static void json_documents(const uint8_t *data, size_t size)
{
	cJSON *doc = cJSON_ParseWithLength((const char *)data, size);
	struct sm_auth_trust_data t = {0};
	struct sm_auth_user u = {0};
	struct sm_error err = {0};
	enum sm_authz_decision d;
	char *reason = NULL;

	if (!doc)
		return;
	if (sm_auth_trust_from_configmap(doc, &t, &err) == 0)
		sm_auth_trust_data_done(&t);
	if (sm_auth_token_review_parse(doc, &u, &err) == 1) {
		cJSON *j = sm_auth_user_to_json(&u);

		cJSON_Delete(j);
		sm_auth_user_done(&u);
	}
	if (sm_authz_sar_parse(doc, &d, &reason, &err) == 0)
		free(reason);
	if (sm_auth_user_from_json(doc, &u) == 0)
		sm_auth_user_done(&u);
	cJSON_Delete(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sm_auth_header headers[MAX_HEADERS];
	struct sm_authz_attributes a;
	struct sm_auth_user u = {0};
	struct sm_error err = {0};
	const char *parts[4];
	size_t n = 0;
	char *text = fuzz_string(data, size);
	char *line;

	fuzz_split(text, parts, 4);
	if (sm_authz_attributes_from_request(parts[0], parts[1], parts[2], &a, &err) == 0) {
		struct sm_auth_user anon = {.name = (char *)"system:anonymous"};
		struct sm_api_response resp = {0};
		cJSON *sar = sm_authz_sar_request(&anon, &a);

		cJSON_Delete(sar);
		(void)sm_authz_is_discovery(&a);
		if (sm_authz_forbidden(&anon, &a, parts[2], &resp) == 0)
			sm_api_response_done(&resp);
		sm_authz_attributes_done(&a);
	}
	(void)sm_authz_path_always_allowed(NULL, parts[1]);

	/* "Name: value" lines */
	line = (char *)parts[3];
	while (*line && n < MAX_HEADERS) {
		char *nl = strchr(line, '\n');
		char *colon;

		if (nl)
			*nl = '\0';
		colon = strchr(line, ':');
		if (colon) {
			const char *tok;
			size_t len;

			*colon = '\0';
			headers[n++] = (struct sm_auth_header){.name = line, .value = colon + 1};
			(void)sm_auth_bearer_token(colon + 1, &tok, &len);
		}
		if (!nl)
			break;
		line = nl + 1;
	}
	if (sm_auth_user_from_headers(NULL, headers, n, &u) == 1)
		sm_auth_user_done(&u);
	free(text);
	json_documents(data, size);
	return 0;
}
