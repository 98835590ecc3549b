/* SPDX-License-Identifier: MIT */
/* The scalemetrics command: `serve` runs the server until SIGTERM or SIGINT, `explain` shows
 * what an HPA makes of the server's metrics, `check` (`--probe`: and runs every source once)
 * validates a config file, `version` says which build this is. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/api.h"
#include "scalemetrics/config.h"
#include "scalemetrics/error.h"
#include "scalemetrics/explain.h"
#include "scalemetrics/history.h"
#include "scalemetrics/http.h"
#include "scalemetrics/log.h"
#include "scalemetrics/probe.h"
#include "scalemetrics/scheduler.h"
#include "scalemetrics/store.h"
#include "scalemetrics/telemetry.h"

#include "commit.h"

#define LOG_CTX "main"

#define EXIT_USAGE 2
/* The answer cache (api.h): one slot per distinct query an HPA fleet asks (each HPA metric
 * is one URL), bodies bounded to 2 MiB in all. */
#define ANSWER_CACHE_ENTRIES 4096
#define ANSWER_CACHE_BYTES   (2u << 20)

static void usage(FILE *f)
{
	(void)fputs(
	    "usage: scalemetrics serve --config FILE   run the metrics API server\n"
	    "       scalemetrics check --config FILE [--probe]\n"
	    "              validate a configuration file; --probe: run every source once\n"
	    "       scalemetrics explain --hpa FILE|- --server URL [--ca-file F|--insecure]\n"
	    "              [--current-replicas N] [--namespace NS] [--pod-selector SEL]\n"
	    "              what an HPA gets from the server and what it will do\n"
	    "       scalemetrics version               print the version\n"
	    "       scalemetrics --help                print this help\n",
	    f);
}

static const char *commit_or_unknown(void)
{
	return SM_GIT_COMMIT[0] ? SM_GIT_COMMIT : "unknown commit";
}

/* Parses "--config FILE", "--config=FILE" or "-c FILE" as the only arguments after the
 * subcommand (and, for check, "--probe"). Returns 0, 1 for --help, or -EINVAL after printing
 * why. */
static int parse_config_arg(int argc, char **argv, const char **ret_path, bool *ret_probe)
{
	const char *path = NULL;
	bool probe = false;

	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
			return 1;
		if (strcmp(a, "--probe") == 0 && strcmp(argv[1], "check") == 0) {
			probe = true;
		} else if (strcmp(a, "--config") == 0 || strcmp(a, "-c") == 0) {
			if (i + 1 >= argc) {
				(void)fprintf(stderr, "scalemetrics: %s needs a file name\n", a);
				return -EINVAL;
			}
			path = argv[++i];
		} else if (strncmp(a, "--config=", 9) == 0) {
			path = a + 9;
		} else {
			(void)fprintf(stderr, "scalemetrics %s: unexpected argument '%s'\n",
			              argv[1], a);
			return -EINVAL;
		}
	}
	if (!path || path[0] == '\0') {
		(void)fprintf(stderr, "scalemetrics %s: --config FILE is required\n", argv[1]);
		return -EINVAL;
	}
	*ret_path = path;
	*ret_probe = probe;
	return 0;
}

/* Loads the config, printing every error as file:line:col: message. */
static int load_config(const char *path, struct sm_config **ret)
{
	struct sm_error_list errs = {0};
	char buf[1024];
	int r;

	r = sm_config_load(path, ret, &errs);
	if (r < 0) {
		for (size_t i = 0; i < errs.n; i++) {
			sm_error_format(&errs.items[i], buf, sizeof(buf));
			(void)fprintf(stderr, "%s\n", buf);
		}
		if (errs.n == 0)
			(void)fprintf(stderr, "%s: %s\n", path, strerror(-r));
	}
	sm_error_list_done(&errs);
	return r;
}

static size_t count_metrics(const struct sm_config *cfg)
{
	size_t n = 0;

	for (size_t i = 0; i < cfg->n_sources; i++)
		n += cfg->sources[i].n_metrics;
	return n;
}

