/* SPDX-License-Identifier: MIT */
/* The config parser: a table of YAML documents, each with the exact list of errors expected
 * (file:line:col: message), plus defaults, the source registry and loading from a file. */
/* cmocka.h needs these first, so the includes keep this order */
/* clang-format off */
#define _GNU_SOURCE /* mkostemp */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
/* clang-format on */

#include "scalemetrics/config.h"
#include "scalemetrics/source.h"

#include "../../src/config/config-internal.h"

#define MAX_EXPECTED 8

struct config_case {
	const char *name;
	const char *yaml;
	const char *errors[MAX_EXPECTED]; /* all empty: loads */
};

/* A valid redis source body, lines 2-5 of a source item (after "  - name: NAME"). */
#define REDIS_BODY                                                                                 \
	"    type: redis\n"                                                                        \
	"    queues:\n"                                                                            \
	"      - metric: jobs_waiting\n"                                                           \
	"        keys: [\"queue:*\"]\n"

static const struct config_case cases[] = {
    {.name = "empty file", .yaml = ""},
    {.name = "comment only", .yaml = "# nothing\n"},
    {.name = "no sources", .yaml = "sources: []\n"},
    {.name = "null sections", .yaml = "server:\nkubernetes:\nsources:\n"},
    {.name = "full server",
     .yaml = "server:\n"
             "  listen: \"[::]:6443\"\n"
             "  tls:\n"
             "    cert_file: /tls.crt\n"
             "    key_file: /tls.key\n"
             "  auth:\n"
             "    mode: none\n"
             "    requestheader_client_ca_file: /front.crt\n"
             "    requestheader_allowed_names: [front-proxy-client]\n"
             "    client_ca_file: /ca.crt\n"
             "    cache_ttl: 1m\n"
             "  limits:\n"
             "    max_connections: 10\n"
             "    max_connections_per_ip: 5\n"
             "    connection_timeout: 5s\n"
             "    max_header_bytes: 8192\n"
             "  namespace: monitoring\n"
             "  log_level: debug\n"
             "  log_format: json\n"
             "  access_log: true\n"
             "kubernetes:\n"
             "  kubeconfig: /kube/config\n"},
    {.name = "redis source", .yaml = "sources:\n  - name: jobs\n" REDIS_BODY},
    {.name = "unknown top-level key",
     .yaml = "srever:\n  listen: 0.0.0.0:1\n",
     .errors = {"cfg.yaml:1:1: unknown key \"srever\" in the top-level mapping"}},
    {.name = "unknown key in source at its line and column",
     .yaml = "server:\n"
             "  namespace: prod\n"
             "sources:\n"
             "  - name: jobs\n" REDIS_BODY "    intervall: 5s\n",
     .errors = {"cfg.yaml:9:5: unknown key \"intervall\" in source 'jobs'"}},
    {.name = "unknown key in a queue rule",
     .yaml = "sources:\n"
             "  - name: jobs\n"
             "    type: redis\n"
             "    queues:\n"
             "      - metric: q\n"
             "        keys: [a]\n"
             "        lable: x\n",
     .errors = {"cfg.yaml:7:9: unknown key \"lable\" in queue rule of source 'jobs'"}},
    {.name = "two errors in one file, both reported",
     .yaml = "server:\n"
             "  listen: \"nohost\"\n"
             "  limits:\n"
             "    max_connections: 0\n",
     .errors = {"cfg.yaml:2:11: invalid listen address 'nohost' in server (expected "
                "host:port or [ipv6]:port, port 1-65535)",
                "cfg.yaml:4:22: \"max_connections\" in server.limits must be between 1 and "
                "1000000 (got '0')"}},
    {.name = "bad duration",
     .yaml = "server:\n  auth:\n    cache_ttl: 10\n",
     .errors = {"cfg.yaml:3:16: invalid duration '10' for \"cache_ttl\" in server.auth "
                "(expected a number with a unit: 500ms, 5s, 1m, 1h)"}},
    {.name = "duration out of range",
     .yaml = "sources:\n  - name: jobs\n" REDIS_BODY "    interval: 50ms\n",
     .errors = {"cfg.yaml:7:15: \"interval\" in source 'jobs' must be between 100ms and 1h "
                "(got '50ms')"}},
    {.name = "bad enum",
     .yaml = "server:\n  auth:\n    mode: open\n",
     .errors = {"cfg.yaml:3:11: invalid value 'open' for \"mode\" in server.auth (expected "
                "one of: delegated, none)"}},
    {.name = "bad log level and format",
     .yaml = "server:\n  log_level: verbose\n  log_format: text\n",
     .errors = {"cfg.yaml:2:14: invalid value 'verbose' for \"log_level\" in server (expected "
                "one of: error, warn, info, debug)",
                "cfg.yaml:3:15: invalid value 'text' for \"log_format\" in server (expected one "
                "of: logfmt, json)"}},
    {.name = "access_log is a boolean",
     .yaml = "server:\n  access_log: yes\n",
     .errors = {"cfg.yaml:2:15: invalid value 'yes' for \"access_log\" in server (expected "
                "true or false)"}},
    {.name = "access_log is not a list",
     .yaml = "server:\n  access_log: [true]\n",
     .errors = {"cfg.yaml:2:15: \"access_log\" in server must be true or false, not a list"}},
    {.name = "access_log needs a value",
     .yaml = "server:\n  access_log:\n",
     .errors = {"cfg.yaml:2:14: missing value for \"access_log\" in server"}},
    {.name = "out-of-range and non-numeric integers",
     .yaml = "server:\n"
             "  limits:\n"
             "    max_header_bytes: 10\n"
             "    max_connections_per_ip: -1\n"
             "    max_connections: lots\n",
     .errors = {"cfg.yaml:3:23: \"max_header_bytes\" in server.limits must be between 1024 "
                "and 1048576 (got '10')",
                "cfg.yaml:4:29: \"max_connections_per_ip\" in server.limits must be between 1 "
                "and 1000000 (got '-1')",
                "cfg.yaml:5:22: invalid integer 'lots' for \"max_connections\" in server.limits"}},
    {.name = "missing value",
     .yaml = "server:\n  limits:\n    max_connections:\n",
     .errors = {"cfg.yaml:3:21: missing value for \"max_connections\" in server.limits"}},
    {.name = "duplicate source name",
     .yaml = "sources:\n"
             "  - name: jobs\n" REDIS_BODY "  - name: jobs\n" REDIS_BODY,
     .errors = {"cfg.yaml:7:11: duplicate source name 'jobs' (first defined at line 2)",
                "cfg.yaml:10:9: metric 'jobs_waiting' of source 'jobs' is also served by "
                "source 'jobs' in namespace 'default'"}},
    {.name = "metric defined twice in one source",
     .yaml = "sources:\n"
             "  - name: jobs\n" REDIS_BODY "      - metric: jobs_waiting\n"
             "        keys: [\"other:*\"]\n",
     .errors = {"cfg.yaml:7:9: metric 'jobs_waiting' is already defined at line 5 (source "
                "'jobs')"}},
    {.name = "metric served by two sources in the default namespace",
     .yaml = "sources:\n"
             "  - name: a\n" REDIS_BODY "  - name: b\n" REDIS_BODY,
     .errors = {"cfg.yaml:10:9: metric 'jobs_waiting' of source 'b' is also served by source "
                "'a' in namespace 'default'"}},
    {.name = "metric shared by sources in disjoint namespaces",
     .yaml = "sources:\n"
             "  - name: a\n"
             "    type: redis\n"
             "    namespaces: [team-a, ops]\n"
             "    queues:\n"
             "      - metric: jobs_waiting\n"
             "        keys: [\"queue:*\"]\n"
             "  - name: b\n"
             "    type: redis\n"
             "    namespaces: [team-b]\n"
             "    queues:\n"
             "      - metric: jobs_waiting\n"
             "        keys: [\"queue:*\"]\n"
             "  - name: c\n"
             "    type: redis\n"
             "    namespaces: [team-c, staging]\n"
             "    queues:\n"
             "      - metric: jobs_waiting\n"
             "        keys: [\"queue:*\"]\n"},
    {.name = "metric shared by sources whose namespaces overlap",
     .yaml = "sources:\n"
             "  - name: a\n"
             "    type: redis\n"
             "    namespaces: [team-a, ops]\n"
             "    queues:\n"
             "      - metric: jobs_waiting\n"
             "        keys: [\"queue:*\"]\n"
             "  - name: b\n"
             "    type: redis\n"
             "    namespaces: [team-b]\n"
             "    queues:\n"
             "      - metric: jobs_waiting\n"
             "        keys: [\"queue:*\"]\n"
             "  - name: c\n"
             "    type: redis\n"
             "    namespaces: [team-c, ops]\n"
             "    queues:\n"
             "      - metric: jobs_waiting\n"
             "        keys: [\"queue:*\"]\n",
     .errors = {"cfg.yaml:18:9: metric 'jobs_waiting' of source 'c' is also served by source "
                "'a' in namespace 'ops'"}},
    {.name = "two pgbouncer sources for two teams",
     .yaml = "sources:\n"
             "  - name: bouncer-a\n"
             "    type: pgbouncer\n"
             "    dsn_env: BOUNCER_A_DSN\n"
             "    namespaces: [team-a]\n"
             "  - name: bouncer-b\n"
             "    type: pgbouncer\n"
             "    dsn_env: BOUNCER_B_DSN\n"
             "    namespaces: [team-b]\n"},
    {.name = "two pgbouncer sources in one namespace",
     .yaml = "sources:\n"
             "  - name: bouncer-a\n"
             "    type: pgbouncer\n"
             "    dsn_env: BOUNCER_A_DSN\n"
             "    namespaces: [team-a]\n"
             "  - name: bouncer-b\n"
             "    type: pgbouncer\n"
             "    dsn_env: BOUNCER_B_DSN\n"
             "    namespaces: [team-a]\n",
     .errors = {"cfg.yaml:6:5: metric 'pgbouncer_clients_active' of source 'bouncer-b' is also "
                "served by source 'bouncer-a' in namespace 'team-a'",
                "cfg.yaml:6:5: metric 'pgbouncer_clients_waiting' of source 'bouncer-b' is also "
                "served by source 'bouncer-a' in namespace 'team-a'",
                "cfg.yaml:6:5: metric 'pgbouncer_max_wait_seconds' of source 'bouncer-b' is "
                "also served by source 'bouncer-a' in namespace 'team-a'",
                "cfg.yaml:6:5: metric 'pgbouncer_pool_size' of source 'bouncer-b' is also "
                "served by source 'bouncer-a' in namespace 'team-a'",
                "cfg.yaml:6:5: metric 'pgbouncer_pool_utilization' of source 'bouncer-b' is "
                "also served by source 'bouncer-a' in namespace 'team-a'",
                "cfg.yaml:6:5: metric 'pgbouncer_servers_active' of source 'bouncer-b' is also "
                "served by source 'bouncer-a' in namespace 'team-a'",
                "cfg.yaml:6:5: metric 'pgbouncer_servers_idle' of source 'bouncer-b' is also "
                "served by source 'bouncer-a' in namespace 'team-a'",
                "cfg.yaml:6:5: metric 'pgbouncer_servers_used' of source 'bouncer-b' is also "
                "served by source 'bouncer-a' in namespace 'team-a'"}},
    {.name = "pods metric shared by scrape sources of two namespaces",
     .yaml = "sources:\n"
             "  - name: a\n"
             "    type: scrape\n"
             "    pods: {namespace: team-a, port: 8000}\n"
             "    gauges:\n"
             "      - metric: jobs_waiting\n"
             "        gauge: jobs_waiting\n"
             "    namespaces: [ops]\n"
             "  - name: b\n"
             "    type: scrape\n"
             "    pods: {namespace: team-b, port: 8000}\n"
             "    gauges:\n"
             "      - metric: jobs_waiting\n"
             "        gauge: jobs_waiting\n"},
    {.name = "pods metric served where the other source's pods are",
     .yaml = "sources:\n"
             "  - name: a\n"
             "    type: scrape\n"
             "    pods: {namespace: team-a, port: 8000}\n"
             "    gauges:\n"
             "      - metric: jobs_waiting\n"
             "        gauge: jobs_waiting\n"
             "    namespaces: [ops]\n"
             "  - name: b\n"
             "    type: scrape\n"
             "    pods: {namespace: team-b, port: 8000}\n"
             "    gauges:\n"
             "      - metric: jobs_waiting\n"
             "        gauge: jobs_waiting\n"
             "    namespaces: [team-a]\n",
     .errors = {"cfg.yaml:13:9: metric 'jobs_waiting' of source 'b' is also served by source "
                "'a' in namespace 'team-a'"}},
    {.name = "shared name, different kinds of metric",
     .yaml = "sources:\n"
             "  - name: a\n"
             "    type: scrape\n"
             "    pods: {namespace: team-a, port: 8000}\n"
             "    gauges:\n"
             "      - metric: jobs_waiting\n"
             "        gauge: jobs_waiting\n"
             "  - name: b\n"
             "    type: redis\n"
             "    namespaces: [team-b]\n"
             "    queues:\n"
             "      - metric: jobs_waiting\n"
             "        keys: [\"queue:*\"]\n",
     .errors = {"cfg.yaml:12:9: metric 'jobs_waiting' of source 'b' is an external metric, but "
                "source 'a' defines it as a metric on pods (sources may share a name only for "
                "the same kind of metric)"}},
    {.name = "shared object metric on namespaced objects",
     .yaml = "sources:\n"
             "  - name: a\n"
             "    type: redis\n"
             "    namespaces: [team-a]\n"
             "    queues:\n"
             "      - metric: jobs_waiting\n"
             "        keys: [\"queue:*\"]\n"
             "        object: {resource: deployments.apps, name: \"w-{queue}\"}\n"
             "  - name: b\n"
             "    type: redis\n"
             "    namespaces: [team-b]\n"
             "    queues:\n"
             "      - metric: jobs_waiting\n"
             "        keys: [\"queue:*\"]\n"
             "        object: {resource: deployments.apps, name: \"w-{queue}\"}\n"},
    {.name = "shared object metric on two resources",
     .yaml = "sources:\n"
             "  - name: a\n"
             "    type: redis\n"
             "    namespaces: [team-a]\n"
             "    queues:\n"
             "      - metric: jobs_waiting\n"
             "        keys: [\"queue:*\"]\n"
             "        object: {resource: deployments.apps, name: \"w-{queue}\"}\n"
             "  - name: b\n"
             "    type: redis\n"
             "    namespaces: [team-b]\n"
             "    queues:\n"
             "      - metric: jobs_waiting\n"
             "        keys: [\"queue:*\"]\n"
             "        object: {resource: statefulsets.apps, name: \"w-{queue}\"}\n",
     .errors = {"cfg.yaml:13:9: metric 'jobs_waiting' of source 'b' is served on "
                "statefulsets.apps, but source 'a' serves it on deployments.apps (sources may "
                "share a name only on the same resource)"}},
    {.name = "shared object metric on root-scoped objects",
     .yaml = "sources:\n"
             "  - name: a\n"
             "    type: redis\n"
             "    namespaces: [team-a]\n"
             "    queues:\n"
             "      - metric: jobs_waiting\n"
             "        keys: [\"queue:*\"]\n"
             "        object: {resource: nodes, name: \"n-{queue}\"}\n"
             "  - name: b\n"
             "    type: redis\n"
             "    namespaces: [team-b]\n"
             "    queues:\n"
             "      - metric: jobs_waiting\n"
             "        keys: [\"queue:*\"]\n"
             "        object: {resource: nodes, name: \"n-{queue}\"}\n",
     .errors = {"cfg.yaml:13:9: metric 'jobs_waiting' of source 'b' is also served by source "
                "'a' on nodes, which have no namespace to tell the sources apart"}},
    {.name = "unknown source type",
     .yaml = "sources:\n  - name: jobs\n    type: kafka\n",
     .errors = {"cfg.yaml:3:11: unknown source type 'kafka' (expected one of: pgbouncer, "
                "postgresql, redis, scrape)"}},
    {.name = "missing name and type",
     .yaml = "sources:\n  - interval: 5s\n",
     .errors = {"cfg.yaml:2:5: missing required key \"name\" in source #1",
                "cfg.yaml:2:5: missing required key \"type\" in source #1"}},
    {.name = "invalid source name",
     .yaml = "sources:\n  - name: Jobs_1\n" REDIS_BODY,
     .errors = {"cfg.yaml:2:11: invalid source name 'Jobs_1' (expected 1-63 characters of "
                "a-z, 0-9 and '-')"}},
    {.name = "source is not a mapping",
     .yaml = "sources:\n  - jobs\n",
     .errors = {"cfg.yaml:2:5: source #1 must be a mapping, not a scalar"}},
    {.name = "sources is not a list",
     .yaml = "sources:\n  jobs: {}\n",
     .errors = {"cfg.yaml:2:3: \"sources\" must be a list of sources, not a mapping"}},
    {.name = "cert_file without key_file",
     .yaml = "server:\n  tls:\n    cert_file: /tls.crt\n",
     .errors = {"cfg.yaml:3:5: server.tls needs both cert_file and key_file, or neither "
                "(key_file is missing)"}},
    {.name = "key_file without cert_file",
     .yaml = "server:\n  tls: {key_file: /k, cert_file: \"\"}\n",
     .errors = {"cfg.yaml:2:8: server.tls needs both cert_file and key_file, or neither "
                "(cert_file is missing)"}},
    {.name = "listen port out of range",
     .yaml = "server:\n  listen: 127.0.0.1:65536\n",
     .errors = {"cfg.yaml:2:11: invalid listen address '127.0.0.1:65536' in server (expected "
                "host:port or [ipv6]:port, port 1-65535)"}},
    {.name = "listen IPv6 without brackets",
     .yaml = "server:\n  listen: \"::1:6443\"\n",
     .errors = {"cfg.yaml:2:11: invalid listen address '::1:6443' in server (expected "
                "host:port or [ipv6]:port, port 1-65535)"}},
    {.name = "listen bad IPv6",
     .yaml = "server:\n  listen: \"[::g]:6443\"\n",
     .errors = {"cfg.yaml:2:11: invalid listen address '[::g]:6443' in server (expected "
                "host:port or [ipv6]:port, port 1-65535)"}},
    {.name = "listen without port",
     .yaml = "server:\n  listen: localhost\n",
     .errors = {"cfg.yaml:2:11: invalid listen address 'localhost' in server (expected "
                "host:port or [ipv6]:port, port 1-65535)"}},
    {.name = "listen port zero",
     .yaml = "server:\n  listen: \"[::1]:0\"\n",
     .errors = {"cfg.yaml:2:11: invalid listen address '[::1]:0' in server (expected "
                "host:port or [ipv6]:port, port 1-65535)"}},
    {.name = "listen valid forms", .yaml = "server:\n  listen: localhost:1\n"},
    {.name = "YAML syntax error with position",
     .yaml = "server:\n  listen: [a\n  namespace: x\n",
     .errors = {"cfg.yaml:3:12: invalid YAML: did not find expected ',' or ']' (while "
                "parsing a flow sequence at line 2)"}},
    {.name = "YAML bad indentation",
     .yaml = "server:\n  listen: a:1\n namespace: x\n",
     .errors = {"cfg.yaml:3:2: invalid YAML: did not find expected key (while parsing a "
                "block mapping at line 1)"}},
    {.name = "YAML undefined alias",
     .yaml = "server:\n  listen: *nope\n",
     .errors = {"cfg.yaml:2:11: invalid YAML: found undefined alias"}},
    {.name = "two YAML documents",
     .yaml = "server: {}\n---\nserver: {}\n",
     .errors = {"cfg.yaml:2:1: only one YAML document is allowed"}},
    {.name = "duplicate key",
     .yaml = "server:\n  namespace: a\n  namespace: b\n",
     .errors = {"cfg.yaml:3:3: duplicate key \"namespace\" in server (first at line 2)"}},
    {.name = "duplicate common key in a source",
     .yaml = "sources:\n  - name: jobs\n" REDIS_BODY "    interval: 1s\n    interval: 2s\n",
     .errors = {"cfg.yaml:8:5: duplicate key \"interval\" in source 'jobs' (first at line "
                "7)"}},
    {.name = "sequence where a scalar is expected",
     .yaml = "server:\n  listen: [a, b]\n",
     .errors = {"cfg.yaml:2:11: \"listen\" in server must be a string, not a list"}},
    {.name = "mapping where a duration is expected",
     .yaml = "server:\n  limits:\n    connection_timeout: {a: 1}\n",
     .errors = {"cfg.yaml:3:25: \"connection_timeout\" in server.limits must be a duration, "
                "not a mapping"}},
    {.name = "scalar where a mapping is expected",
     .yaml = "server: 8080\n",
     .errors = {"cfg.yaml:1:9: server must be a mapping, not a scalar"}},
    {.name = "top level is a list",
     .yaml = "- a\n",
     .errors = {"cfg.yaml:1:1: the top-level mapping must be a mapping, not a list"}},
    {.name = "list item of the wrong type",
     .yaml = "server:\n  auth:\n    requestheader_allowed_names: [a, [b]]\n",
     .errors = {"cfg.yaml:3:38: items of \"requestheader_allowed_names\" in server.auth must "
                "be strings, not a list"}},
    {.name = "inline password is an unknown key",
     .yaml = "sources:\n  - name: jobs\n" REDIS_BODY "    password: hunter2\n",
     .errors = {"cfg.yaml:7:5: unknown key \"password\" in source 'jobs' (secrets are given "
                "by password_file or password_env)"}},
    {.name = "inline dsn is an unknown key",
     .yaml = "sources:\n"
             "  - name: db\n"
             "    type: postgresql\n"
             "    dsn_env: DATABASE_URL\n"
             "    dsn: postgres://u:secret@h/db\n",
     .errors = {"cfg.yaml:5:5: unknown key \"dsn\" in source 'db' (secrets are given by "
                "dsn_file or dsn_env)"}},
    {.name = "secret-looking key in server",
     .yaml = "server:\n  token: abc\n",
     .errors = {"cfg.yaml:2:3: unknown key \"token\" in server (secrets are never written "
                "inline)"}},
    {.name = "max_age below interval",
     .yaml = "sources:\n  - name: jobs\n" REDIS_BODY "    interval: 10s\n    max_age: 5s\n",
     .errors = {"cfg.yaml:8:14: \"max_age\" (5s) in source 'jobs' must be at least the "
                "interval (10s)"}},
    {.name = "bad namespaces",
     .yaml = "server:\n  namespace: Prod\n"
             "sources:\n  - name: jobs\n" REDIS_BODY "    namespaces: [ok, -bad]\n",
     .errors = {"cfg.yaml:2:14: invalid namespace 'Prod' in server (expected a DNS-1123 "
                "label: a-z, 0-9 and '-', at most 63 characters)",
                "cfg.yaml:9:22: invalid namespace '-bad' in source 'jobs' (expected a DNS-1123 "
                "label: a-z, 0-9 and '-', at most 63 characters)"}},
    {.name = "empty namespaces",
     .yaml = "sources:\n  - name: jobs\n" REDIS_BODY "    namespaces: []\n",
     .errors = {"cfg.yaml:7:17: \"namespaces\" in source 'jobs' must not be empty"}},
    {.name = "max_series bounds",
     .yaml = "sources:\n  - name: jobs\n" REDIS_BODY "    max_series: 1000001\n",
     .errors = {"cfg.yaml:7:17: \"max_series\" in source 'jobs' must be between 1 and 1000000 "
                "(got '1000001')"}},
    {.name = "bad boolean in a collector table",
     .yaml = "sources:\n"
             "  - name: db\n"
             "    type: postgresql\n"
             "    dsn_env: DATABASE_URL\n"
             "    builtin: yes\n",
     .errors = {"cfg.yaml:5:14: invalid value 'yes' for \"builtin\" in source 'db' (expected "
                "true or false)"}},
    {.name = "errors in several sections, in file order",
     .yaml = "sources:\n"
             "  - name: jobs\n"
             "    type: redis\n"
             "    timeout: soon\n"
             "    queues:\n"
             "      - metric: q\n"
             "        keys: [a]\n"
             "server:\n"
             "  bogus: 1\n"
             "kubernetes:\n"
             "  kubeconfig: [x]\n",
     .errors = {"cfg.yaml:4:14: invalid duration 'soon' for \"timeout\" in source 'jobs' "
                "(expected a number with a unit: 500ms, 5s, 1m, 1h)",
                "cfg.yaml:9:3: unknown key \"bogus\" in server",
                "cfg.yaml:11:15: \"kubeconfig\" in kubernetes must be a string, not a list"}},
    {.name = "kubernetes extensions",
     .yaml = "kubernetes:\n"
             "  server: https://10.0.0.1:443\n"
             "  token_file: /t\n"
             "  ca_file: /ca\n"
             "  insecure_skip_tls_verify: true\n"},
    {.name = "kubernetes server is a URL",
     .yaml = "kubernetes:\n  server: 10.0.0.1:443\n",
     .errors = {"cfg.yaml:2:11: invalid server '10.0.0.1:443' in kubernetes (expected an "
                "https:// or http:// URL)"}},
    {.name = "kubernetes context of a kubeconfig",
     .yaml = "kubernetes:\n"
             "  kubeconfig: /kube/config\n"
             "  context: kind-kind\n"
             "  server: https://127.0.0.1:6443\n"},
    {.name = "kubernetes context without a kubeconfig",
     .yaml = "kubernetes:\n  context: kind-kind\n  server: https://127.0.0.1:6443\n",
     .errors = {"cfg.yaml:2:12: context in kubernetes needs kubernetes.kubeconfig: with "
                "kubernetes.server alone no kubeconfig is read"}},
    {.name = "missing required collector key",
     .yaml = "sources:\n  - name: jobs\n    type: redis\n",
     .errors = {"cfg.yaml:2:5: missing required key \"queues\" in source 'jobs'"}},
};

