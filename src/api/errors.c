/* SPDX-License-Identifier: MIT */
/* metav1.Status failure documents, the mapping from error codes to them, and the small
 * helpers that turn a document or a text into a response. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/api.h"

#include "api-internal.h"

void sm_api_response_done(struct sm_api_response *r)
{
	if (!r)
		return;
	free(r->body);
	r->body = NULL;
	r->body_len = 0;
}

static void response_reset(struct sm_api_response *ret, int status, const char *content_type,
                           const char *route)
{
	*ret = (struct sm_api_response){
	    .status = status,
	    .content_type = content_type,
	    .route = route,
	};
}

int sm_api_status(int code, const char *reason, const char *message, struct sm_api_response *ret)
{
	cJSON *doc = NULL;
	char *body = NULL;
	bool ok;

	response_reset(ret, code, SM_API_CT_JSON, "error");
	ret->reason = reason;

	doc = cJSON_CreateObject();
	ok = doc && cJSON_AddStringToObject(doc, "kind", "Status") &&
	     cJSON_AddStringToObject(doc, "apiVersion", "v1") &&
	     cJSON_AddObjectToObject(doc, "metadata") &&
	     cJSON_AddStringToObject(doc, "status", "Failure") &&
	     cJSON_AddStringToObject(doc, "message", message ? message : "") &&
	     (!reason || cJSON_AddStringToObject(doc, "reason", reason)) &&
	     cJSON_AddNumberToObject(doc, "code", code);
	if (ok)
		body = cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	if (!body) {
		ret->status = 500;
		ret->reason = "InternalError";
		return -ENOMEM;
	}
	ret->body = body;
	ret->body_len = strlen(body);
	return 0;
}

int sm_api_status_from_errno(int err, const char *message, struct sm_api_response *ret)
{
	switch (err) {
	case -ENOENT:
		return sm_api_status(404, "NotFound", message, ret);
	case -EAGAIN:
		return sm_api_status(503, "ServiceUnavailable", message, ret);
	case -EINVAL:
		return sm_api_status(400, "BadRequest", message, ret);
	default:
		return sm_api_status(500, "InternalError", message, ret);
	}
}

int sm_api_respond_json(const struct cJSON *doc, const char *route, struct sm_api_response *ret)
{
	char *body = cJSON_PrintUnformatted(doc);

	if (!body)
		return -ENOMEM;
	response_reset(ret, 200, SM_API_CT_JSON, route);
	ret->body = body;
	ret->body_len = strlen(body);
	ret->reusable = true;
	return 0;
}

int sm_api_respond_text(int status, const char *text, const char *route,
                        struct sm_api_response *ret)
{
	char *body = strdup(text);

	if (!body)
		return -ENOMEM;
	response_reset(ret, status, SM_API_CT_TEXT, route);
	ret->body = body;
	ret->body_len = strlen(body);
	return 0;
}
