/* SPDX-License-Identifier: MIT */
/* `scalemetrics explain`: what an HPA sees from this server and what it will do about it.
 * This file is the command line and the input stream; explain-internal.h says where the
 * rest is. */
#include "scalemetrics/explain.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "scalemetrics/error.h"
#include "scalemetrics/file.h"
#include "scalemetrics/number.h"

#include "explain-internal.h"

#define EXIT_OK     0
#define EXIT_FAILED 1
#define EXIT_USAGE  2

#define MAX_INPUT_BYTES    (4u << 20) /* an HPA document, or a List of them */
#define DEFAULT_TIMEOUT_MS 10000

static void usage(FILE *f)
{
	(void)fputs(
	    "usage: scalemetrics explain --hpa FILE.yaml|- --server URL [options]\n"
	    "  --hpa FILE|-            an autoscaling/v2 HorizontalPodAutoscaler (or `kubectl get "
	    "hpa X -o yaml`)\n"
	    "  --server URL            the scalemetrics server, e.g. https://127.0.0.1:6443\n"
	    "  --ca-file F             CA to verify the server with (the only one trusted)\n"
	    "  --insecure              do not verify the server's certificate\n"
	    "  --current-replicas N    default: the HPA's status.currentReplicas\n"
	    "  --namespace NS          default: the HPA's metadata.namespace\n"
	    "  --pod-selector SEL      the target's pod selector, for Pods metrics\n"
	    "  --token-file F          send 'Authorization: Bearer <contents>'\n"
	    "  --cert F --key F        client certificate\n"
	    "  --timeout DURATION      per request, default 10s\n",
	    f);
}

static int parse_args(int argc, char **argv, struct sm_explain_options *o)
{
	static const char *const with_value[] = {
	    "--hpa",       "--server",       "--ca-file",    "--current-replicas",
	    "--namespace", "--pod-selector", "--token-file", "--cert",
	    "--key",       "--timeout",
	};
	const char *val[sizeof(with_value) / sizeof(with_value[0])] = {0};
	int64_t v;

	*o = (struct sm_explain_options){.timeout_ms = DEFAULT_TIMEOUT_MS};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		size_t k, n = sizeof(with_value) / sizeof(with_value[0]);
		const char *eq;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
			return 1;
		if (strcmp(a, "--insecure") == 0) {
			o->insecure = true;
			continue;
		}
		eq = strchr(a, '=');
		for (k = 0; k < n; k++) {
			size_t l = strlen(with_value[k]);

			if (strncmp(a, with_value[k], l) == 0 && (a[l] == '\0' || a[l] == '='))
				break;
		}
		if (k == n) {
			(void)fprintf(stderr, "scalemetrics explain: unexpected argument '%s'\n",
			              a);
			return -EINVAL;
		}
		if (eq) {
			val[k] = eq + 1;
		} else if (i + 1 < argc) {
			val[k] = argv[++i];
		} else {
			(void)fprintf(stderr, "scalemetrics explain: %s needs a value\n", a);
			return -EINVAL;
		}
	}
	o->hpa_path = val[0];
	o->server = val[1];
	o->ca_file = val[2];
	o->namespace = val[4];
	o->pod_selector = val[5];
	o->token_file = val[6];
	o->cert_file = val[7];
	o->key_file = val[8];
	if (!o->hpa_path || !o->server) {
		(void)fprintf(stderr, "scalemetrics explain: --hpa and --server are required\n");
		return -EINVAL;
	}
	if (strncmp(o->server, "https://", 8) != 0 && strncmp(o->server, "http://", 7) != 0) {
		(void)fprintf(stderr, "scalemetrics explain: --server must be an https:// URL\n");
		return -EINVAL;
	}
	if (o->insecure && o->ca_file) {
		(void)fprintf(stderr, "scalemetrics explain: --ca-file and --insecure exclude each "
		                      "other\n");
		return -EINVAL;
	}
	if (!o->cert_file != !o->key_file) {
		(void)fprintf(stderr, "scalemetrics explain: --cert and --key go together\n");
		return -EINVAL;
	}
	if (val[3]) {
		if (sm_number_parse_int64(val[3], &v) < 0 || v < 0 || v > INT32_MAX) {
			(void)fprintf(stderr,
			              "scalemetrics explain: --current-replicas '%s' is not "
			              "a replica count\n",
			              val[3]);
			return -EINVAL;
		}
		o->has_current = true;
		o->current = (int32_t)v;
	}
	if (val[9] &&
	    (sm_number_parse_duration_ms(val[9], &o->timeout_ms) < 0 || o->timeout_ms <= 0)) {
		(void)fprintf(stderr,
		              "scalemetrics explain: --timeout '%s' is not a duration "
		              "such as 5s\n",
		              val[9]);
		return -EINVAL;
	}
	return 0;
}

