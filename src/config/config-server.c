/* SPDX-License-Identifier: MIT */
/* The `server` mapping (listening, TLS, authentication, limits, logging) and the `kubernetes`
 * mapping: their descriptor tables, and the checks across keys that no table can say. */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/config.h"
#include "scalemetrics/number.h"

#include "config-internal.h"

#define DEFAULT_LISTEN     "0.0.0.0:6443"
#define DEFAULT_NAMESPACE  "default"
#define DEFAULT_LOG_LEVEL  "info"
#define DEFAULT_LOG_FORMAT "logfmt"

static_assert(sizeof(enum sm_auth_mode) == sizeof(int), "SM_CONFIG_ENUM stores an int");

static bool listen_is_valid(const char *s)
{
	const char *port, *host_end;
	char host[64];
	uint64_t n;

	if (s[0] == '[') {
		host_end = strchr(s, ']');
		if (!host_end || host_end[1] != ':' || (size_t)(host_end - s - 1) >= sizeof(host))
			return false;
		memcpy(host, s + 1, (size_t)(host_end - s - 1));
		host[host_end - s - 1] = '\0';
		if (inet_pton(AF_INET6, host, &(struct in6_addr){0}) != 1)
			return false;
		port = host_end + 2;
	} else {
		host_end = strrchr(s, ':');
		if (!host_end || host_end == s || host_end - s > 253)
			return false;
		for (const char *c = s; c < host_end; c++)
			if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			      (*c >= '0' && *c <= '9') || *c == '.' || *c == '-'))
				return false;
		port = host_end + 1;
	}
	return sm_number_parse_uint64(port, &n) == 0 && n >= 1 && n <= 65535;
}

static int parse_listen(struct sm_config_parser *p, const struct sm_config_node *v, void *target)
{
	char **dst = target;
	int r = sm_config_take_string(p, v, dst);

	if (r < 0)
		return r;
	if (!listen_is_valid(*dst))
		return sm_config_report(p, v,
		                        "invalid listen address '%.*s' in %s (expected host:port "
		                        "or [ipv6]:port, port 1-65535)",
		                        SM_CONFIG_MAX_ECHO, *dst, p->desc);
	return 0;
}

static int parse_namespace(struct sm_config_parser *p, const struct sm_config_node *v, void *target)
{
	char **dst = target;
	int r = sm_config_take_string(p, v, dst);

	if (r < 0)
		return r;
	if (!sm_config_dns_label_is_valid(*dst))
		return sm_config_report(
		    p, v,
		    "invalid namespace '%.*s' in %s (expected a DNS-1123 label: "
		    "a-z, 0-9 and '-', at most 63 characters)",
		    SM_CONFIG_MAX_ECHO, *dst, p->desc);
	return 0;
}

static int parse_log_level(struct sm_config_parser *p, const struct sm_config_node *v, void *target)
{
	static const char *const names[] = {"error", "warn", "info", "debug", NULL};

	return sm_config_take_name(p, v, target, names);
}

static int parse_log_format(struct sm_config_parser *p, const struct sm_config_node *v,
                            void *target)
{
	static const char *const names[] = {"logfmt", "json", NULL};

	return sm_config_take_name(p, v, target, names);
}

static const char *const auth_mode_names[] = {
    [SM_AUTH_DELEGATED] = "delegated",
    [SM_AUTH_NONE] = "none",
    NULL,
};
static_assert(SM_CONFIG_ARRAY_SIZE(auth_mode_names) == SM_AUTH_MODE_MAX + 1, "auth mode names");