static void print_errors(const char *name, const struct sm_error_list *errs)
{
	char buf[1024];

	fprintf(stderr, "case '%s': %zu error(s):\n", name, errs->n);
	for (size_t i = 0; i < errs->n; i++) {
		sm_error_format(&errs->items[i], buf, sizeof(buf));
		fprintf(stderr, "  %s\n", buf);
	}
}

static bool run_case(const struct config_case *c)
{
	struct sm_config sentinel = {0};
	struct sm_config *cfg = &sentinel;
	struct sm_error_list errs = {0};
	size_t n_expected = 0;
	bool ok = true;
	char buf[1024];
	int r;

	while (n_expected < MAX_EXPECTED && c->errors[n_expected])
		n_expected++;
	r = sm_config_load_string("cfg.yaml", c->yaml, strlen(c->yaml), &cfg, &errs);
	if (n_expected == 0) {
		if (r != 0 || errs.n != 0 || cfg == &sentinel) {
			fprintf(stderr, "case '%s': expected success, got %d\n", c->name, r);
			print_errors(c->name, &errs);
			sm_error_list_done(&errs);
			return false;
		}
		sm_config_free(cfg);
		return true;
	}
	if (r != -EINVAL || errs.n != n_expected)
		ok = false;
	for (size_t i = 0; ok && i < n_expected; i++) {
		sm_error_format(&errs.items[i], buf, sizeof(buf));
		if (strcmp(buf, c->errors[i]) != 0) {
			fprintf(stderr, "case '%s': error %zu\n  expected: %s\n  got:      %s\n",
			        c->name, i, c->errors[i], buf);
			ok = false;
		}
	}
	if (!ok) {
		fprintf(stderr, "case '%s': r=%d, %zu error(s), expected %zu\n", c->name, r, errs.n,
		        n_expected);
		print_errors(c->name, &errs);
	}
	if (cfg != &sentinel) {
		fprintf(stderr, "case '%s': *ret was touched on failure\n", c->name);
		ok = false;
	}
	sm_error_list_done(&errs);
	return ok;
}

