/* SPDX-License-Identifier: MIT */
#ifndef SM_HTTP_H
#define SM_HTTP_H

#include "scalemetrics/error.h"

struct sm_api_context;
struct sm_config;
struct sm_http_server;

/* HTTPS with libmicrohttpd: TLS from files (reloaded when they change on disk, without
 * dropping connections) or self-signed; limits from the config; every request goes through
 * sm_api_handle. */
int sm_http_server_start(const struct sm_config *cfg, const struct sm_api_context *api,
                         struct sm_http_server **ret, struct sm_error *reterr) SM_MUSTCHECK;
/* Stops accepting, lets in-flight requests finish, frees. Accepts NULL. */
void sm_http_server_stop(struct sm_http_server *s);

#endif