static const struct sm_config_key auth_keys[] = {
    {.name = "always_allow_paths",
     .type = SM_CONFIG_STRING_LIST,
     .offset = offsetof(struct sm_server_config, always_allow_paths)},
    {.name = "cache_ttl",
     .type = SM_CONFIG_DURATION,
     .offset = offsetof(struct sm_server_config, cache_ttl_ms),
     .min = 0,
     .max = 3600000},
    {.name = "client_ca_file",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct sm_server_config, client_ca_file)},
    {.name = "mode",
     .type = SM_CONFIG_ENUM,
     .offset = offsetof(struct sm_server_config, auth_mode),
     .enum_names = auth_mode_names},
    {.name = "refresh_interval",
     .type = SM_CONFIG_DURATION,
     .offset = offsetof(struct sm_server_config, auth_refresh_interval_ms),
     .min = 1000,
     .max = 86400000},
    {.name = "requestheader_allowed_names",
     .type = SM_CONFIG_STRING_LIST,
     .offset = offsetof(struct sm_server_config, requestheader_allowed_names)},
    {.name = "requestheader_client_ca_file",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct sm_server_config, requestheader_client_ca_file)},
    {.name = "requestheader_extra_headers_prefix",
     .type = SM_CONFIG_STRING_LIST,
     .offset = offsetof(struct sm_server_config, requestheader_extra_headers_prefix)},
    {.name = "requestheader_group_headers",
     .type = SM_CONFIG_STRING_LIST,
     .offset = offsetof(struct sm_server_config, requestheader_group_headers)},
    {.name = "requestheader_username_headers",
     .type = SM_CONFIG_STRING_LIST,
     .offset = offsetof(struct sm_server_config, requestheader_username_headers)},
};

static const struct sm_config_key limits_keys[] = {
    {.name = "connection_timeout",
     .type = SM_CONFIG_DURATION,
     .offset = offsetof(struct sm_server_config, connection_timeout_ms),
     .min = 1000,
     .max = 3600000},
    {.name = "max_connections",
     .type = SM_CONFIG_UINT32,
     .offset = offsetof(struct sm_server_config, max_connections),
     .min = 1,
     .max = 1000000},
    {.name = "max_connections_per_ip",
     .type = SM_CONFIG_UINT32,
     .offset = offsetof(struct sm_server_config, max_connections_per_ip),
     .min = 1,
     .max = 1000000},
    {.name = "max_header_bytes",
     .type = SM_CONFIG_UINT32,
     .offset = offsetof(struct sm_server_config, max_header_bytes),
     .min = 1024,
     .max = 1048576},
};

static const struct sm_config_key tls_keys[] = {
    {.name = "cert_file",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct sm_server_config, cert_file)},
    {.name = "key_file",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct sm_server_config, key_file)},
};

static int parse_auth(struct sm_config_parser *p, const struct sm_config_node *v, void *target)
{
	struct sm_server_config *s = target;
	int r = sm_config_parse_mapping(p, v, auth_keys, SM_CONFIG_ARRAY_SIZE(auth_keys), s,
	                                "server.auth");

	sm_config_empty_to_null(&s->client_ca_file);
	sm_config_empty_to_null(&s->requestheader_client_ca_file);
	return r;
}

static int parse_limits(struct sm_config_parser *p, const struct sm_config_node *v, void *target)
{
	return sm_config_parse_mapping(p, v, limits_keys, SM_CONFIG_ARRAY_SIZE(limits_keys), target,
	                               "server.limits");
}

static int parse_tls(struct sm_config_parser *p, const struct sm_config_node *v, void *target)
{
	struct sm_server_config *s = target;
	int r = sm_config_parse_mapping(p, v, tls_keys, SM_CONFIG_ARRAY_SIZE(tls_keys), s,
	                                "server.tls");

	sm_config_empty_to_null(&s->cert_file);
	sm_config_empty_to_null(&s->key_file);
	if (r == 0 && !s->cert_file != !s->key_file)
		r = sm_config_report(p, v,
		                     "server.tls needs both cert_file and key_file, or neither "
		                     "(%s is missing)",
		                     s->cert_file ? "key_file" : "cert_file");
	return r;
}