static void test_cases(void **state)
{
	size_t failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (!run_case(&cases[i]))
			failed++;
	if (failed)
		fail_msg("%zu of %zu cases failed (named above)", failed,
		         sizeof(cases) / sizeof(cases[0]));
}

static struct sm_config *load_ok(const char *yaml)
{
	struct sm_config *cfg = NULL;
	struct sm_error_list errs = {0};
	int r = sm_config_load_string("cfg.yaml", yaml, strlen(yaml), &cfg, &errs);

	if (r != 0) {
		print_errors("load_ok", &errs);
		fail_msg("load failed: %d", r);
	}
	assert_int_equal(errs.n, 0);
	sm_error_list_done(&errs);
	return cfg;
}

static void test_server_defaults(void **state)
{
	struct sm_config *cfg = load_ok("");
	const struct sm_server_config *s = &cfg->server;

	(void)state;
	assert_string_equal(cfg->path, "cfg.yaml");
	assert_string_equal(s->listen, "0.0.0.0:6443");
	assert_null(s->cert_file);
	assert_null(s->key_file);
	assert_int_equal(s->auth_mode, SM_AUTH_DELEGATED);
	assert_null(s->requestheader_client_ca_file);
	assert_int_equal(s->requestheader_allowed_names.n, 0);
	assert_null(s->client_ca_file);
	assert_int_equal(s->cache_ttl_ms, 10000);
	assert_int_equal(s->max_connections, 1024);
	assert_int_equal(s->max_connections_per_ip, 256);
	assert_int_equal(s->connection_timeout_ms, 30000);
	assert_int_equal(s->max_header_bytes, 16384);
	assert_string_equal(s->namespace, "default");
	assert_string_equal(s->log_level, "info");
	assert_string_equal(s->log_format, "logfmt");
	assert_false(s->access_log);
	assert_null(cfg->kubernetes.kubeconfig);
	assert_null(cfg->kubernetes.server);
	assert_null(cfg->kubernetes.token_file);
	assert_null(cfg->kubernetes.ca_file);
	assert_false(cfg->kubernetes.insecure_skip_tls_verify);
	assert_int_equal(cfg->n_sources, 0);
	sm_config_free(cfg);
}