static int cmd_check(const char *path, bool probe)
{
	struct sm_config *cfg = NULL;
	int ret = EXIT_SUCCESS;

	if (load_config(path, &cfg) < 0)
		return EXIT_FAILURE;
	(void)printf("config OK: %zu source%s, %zu metric%s\n", cfg->n_sources,
	             cfg->n_sources == 1 ? "" : "s", count_metrics(cfg),
	             count_metrics(cfg) == 1 ? "" : "s");
	if (probe) {
		(void)fflush(stdout);
		if (sm_probe_run(cfg, stdout) != 0)
			ret = EXIT_FAILURE;
	}
	sm_config_free(cfg);
	return ret;
}

static void setup_logging(const struct sm_config *cfg)
{
	const char *ls = cfg->server.log_level ? cfg->server.log_level : "info";
	const char *fs = cfg->server.log_format ? cfg->server.log_format : "logfmt";
	enum sm_log_level level = sm_log_level_from_string(ls);
	enum sm_log_format format = sm_log_format_from_string(fs);

	sm_log_setup(level == SM_LOG_LEVEL_INVALID ? SM_LOG_INFO : level,
	             format == SM_LOG_FORMAT_INVALID ? SM_LOG_FORMAT_LOGFMT : format);
	/* config.c validates both; these only guard against a gap there. */
	if (level == SM_LOG_LEVEL_INVALID)
		sm_log_warn(LOG_CTX, "unknown log level '%s', using 'info'", ls);
	if (format == SM_LOG_FORMAT_INVALID)
		sm_log_warn(LOG_CTX, "unknown log format '%s', using 'logfmt'", fs);
}

static void warn_about_auth(const struct sm_config *cfg)
{
	switch (cfg->server.auth_mode) {
	case SM_AUTH_NONE:
		sm_log_warn(
		    LOG_CTX,
		    "AUTHENTICATION IS DISABLED (server.auth.mode: none): every client that "
		    "reaches this port can read every metric; use this for local runs only");
		break;
	case SM_AUTH_DELEGATED:
	default:
		sm_log_info(LOG_CTX,
		            "server.auth.mode is 'delegated': front-proxy and client certificates, "
		            "bearer tokens (TokenReview) and SubjectAccessReview for every request "
		            "but /healthz, /livez, /readyz");
		break;
	}
}

static const char *signal_name(int sig)
{
	switch (sig) {
	case SIGTERM:
		return "SIGTERM";
	case SIGINT:
		return "SIGINT";
	case SIGHUP:
		return "SIGHUP";
	default:
		return "signal";
	}
}