static const struct sm_config_key server_keys[] = {
    {.name = "access_log",
     .type = SM_CONFIG_BOOL,
     .offset = offsetof(struct sm_server_config, access_log)},
    {.name = "auth", .type = SM_CONFIG_CUSTOM, .parse = parse_auth},
    {.name = "limits", .type = SM_CONFIG_CUSTOM, .parse = parse_limits},
    {.name = "listen",
     .type = SM_CONFIG_CUSTOM,
     .offset = offsetof(struct sm_server_config, listen),
     .parse = parse_listen,
     .flags = SM_CONFIG_NO_RELOAD},
    {.name = "log_format",
     .type = SM_CONFIG_CUSTOM,
     .offset = offsetof(struct sm_server_config, log_format),
     .parse = parse_log_format},
    {.name = "log_level",
     .type = SM_CONFIG_CUSTOM,
     .offset = offsetof(struct sm_server_config, log_level),
     .parse = parse_log_level},
    {.name = "namespace",
     .type = SM_CONFIG_CUSTOM,
     .offset = offsetof(struct sm_server_config, namespace),
     .parse = parse_namespace},
    {.name = "tls", .type = SM_CONFIG_CUSTOM, .parse = parse_tls},
};

int sm_config_parse_server(struct sm_config_parser *p, const struct sm_config_node *v, void *target)
{
	return sm_config_parse_mapping(p, v, server_keys, SM_CONFIG_ARRAY_SIZE(server_keys), target,
	                               "server");
}

static const struct sm_config_key kube_keys[] = {
    {.name = "ca_file",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct sm_kube_config, ca_file)},
    {.name = "context",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct sm_kube_config, context),
     .flags = SM_CONFIG_NO_RELOAD},
    {.name = "insecure_skip_tls_verify",
     .type = SM_CONFIG_BOOL,
     .offset = offsetof(struct sm_kube_config, insecure_skip_tls_verify)},
    {.name = "kubeconfig",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct sm_kube_config, kubeconfig),
     .flags = SM_CONFIG_NO_RELOAD},
    {.name = "server",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct sm_kube_config, server),
     .flags = SM_CONFIG_NO_RELOAD},
    {.name = "token_file",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct sm_kube_config, token_file)},
};

int sm_config_parse_kubernetes(struct sm_config_parser *p, const struct sm_config_node *v,
                               void *target)
{
	struct sm_kube_config *k = target;
	int r = sm_config_parse_mapping(p, v, kube_keys, SM_CONFIG_ARRAY_SIZE(kube_keys), k,
	                                "kubernetes");

	sm_config_empty_to_null(&k->context);
	sm_config_empty_to_null(&k->server);
	sm_config_empty_to_null(&k->token_file);
	sm_config_empty_to_null(&k->ca_file);
	/* A server without a kubeconfig reads none, so a context would mean nothing. */
	if (k->context && k->server && (!k->kubeconfig || !*k->kubeconfig))
		r = sm_config_report(p, sm_config_node_get(p, v, "context"),
		                     "context in kubernetes needs kubernetes.kubeconfig: with "
		                     "kubernetes.server alone no kubeconfig is read");
	if (k->server && strncmp(k->server, "https://", 8) != 0 &&
	    strncmp(k->server, "http://", 7) != 0) {
		char shown[SM_CONFIG_MAX_ECHO + 4];

		sm_config_url_redact(k->server, shown, sizeof(shown));
		r = sm_config_report(p, sm_config_node_get(p, v, "server"),
		                     "invalid server '%s' in kubernetes (expected an https:// or "
		                     "http:// URL)",
		                     shown);
	}
	return r;
}

int sm_config_server_init(struct sm_server_config *s)
{
	*s = (struct sm_server_config){
	    .listen = strdup(DEFAULT_LISTEN),
	    .auth_mode = SM_AUTH_DELEGATED,
	    .cache_ttl_ms = 10000,
	    .auth_refresh_interval_ms = 60000,
	    .max_connections = 1024,
	    .max_connections_per_ip = 256,
	    .connection_timeout_ms = 30000,
	    .max_header_bytes = 16384,
	    .namespace = strdup(DEFAULT_NAMESPACE),
	    .log_level = strdup(DEFAULT_LOG_LEVEL),
	    .log_format = strdup(DEFAULT_LOG_FORMAT),
	};
	if (!s->listen || !s->namespace || !s->log_level || !s->log_format)
		return -ENOMEM;
	return 0;
}