static void test_server_values(void **state)
{
	struct sm_config *cfg = load_ok(cases[4].yaml);
	const struct sm_server_config *s = &cfg->server;

	(void)state;
	assert_string_equal(s->listen, "[::]:6443");
	assert_string_equal(s->cert_file, "/tls.crt");
	assert_string_equal(s->key_file, "/tls.key");
	assert_int_equal(s->auth_mode, SM_AUTH_NONE);
	assert_string_equal(s->requestheader_client_ca_file, "/front.crt");
	assert_int_equal(s->requestheader_allowed_names.n, 1);
	assert_string_equal(s->requestheader_allowed_names.v[0], "front-proxy-client");
	assert_string_equal(s->client_ca_file, "/ca.crt");
	assert_int_equal(s->cache_ttl_ms, 60000);
	assert_int_equal(s->max_connections, 10);
	assert_int_equal(s->max_connections_per_ip, 5);
	assert_int_equal(s->connection_timeout_ms, 5000);
	assert_int_equal(s->max_header_bytes, 8192);
	assert_string_equal(s->namespace, "monitoring");
	assert_string_equal(s->log_level, "debug");
	assert_string_equal(s->log_format, "json");
	assert_true(s->access_log);
	assert_string_equal(cfg->kubernetes.kubeconfig, "/kube/config");
	sm_config_free(cfg);
}