/* Every HPA in one YAML document: the document itself, or the items of a List. Returns
 * EXIT_OK / EXIT_FAILED / EXIT_USAGE for this document. */
static int explain_document(struct sm_explain_client *c, const struct sm_explain_doc *d,
                            const struct sm_explain_options *o, size_t *n_hpas)
{
	size_t n = sm_explain_doc_count(d);
	int ret = EXIT_OK;

	for (size_t i = 0; i < n; i++) {
		struct sm_explain_hpa h;
		int r;

		r = sm_explain_doc_hpa(d, i, o, &h);
		if (r < 0) {
			sm_explain_hpa_done(&h);
			return EXIT_USAGE;
		}
		if (*n_hpas > 0)
			(void)printf("\n---\n");
		(*n_hpas)++;
		if (!sm_explain_hpa_report(c, &h))
			ret = EXIT_FAILED;
		sm_explain_hpa_done(&h);
	}
	return ret;
}

int sm_explain_main(int argc, char **argv)
{
	struct sm_explain_options o;
	struct sm_explain_client c = {0};
	struct sm_error err = {0};
	yaml_parser_t parser;
	bool parser_ok = false, curl_ok = false;
	char *input = NULL;
	size_t len = 0, n_hpas = 0;
	int ret = EXIT_USAGE, r;

	r = parse_args(argc, argv, &o);
	if (r == 1) {
		usage(stdout);
		return EXIT_OK;
	}
	if (r < 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	r = sm_file_read(strcmp(o.hpa_path, "-") == 0 ? "/dev/stdin" : o.hpa_path, MAX_INPUT_BYTES,
	                 0, &input, &len, NULL);
	if (r < 0) {
		(void)fprintf(stderr, "scalemetrics explain: cannot read '%s': %s\n",
		              strcmp(o.hpa_path, "-") == 0 ? "(stdin)" : o.hpa_path,
		              r == -EFBIG ? "larger than 4 MiB" : strerror(-r));
		goto out;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		(void)fprintf(stderr, "scalemetrics explain: cannot initialise libcurl\n");
		goto out;
	}
	curl_ok = true;
	r = sm_explain_client_init(&c, &o, &err);
	if (r < 0) {
		(void)fprintf(stderr, "scalemetrics explain: %s\n",
		              err.message[0] ? err.message : strerror(-r));
		goto out;
	}
	if (!yaml_parser_initialize(&parser))
		goto out;
	parser_ok = true;
	yaml_parser_set_input_string(&parser, (const unsigned char *)input, len);
	ret = EXIT_OK;
	for (;;) {
		yaml_document_t doc;
		struct sm_explain_doc d = {
		    .doc = &doc, .file = strcmp(o.hpa_path, "-") == 0 ? "(stdin)" : o.hpa_path};
		int dr;

		if (!yaml_parser_load(&parser, &doc)) {
			(void)fprintf(stderr, "%s:%zu:%zu: %s %s\n", d.file,
			              parser.problem_mark.line + 1, parser.problem_mark.column + 1,
			              parser.problem ? parser.problem : "invalid YAML",
			              parser.context ? parser.context : "");
			ret = EXIT_USAGE;
			break;
		}
		if (!yaml_document_get_root_node(&doc)) {
			yaml_document_delete(&doc);
			break;
		}
		dr = explain_document(&c, &d, &o, &n_hpas);
		yaml_document_delete(&doc);
		if (dr > ret)
			ret = dr;
		if (dr == EXIT_USAGE)
			break;
	}
	if (ret != EXIT_USAGE && n_hpas == 0) {
		(void)fprintf(stderr, "scalemetrics explain: no HorizontalPodAutoscaler in '%s'\n",
		              o.hpa_path);
		ret = EXIT_USAGE;
	}
out:
	if (parser_ok)
		yaml_parser_delete(&parser);
	sm_explain_client_done(&c);
	if (curl_ok)
		curl_global_cleanup();
	free(input);
	return ret;
}