static int cmd_serve(const char *path)
{
	struct sm_config *cfg = NULL;
	struct sm_store *store = NULL;
	struct sm_history *history = NULL;
	struct sm_scheduler *sched = NULL;
	struct sm_http_server *http = NULL;
	struct sm_telemetry *telemetry = NULL;
	struct sm_api_cache *cache = NULL;
	struct sm_api_context api;
	struct sm_error err = {0};
	struct sigaction sa = {.sa_handler = SIG_IGN};
	sigset_t set;
	int sig = 0;
	int ret = EXIT_FAILURE;
	int r;

	/* Before any thread exists, so every thread inherits the mask and only sigwait() below
	 * sees these signals. */
	(void)sigemptyset(&set);
	(void)sigaddset(&set, SIGTERM);
	(void)sigaddset(&set, SIGINT);
	(void)sigaddset(&set, SIGHUP);
	r = pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (r != 0) {
		(void)fprintf(stderr, "scalemetrics: cannot block signals: %s\n", strerror(r));
		return EXIT_FAILURE;
	}
	/* A peer that closes a socket must cost an error return, never the process. */
	(void)sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGPIPE, &sa, NULL);

	/* Memory (bench/README.md, footprint): blocks of 128 KiB and more (snapshot arrays,
	 * string arenas, big answers) always come from mmap, so freeing them gives them back at
	 * once (glibc otherwise raises its threshold after the first such free and keeps them
	 * in the heap); and two malloc arenas rather than up to eight per core. At 10,000
	 * series this keeps 2.5 MiB fewer resident for no CPU (malloc_trim per round did the
	 * same for 50% more CPU per round). */
	(void)mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	(void)mallopt(M_ARENA_MAX, 2);
	if (load_config(path, &cfg) < 0)
		return EXIT_FAILURE;
	setup_logging(cfg);
	sm_log_info(LOG_CTX,
	            "scalemetrics %s (%s) starting with config '%s': %zu sources, %zu "
	            "metrics",
	            SM_VERSION, commit_or_unknown(), path, cfg->n_sources, count_metrics(cfg));
	warn_about_auth(cfg);

	store = sm_store_new(cfg);
	if (!store) {
		sm_log_error(LOG_CTX, "cannot create the metric store: out of memory");
		goto out;
	}
	/* The /status page's sparklines; set before the collectors start publishing. */
	history = sm_history_new(SM_HISTORY_DEFAULT_MAX_SERIES);
	if (!history) {
		sm_log_error(LOG_CTX, "cannot create the series history: out of memory");
		goto out;
	}
	sm_store_set_history(store, history);
	r = sm_scheduler_start(cfg, store, &sched);
	if (r < 0) {
		sm_log_error(LOG_CTX, "cannot start the collectors: %s", strerror(-r));
		goto out;
	}
	/* A failed allocation only means answers are built anew every time. */
	cache = sm_api_cache_new(ANSWER_CACHE_ENTRIES, ANSWER_CACHE_BYTES);
	telemetry = sm_telemetry_new();
	if (!telemetry) {
		sm_log_error(LOG_CTX, "cannot create the /metrics counters: out of memory");
		goto out;
	}
	api = (struct sm_api_context){
	    .store = store,
	    .history = history,
	    .telemetry = telemetry,
	    .cache = cache,
	    .version = SM_VERSION,
	    .git_commit = SM_GIT_COMMIT,
	};
	r = sm_http_server_start(cfg, &api, &http, &err);
	if (r < 0) {
		sm_log_error(LOG_CTX, "cannot start the HTTPS server: %s", err.message);
		goto out;
	}

	for (;;) {
		r = sigwait(&set, &sig);
		if (r != 0) {
			sm_log_error(LOG_CTX, "sigwait failed: %s, shutting down", strerror(r));
			break;
		}
		if (sig == SIGHUP) {
			sm_log_info(LOG_CTX,
			            "SIGHUP: configuration reload is not supported yet, "
			            "ignoring (certificate files are reloaded on their own)");
			continue;
		}
		sm_log_info(LOG_CTX, "%s received, draining requests and shutting down",
		            signal_name(sig));
		break;
	}
	ret = EXIT_SUCCESS;
out:
	sm_http_server_stop(http);
	sm_telemetry_free(telemetry);
	sm_scheduler_stop(sched);
	sm_api_cache_free(cache);
	sm_store_free(store);
	sm_history_free(history);
	if (ret == EXIT_SUCCESS)
		sm_log_info(LOG_CTX, "stopped");
	sm_config_free(cfg);
	return ret;
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	bool probe = false;
	int r;

	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return EXIT_SUCCESS;
	}
	if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
		if (argc > 2) {
			usage(stderr);
			return EXIT_USAGE;
		}
		(void)printf("scalemetrics %s (%s)\n", SM_VERSION, commit_or_unknown());
		return EXIT_SUCCESS;
	}
	if (strcmp(argv[1], "explain") == 0)
		return sm_explain_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "serve") == 0 || strcmp(argv[1], "check") == 0) {
		r = parse_config_arg(argc, argv, &path, &probe);
		if (r == 1) {
			usage(stdout);
			return EXIT_SUCCESS;
		}
		if (r < 0) {
			usage(stderr);
			return EXIT_USAGE;
		}
		return strcmp(argv[1], "serve") == 0 ? cmd_serve(path) : cmd_check(path, probe);
	}
	(void)fprintf(stderr, "scalemetrics: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