static void test_source_defaults(void **state)
{
	/* sources before server: the namespaces default still comes from server.namespace */
	struct sm_config *cfg = load_ok("sources:\n"
	                                "  - name: jobs\n" REDIS_BODY "  - name: other\n"
	                                "    type: redis\n"
	                                "    interval: 2s\n"
	                                "    namespaces: prod\n"
	                                "    queues:\n"
	                                "      - {metric: other_waiting, keys: [x]}\n"
	                                "server:\n"
	                                "  namespace: workers\n");
	const struct sm_source_config *a, *b;

	(void)state;
	assert_int_equal(cfg->n_sources, 2);
	a = &cfg->sources[0];
	b = &cfg->sources[1];
	assert_string_equal(a->name, "jobs");
	assert_string_equal(a->type, "redis");
	assert_ptr_equal(a->ops, &sm_source_redis);
	assert_int_equal(a->interval_ms, 5000);
	assert_int_equal(a->timeout_ms, 1000);
	assert_int_equal(a->max_age_ms, 15000);
	assert_int_equal(a->max_series, 10000);
	assert_int_equal(a->namespaces.n, 1);
	assert_string_equal(a->namespaces.v[0], "workers");
	assert_int_equal(a->mark.line, 2);
	assert_int_equal(a->mark.column, 5);
	assert_int_equal(a->n_metrics, 1);
	assert_string_equal(a->metrics[0].name, "jobs_waiting");
	assert_int_equal(a->metrics[0].scope, SM_METRIC_EXTERNAL);
	assert_false(a->metrics[0].fallback.set);
	assert_non_null(a->priv);

	assert_int_equal(b->interval_ms, 2000);
	assert_int_equal(b->max_age_ms, 6000);
	assert_int_equal(b->namespaces.n, 1);
	assert_string_equal(b->namespaces.v[0], "prod");
	assert_int_equal(b->mark.line, 7);
	sm_config_free(cfg);
}

static void test_source_values(void **state)
{
	struct sm_config *cfg = load_ok("sources:\n"
	                                "  - name: jobs\n" REDIS_BODY "    interval: 500ms\n"
	                                "    timeout: 200ms\n"
	                                "    max_age: 2s\n"
	                                "    max_series: 5\n"
	                                "    namespaces: [a, b]\n");
	const struct sm_source_config *s = &cfg->sources[0];

	(void)state;
	assert_int_equal(s->interval_ms, 500);
	assert_int_equal(s->timeout_ms, 200);
	assert_int_equal(s->max_age_ms, 2000);
	assert_int_equal(s->max_series, 5);
	assert_int_equal(s->namespaces.n, 2);
	assert_string_equal(s->namespaces.v[0], "a");
	assert_string_equal(s->namespaces.v[1], "b");
	sm_config_free(cfg);
}

/* Errors keep coming past the first hundred, but only a hundred are kept. */
static void test_error_cap(void **state)
{
	struct sm_config *cfg = NULL;
	struct sm_error_list errs = {0};
	char *yaml = malloc(150 * 16 + 16);
	char buf[600];
	size_t len = 0;
	int r;

	(void)state;
	assert_non_null(yaml);
	len += (size_t)snprintf(yaml + len, 16, "server:\n");
	for (int i = 0; i < 150; i++)
		len += (size_t)snprintf(yaml + len, 16, "  k%03d: 1\n", i);
	r = sm_config_load_string("cfg.yaml", yaml, len, &cfg, &errs);
	assert_int_equal(r, -EINVAL);
	assert_null(cfg);
	assert_int_equal(errs.n, 101);
	sm_error_format(&errs.items[0], buf, sizeof(buf));
	assert_string_equal(buf, "cfg.yaml:2:3: unknown key \"k000\" in server");
	sm_error_format(&errs.items[100], buf, sizeof(buf));
	assert_string_equal(buf, "cfg.yaml: 50 more errors not shown");
	sm_error_list_done(&errs);
	free(yaml);
}

/* Errors are appended to what the list already holds. */
static void test_errors_appended(void **state)
{
	struct sm_error_list errs = {0};
	struct sm_error first = {.message = "earlier"};
	struct sm_config *cfg = NULL;

	(void)state;
	assert_int_equal(sm_error_list_add(&errs, &first), 0);
	assert_int_equal(sm_config_load_string("x.yaml", "a: 1\nb: 2\n", 10, &cfg, &errs), -EINVAL);
	assert_int_equal(errs.n, 3);
	assert_string_equal(errs.items[0].message, "earlier");
	assert_string_equal(errs.items[1].file, "x.yaml");
	assert_int_equal(errs.items[2].line, 2);
	sm_error_list_done(&errs);
}

static void test_load_file(void **state)
{
	char path[] = "/tmp/test-config-XXXXXX";
	const char *yaml = "server:\n  namespace: files\n";
	struct sm_config *cfg = NULL;
	struct sm_error_list errs = {0};
	char buf[600];
	int fd;

	(void)state;
	fd = mkostemp(path, O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
	close(fd);
	assert_int_equal(sm_config_load(path, &cfg, &errs), 0);
	assert_string_equal(cfg->path, path);
	assert_string_equal(cfg->server.namespace, "files");
	sm_config_free(cfg);
	cfg = NULL;

	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x: 1\n", 5), 5);
	close(fd);
	assert_int_equal(sm_config_load(path, &cfg, &errs), -EINVAL);
	assert_null(cfg);
	assert_int_equal(errs.n, 1);
	assert_string_equal(errs.items[0].file, path);
	sm_error_list_done(&errs);
	unlink(path);

	assert_int_equal(sm_config_load(path, &cfg, &errs), -ENOENT);
	assert_null(cfg);
	assert_int_equal(errs.n, 1);
	sm_error_format(&errs.items[0], buf, sizeof(buf));
	assert_non_null(strstr(buf, ": cannot open: No such file or directory"));
	sm_error_list_done(&errs);
	sm_config_free(NULL);
}

/* The file a user starts from (examples/config.yaml) must load. __FILE__ is absolute or
 * relative to the build directory, two levels above this binary. */
static void test_example(void **state)
{
	const char *file = __FILE__;
	const char *tail = strstr(file, "tests/unit/test-config.c");
	struct sm_config *cfg = NULL;
	struct sm_error_list errs = {0};
	char exe[2048] = "", path[4096];
	ssize_t n;
	int r;

	(void)state;
	assert_non_null(tail);
	if (file[0] == '/') {
		(void)snprintf(path, sizeof(path), "%.*sexamples/config.yaml", (int)(tail - file),
		               file);
	} else {
		n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		assert_true(n > 0);
		exe[n] = '\0';
		for (int up = 0; up < 3; up++) {
			char *slash = strrchr(exe, '/');

			assert_non_null(slash);
			*slash = '\0';
		}
		(void)snprintf(path, sizeof(path), "%s/%.*sexamples/config.yaml", exe,
		               (int)(tail - file), file);
	}
	r = sm_config_load(path, &cfg, &errs);
	if (r != 0) {
		print_errors(path, &errs);
		fail_msg("%s: %d", path, r);
	}
	assert_int_equal(cfg->n_sources, 1);
	assert_int_equal(cfg->sources[0].n_metrics, 2);
	sm_config_free(cfg);
	sm_error_list_done(&errs);
}

/* libyaml is quadratic in flow nesting depth: deep nesting is refused before it runs. */
static void test_deep_nesting(void **state)
{
	static char deep[300001];
	const char *ok = "server:\n  auth:\n    requestheader_allowed_names: [[a], \"[[[[\"]\n";
	struct sm_error_list errs = {0};
	struct sm_config *cfg = NULL;
	char buf[600];

	(void)state;
	memset(deep, '[', sizeof(deep) - 1);
	assert_int_equal(sm_config_load_string("cfg.yaml", deep, sizeof(deep) - 1, &cfg, &errs),
	                 -EINVAL);
	assert_null(cfg);
	assert_int_equal(errs.n, 1);
	sm_error_format(&errs.items[0], buf, sizeof(buf));
	assert_string_equal(buf, "cfg.yaml:1:65: [ and { nested deeper than 64 levels");
	sm_error_list_done(&errs);

	/* brackets in quotes do not count; a list inside a list is a type error, not depth */
	assert_int_equal(sm_config_load_string("cfg.yaml", ok, strlen(ok), &cfg, &errs), -EINVAL);
	assert_int_equal(errs.n, 1);
	assert_non_null(strstr(errs.items[0].message, "must be strings, not a list"));
	sm_error_list_done(&errs);
}

static int stub_calls, stub_frees;

static void stub_free(void *priv)
{
	assert_ptr_equal(priv, &stub_calls);
	stub_frees++;
}

/* A source parser as a program registers one: sees the source with its common keys parsed. */
static int stub_parse(struct sm_config_parser *p, const struct sm_config_node *node,
                      struct sm_source_config *src)
{
	stub_calls++;
	assert_ptr_equal(sm_config_parser_source(p), src);
	assert_string_equal(src->type, "anything");
	assert_int_equal(src->interval_ms, 2000);
	assert_true(sm_config_node_is_mapping(node));
	src->priv = &stub_calls;
	src->priv_free = stub_free;
	return 0;
}

/* The config reaches the collectors only through the registered source parser. */
static void test_source_parser(void **state)
{
	static const char yaml[] = "sources:\n"
	                           "  - {name: a, type: anything, interval: 2s, own_key: 1}\n";
	struct sm_error_list errs = {0};
	struct sm_config *cfg = NULL;
	char buf[1024];

	(void)state;
	sm_config_set_source_parser(NULL);
	assert_int_equal(sm_config_load_string("cfg.yaml", yaml, strlen(yaml), &cfg, &errs),
	                 -EINVAL);
	assert_int_equal(errs.n, 1);
	sm_error_format(&errs.items[0], buf, sizeof(buf));
	assert_string_equal(buf, "cfg.yaml:2:21: unknown source type 'anything' (no collectors are "
	                         "registered)");
	sm_error_list_done(&errs);

	sm_config_set_source_parser(stub_parse);
	assert_int_equal(sm_config_load_string("cfg.yaml", yaml, strlen(yaml), &cfg, &errs), 0);
	assert_int_equal(stub_calls, 1);
	assert_ptr_equal(cfg->sources[0].priv, &stub_calls);
	sm_config_free(cfg);
	assert_int_equal(stub_frees, 1);
	sm_config_set_source_parser(sm_source_config_parse);
}

static void test_registry(void **state)
{
	char list[256];
	size_t n = 0;

	(void)state;
	assert_ptr_equal(sm_source_ops_find("redis"), &sm_source_redis);
	assert_ptr_equal(sm_source_ops_find("postgresql"), &sm_source_postgresql);
	assert_ptr_equal(sm_source_ops_find("pgbouncer"), &sm_source_pgbouncer);
	assert_ptr_equal(sm_source_ops_find("scrape"), &sm_source_scrape);
	assert_null(sm_source_ops_find("kafka"));
	assert_null(sm_source_ops_find(""));
	assert_null(sm_source_ops_find(NULL));

	/* every name in the list is registered, and nothing else is listed */
	(void)snprintf(list, sizeof(list), "%s", sm_source_types_list());
	for (char *s = list, *end;; s = end + 2) {
		const struct sm_source_ops *ops;

		end = strstr(s, ", ");
		if (end)
			*end = '\0';
		ops = sm_source_ops_find(s);
		assert_non_null(ops);
		assert_string_equal(ops->type, s);
		n++;
		if (!end)
			break;
	}
	assert_int_equal(n, 4);
}

/* The table machinery on its own: every type, flags and bounds, and the node accessors a
 * collector's custom parser uses. */
enum color {
	COLOR_RED,
	COLOR_GREEN,
	COLOR_MAX,
	COLOR_INVALID = -1,
};

struct probe {
	char *name;
	char *label;
	int64_t n;
	uint32_t u;
	int64_t wait_ms;
	struct sm_opt_double ratio;
	bool flag;
	enum color color;
	struct sm_strv list;
	int64_t token;
	bool custom_seen;
};

static const char *const color_names[] = {"red", "green", NULL};

static int probe_custom(struct sm_config_parser *p, const struct sm_config_node *node, void *target)
{
	bool *seen = target;
	const struct sm_config_node *item;

	*seen = true;
	if (!sm_config_node_is_sequence(node))
		return sm_config_report(p, node, "custom wants a list");
	assert_int_equal(sm_config_node_length(node), 2);
	item = sm_config_node_item(p, node, 1);
	assert_true(sm_config_node_is_mapping(item));
	assert_int_equal(sm_config_node_length(item), 1);
	assert_string_equal(sm_config_node_scalar(sm_config_node_get(p, item, "k")), "v");
	assert_null(sm_config_node_get(p, item, "missing"));
	assert_null(sm_config_node_item(p, node, 2));
	assert_null(sm_config_node_scalar(item));
	assert_true(sm_config_node_is_scalar(sm_config_node_item(p, node, 0)));
	assert_null(sm_config_parser_source(p));
	return 0;
}

static const struct sm_config_key probe_keys[] = {
    {.name = "color",
     .type = SM_CONFIG_ENUM,
     .offset = offsetof(struct probe, color),
     .enum_names = color_names},
    {.name = "custom",
     .type = SM_CONFIG_CUSTOM,
     .offset = offsetof(struct probe, custom_seen),
     .parse = probe_custom},
    {.name = "elsewhere", .type = SM_CONFIG_CUSTOM},
    {.name = "flag", .type = SM_CONFIG_BOOL, .offset = offsetof(struct probe, flag)},
    {.name = "label", .type = SM_CONFIG_STRING, .offset = offsetof(struct probe, label)},
    {.name = "list", .type = SM_CONFIG_STRING_LIST, .offset = offsetof(struct probe, list)},
    {.name = "n", .type = SM_CONFIG_INT, .offset = offsetof(struct probe, n), .min = -5, .max = 5},
    {.name = "name",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct probe, name),
     .flags = SM_CONFIG_REQUIRED},
    {.name = "ratio", .type = SM_CONFIG_DOUBLE, .offset = offsetof(struct probe, ratio)},
    {.name = "token",
     .type = SM_CONFIG_INT,
     .offset = offsetof(struct probe, token),
     .min = 1,
     .max = 9,
     .flags = SM_CONFIG_SECRET},
    {.name = "u", .type = SM_CONFIG_UINT32, .offset = offsetof(struct probe, u)},
    {.name = "wait",
     .type = SM_CONFIG_DURATION,
     .offset = offsetof(struct probe, wait_ms),
     .min = 1000},
};

static void probe_done(struct probe *pr)
{
	free(pr->name);
	free(pr->label);
	sm_strv_done(&pr->list);
}

static int probe_parse(const char *yaml, struct probe *pr, struct sm_error_list *errs)
{
	*pr = (struct probe){.label = strdup("default"), .n = 3, .color = COLOR_GREEN};
	assert_non_null(pr->label);
	return sm_config_parse_table_string("t.yaml", yaml, strlen(yaml), probe_keys,
	                                    sizeof(probe_keys) / sizeof(probe_keys[0]), pr, errs);
}

static void assert_errors(const struct sm_error_list *errs, const char *const *expected, size_t n)
{
	char buf[1024];

	if (errs->n != n) {
		print_errors("table", errs);
		fail_msg("%zu errors, expected %zu", errs->n, n);
	}
	for (size_t i = 0; i < n; i++) {
		sm_error_format(&errs->items[i], buf, sizeof(buf));
		assert_string_equal(buf, expected[i]);
	}
}

static void test_table_types(void **state)
{
	struct sm_error_list errs = {0};
	struct probe pr;

	(void)state;
	/* defaults survive; a heap default is replaced (and freed: ASan checks) */
	assert_int_equal(probe_parse("name: x\nelsewhere: {anything: [1]}\n", &pr, &errs), 0);
	assert_string_equal(pr.name, "x");
	assert_string_equal(pr.label, "default");
	assert_int_equal(pr.n, 3);
	assert_int_equal(pr.color, COLOR_GREEN);
	assert_false(pr.custom_seen);
	probe_done(&pr);

	assert_int_equal(probe_parse("name: \"\"\n"
	                             "label: lbl\n"
	                             "n: -5\n"
	                             "u: 4294967295\n"
	                             "wait: 1.5s\n"
	                             "ratio: 0.25\n"
	                             "flag: true\n"
	                             "color: red\n"
	                             "list: single\n"
	                             "token: 7\n"
	                             "custom: [a, {k: v}]\n",
	                             &pr, &errs),
	                 0);
	assert_int_equal(errs.n, 0);
	assert_string_equal(pr.name, "");
	assert_string_equal(pr.label, "lbl");
	assert_int_equal(pr.n, -5);
	assert_int_equal(pr.u, UINT32_MAX);
	assert_int_equal(pr.wait_ms, 1500);
	assert_true(pr.ratio.set);
	assert_true(pr.ratio.value == 0.25);
	assert_true(pr.flag);
	assert_int_equal(pr.color, COLOR_RED);
	assert_int_equal(pr.list.n, 1);
	assert_string_equal(pr.list.v[0], "single");
	assert_int_equal(pr.token, 7);
	assert_true(pr.custom_seen);
	probe_done(&pr);

	/* null values: empty string, empty list, unset double */
	assert_int_equal(probe_parse("name:\nlabel: ~\nlist:\nratio: null\n", &pr, &errs), 0);
	assert_string_equal(pr.name, "");
	assert_string_equal(pr.label, "");
	assert_int_equal(pr.list.n, 0);
	assert_false(pr.ratio.set);
	probe_done(&pr);
	sm_error_list_done(&errs);
}

static void check_table_errors(const char *yaml, const char *const *expected, size_t n)
{
	struct sm_error_list errs = {0};
	struct probe pr;

	assert_int_equal(probe_parse(yaml, &pr, &errs), -EINVAL);
	assert_errors(&errs, expected, n);
	probe_done(&pr);
	sm_error_list_done(&errs);
}

static void test_table_errors(void **state)
{
	static const char *const values[] = {
	    "t.yaml:1:1: missing required key \"name\" in the top-level mapping",
	    "t.yaml:1:4: \"n\" in the top-level mapping must be between -5 and 5 (got '6')",
	    "t.yaml:2:4: invalid integer '1e3' for \"u\" in the top-level mapping",
	    "t.yaml:3:7: invalid duration '1' for \"wait\" in the top-level mapping (expected a "
	    "number with a unit: 500ms, 5s, 1m, 1h)",
	    "t.yaml:4:8: invalid number 'half' for \"ratio\" in the top-level mapping",
	    "t.yaml:5:7: invalid value 'True' for \"flag\" in the top-level mapping (expected "
	    "true or false)",
	    "t.yaml:6:8: invalid value 'blue' for \"color\" in the top-level mapping (expected "
	    "one of: red, green)",
	};
	static const char *const bound[] = {
	    "t.yaml:1:7: \"wait\" in the top-level mapping must be at least 1s (got '999ms')",
	    "t.yaml:2:4: \"u\" in the top-level mapping must be between 0 and 4294967295 (got "
	    "'-1')",
	};
	static const char *const shapes[] = {
	    "t.yaml:1:8: \"token\" in the top-level mapping must be between 1 and 9",
	    "t.yaml:2:7: \"list\" in the top-level mapping must be a list of strings, not a "
	    "mapping",
	    "t.yaml:3:9: custom wants a list",
	    "t.yaml:4:1: keys in the top-level mapping must be strings, not a list",
	    "t.yaml:5:1: unknown key \"password\" in the top-level mapping (secrets are never "
	    "written inline)",
	    "t.yaml:6:4: \"n\" in the top-level mapping must be an integer, not a list",
	};
	static const char *const secret[] = {
	    "t.yaml:2:8: invalid integer for \"token\" in the top-level mapping",
	};
	struct sm_error_list errs = {0};
	struct probe pr;

	(void)state;
	check_table_errors("n: 6\n"
	                   "u: 1e3\n"
	                   "wait: 1\n"
	                   "ratio: half\n"
	                   "flag: True\n"
	                   "color: blue\n",
	                   values, 7);
	sm_error_list_done(&errs);
	check_table_errors("wait: 999ms\nu: -1\nname: a\n", bound, 2);
	check_table_errors("token: 10\n"
	                   "list: {a: b}\n"
	                   "custom: nope\n"
	                   "[a]: 1\n"
	                   "password: hunter2\n"
	                   "n: [1]\n"
	                   "name: ok\n",
	                   shapes, 6);
	check_table_errors("name: a\ntoken: hunter2\n", secret, 1);

	/* a duplicate key is reported and its value ignored */
	assert_int_equal(probe_parse("name: a\nname: b\n", &pr, &errs), -EINVAL);
	assert_string_equal(pr.name, "a");
	assert_int_equal(errs.n, 1);
	assert_string_equal(errs.items[0].message,
	                    "duplicate key \"name\" in the top-level mapping (first at line 1)");
	probe_done(&pr);
	sm_error_list_done(&errs);
}

static void test_accessors(void **state)
{
	(void)state;
	assert_false(sm_config_node_is_scalar(NULL));
	assert_false(sm_config_node_is_mapping(NULL));
	assert_false(sm_config_node_is_sequence(NULL));
	assert_null(sm_config_node_scalar(NULL));
	assert_int_equal(sm_config_node_length(NULL), 0);
	assert_int_equal(sm_config_node_mark(NULL).line, 0);
}

static void test_strv_done(void **state)
{
	struct sm_strv v = {0};

	(void)state;
	sm_strv_done(NULL);
	sm_strv_done(&v);
	v.v = calloc(3, sizeof(*v.v));
	assert_non_null(v.v);
	v.v[0] = strdup("a");
	v.v[1] = strdup("b");
	v.n = 2;
	sm_strv_done(&v);
	assert_null(v.v);
	assert_int_equal(v.n, 0);
}

/* Durations in messages: the largest unit that divides them. */
static void test_format_duration(void **state)
{
	static const struct {
		int64_t ms;
		const char *text;
	} durations[] = {
	    {0, "0ms"},    {1, "1ms"},       {1500, "1500ms"}, {1000, "1s"},      {90000, "90s"},
	    {60000, "1m"}, {5400000, "90m"}, {3600000, "1h"},  {86400000, "24h"}, {-2000, "-2s"},
	};
	char *s = strdup("");

	(void)state;
	for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
		char buf[32];

		sm_config_format_duration(durations[i].ms, buf, sizeof(buf));
		if (strcmp(buf, durations[i].text) != 0)
			fail_msg("%lld ms: '%s', expected '%s'", (long long)durations[i].ms, buf,
			         durations[i].text);
	}
	/* "" is unset for optional paths; anything else stays. */
	assert_non_null(s);
	sm_config_empty_to_null(&s);
	assert_null(s);
	sm_config_empty_to_null(&s);
	assert_null(s);
	s = strdup("x");
	assert_non_null(s);
	sm_config_empty_to_null(&s);
	assert_string_equal(s, "x");
	free(s);
}

static void test_url_redact(void **state)
{
	static const struct {
		const char *in, *out;
	} urls[] = {
	    {"http://u:pw@127.0.0.1:8000/metrics", "http://***@127.0.0.1:8000/metrics"},
	    {"https://token@h/x?a=b@c", "https://***@c"}, /* cut short: never too little */
	    {"http://scraper:p#ss@10.0.0.5:9090/m", "http://***@10.0.0.5:9090/m"},
	    {"http://scraper:p?ss@10.0.0.5:9090/m", "http://***@10.0.0.5:9090/m"},
	    {"scraper:pw@10.0.0.5/metrics", "***@10.0.0.5/metrics"}, /* no scheme */
	    {"http://u:pa/ss@h/m", "http://***@h/m"},    /* unescaped '/' in the password */
	    {"http://u:p@ss@h:1/m", "http://***@h:1/m"}, /* unescaped '@' */
	    {"postgresql://app:pw@[::1/db", "postgresql://***@[::1/db"},
	    {"http://127.0.0.1:8000/metrics", "http://127.0.0.1:8000/metrics"},
	    {"http://h/m#frag@x", "http://***@x"},
	    {"not a url @ all", "***@ all"},
	    {"", ""},
	};
	char buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		sm_config_url_redact(urls[i].in, buf, strlen(urls[i].in) + 4);
		if (strcmp(buf, urls[i].out) != 0)
			fail_msg("case %zu '%s': got '%s', want '%s'", i, urls[i].in, buf,
			         urls[i].out);
	}
	/* Cut to fit, never showing the password. */
	sm_config_url_redact("http://user:secretpw@h/m", buf, 12);
	assert_string_equal(buf, "http://***@");
	sm_config_url_redact("http://user:secretpw@h/m", buf, 5);
	assert_string_equal(buf, "http");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cases),           cmocka_unit_test(test_server_defaults),
	    cmocka_unit_test(test_server_values),   cmocka_unit_test(test_source_defaults),
	    cmocka_unit_test(test_source_values),   cmocka_unit_test(test_error_cap),
	    cmocka_unit_test(test_errors_appended), cmocka_unit_test(test_load_file),
	    cmocka_unit_test(test_example),         cmocka_unit_test(test_deep_nesting),
	    cmocka_unit_test(test_registry),        cmocka_unit_test(test_table_types),
	    cmocka_unit_test(test_table_errors),    cmocka_unit_test(test_accessors),
	    cmocka_unit_test(test_strv_done),       cmocka_unit_test(test_format_duration),
	    cmocka_unit_test(test_source_parser),   cmocka_unit_test(test_url_redact),
	};

	sm_config_set_source_parser(sm_source_config_parse);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
