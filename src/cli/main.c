/* SPDX-License-Identifier: MIT */
/* The scalemetrics command: `serve` runs the server until SIGTERM or SIGINT, `explain` shows
 * what an HPA makes of the server's metrics, `check` (`--probe`: and runs every source once)
 * validates a config file, `version` says which build this is. */
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "scalemetrics/api.h"
#include "scalemetrics/clock.h"
#include "scalemetrics/config.h"
#include "scalemetrics/error.h"
#include "scalemetrics/explain.h"
#include "scalemetrics/history.h"
#include "scalemetrics/http.h"
#include "scalemetrics/log.h"
#include "scalemetrics/probe.h"
#include "scalemetrics/scheduler.h"
#include "scalemetrics/source.h"
#include "scalemetrics/store.h"
#include "scalemetrics/telemetry.h"

#include "commit.h"

#define LOG_CTX "main"

#define EXIT_USAGE 2
/* The answer cache (api.h): one slot per distinct query an HPA fleet asks (each HPA metric
 * is one URL), bodies bounded to 2 MiB in all. */
#define ANSWER_CACHE_ENTRIES 4096
#define ANSWER_CACHE_BYTES   (2u << 20)
/* A change of the config file is read once the directory has been quiet this long (an editor
 * or kubelet's ConfigMap update is several events), or at the latest this long after the
 * first event. */
#define RELOAD_QUIET_MS    300
#define RELOAD_MAX_WAIT_MS 2000
/* How many restart-only keys a reload names in its warning. */
#define MAX_RESTART_KEYS 32

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

/* Loads the config, printing every error as file:line:col: message. ret_text (may be NULL):
 * the bytes it was loaded from. */
static int load_config(const char *path, struct sm_config **ret, char **ret_text, size_t *ret_len)
{
	struct sm_error_list errs = {0};
	char *text = NULL;
	size_t len = 0;
	char buf[1024];
	int r;

	r = sm_config_read_file(path, &text, &len, &errs);
	if (r == 0)
		r = sm_config_load_string(path, text, len, ret, &errs);
	if (r == 0 && ret_text) {
		*ret_text = text;
		*ret_len = len;
		text = NULL;
	}
	free(text);
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

	if (load_config(path, &cfg, NULL, NULL) < 0)
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
	/* config-server.c validates both; these only guard against a gap there. */
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

/* ---- serving, and reloading the config ---- */

/* What `serve` runs, for the reload to swap. */
struct serve {
	const char *path;
	/* Every config loaded, the one in use last: kept until shutdown, since collectors that
	 * a reload keeps borrow from the config they were made with, and requests in flight
	 * and the HTTP server from theirs. configs[0] has the values that need a restart. */
	struct sm_config **configs;
	size_t n_configs;
	char *text; /* the bytes last applied or refused: a change that leaves them so is none */
	size_t text_len;
	struct sm_store *store; /* our reference to the store in use */
	struct sm_store_live *live;
	struct sm_history *history;
	struct sm_scheduler *sched;
	struct sm_telemetry *telemetry;
};

static const struct sm_config *running_config(const struct serve *sv)
{
	return sv->configs[sv->n_configs - 1];
}

static void reload_failed(struct serve *sv, const char *why)
{
	sm_log_error(LOG_CTX, "config reload failed: %s; the running config stays in use", why);
	sm_telemetry_config_reload(sv->telemetry, false, sm_time_wall_ms(), why);
}

/* Logs every error of a refused file (file:line:col: message), and returns the first as the
 * reason shown by /status. */
static void log_config_errors(const struct sm_error_list *errs, char *first, size_t len)
{
	char buf[1024];

	first[0] = '\0';
	for (size_t i = 0; i < errs->n; i++) {
		sm_error_format(&errs->items[i], buf, sizeof(buf));
		sm_log_error(LOG_CTX, "%s", buf);
		if (i == 0)
			(void)snprintf(first, len, "%s%s", buf,
			               errs->n > 1 ? " (and more errors, see the log)" : "");
	}
}

static void warn_restart_keys(const struct serve *sv, const struct sm_config *next)
{
	const char *keys[MAX_RESTART_KEYS];
	size_t n = sm_config_restart_keys(sv->configs[0], next, keys, MAX_RESTART_KEYS);
	char list[1024];
	size_t len = 0;

	if (n == 0)
		return;
	list[0] = '\0';
	for (size_t i = 0; i < n && i < MAX_RESTART_KEYS && len < sizeof(list); i++) {
		int w = snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "", keys[i]);

		len += w > 0 ? (size_t)w : 0;
	}
	sm_log_warn(LOG_CTX,
	            "config reload: %s changed; %s only at a restart, the running server "
	            "keeps the values it started with",
	            list, n == 1 ? "it takes effect" : "they take effect");
}

static void log_source_changes(const struct sm_config *old, const struct sm_config *next,
                               const size_t *from)
{
	for (size_t i = 0; i < next->n_sources; i++) {
		bool existed = false;

		if (from[i] != SIZE_MAX)
			continue;
		for (size_t j = 0; j < old->n_sources && !existed; j++)
			existed = strcmp(old->sources[j].name, next->sources[i].name) == 0;
		sm_log_info(next->sources[i].name, "%s",
		            existed ? "source changed: restarted with its new settings"
		                    : "source added");
	}
	for (size_t j = 0; j < old->n_sources; j++) {
		bool stays = false;

		for (size_t i = 0; i < next->n_sources && !stays; i++)
			stays = strcmp(old->sources[j].name, next->sources[i].name) == 0;
		if (!stays)
			sm_log_info(old->sources[j].name, "source removed");
	}
}

/* The file's bytes, kept to tell an unchanged file (*text taken). */
static void remember_text(struct serve *sv, char **text, size_t len)
{
	free(sv->text);
	sv->text = *text;
	sv->text_len = len;
	*text = NULL;
}

/* Reads the file and, when it is valid, switches to it: sources that did not change keep
 * running with their state, the others restart, the API answers from the new store at once.
 * forced (SIGHUP): even when the file's bytes are those already read. The bytes are
 * remembered only once applied or refused as invalid: a reload that failed otherwise (a
 * source whose setup failed, out of memory) is tried again at the next write of the same
 * bytes. */
static void reload(struct serve *sv, const char *why, bool forced)
{
	const struct sm_config *running = running_config(sv);
	struct sm_error_list errs = {0};
	struct sm_config *next = NULL;
	struct sm_store *store = NULL;
	struct sm_config **configs;
	size_t *from = NULL;
	char *text = NULL;
	size_t len = 0, kept;
	char reason[1024];
	int r;

	r = sm_config_read_file(sv->path, &text, &len, &errs);
	if (r < 0) {
		log_config_errors(&errs, reason, sizeof(reason));
		reload_failed(sv, reason[0] ? reason : strerror(-r));
		goto out;
	}
	if (!forced && len == sv->text_len && memcmp(text, sv->text, len) == 0) {
		sm_log_debug(LOG_CTX, "%s: the config file's contents are unchanged", why);
		goto out;
	}
	sm_log_info(LOG_CTX, "%s: reloading the config from '%s'", why, sv->path);

	r = sm_config_load_string(sv->path, text, len, &next, &errs);
	if (r < 0) {
		if (r != -ENOMEM)
			remember_text(sv, &text, len);
		log_config_errors(&errs, reason, sizeof(reason));
		reload_failed(sv, reason[0] ? reason : strerror(-r));
		goto out;
	}
	warn_restart_keys(sv, next);
	/* Everything in the process talks to one API server, with the credentials it started
	 * with (kubernetes.* needs a restart). */
	configs = realloc(sv->configs, (sv->n_configs + 1) * sizeof(*configs));
	from = calloc(next->n_sources ? next->n_sources : 1, sizeof(*from));
	if (configs)
		sv->configs = configs;
	if (!configs || !from || sm_config_keep_kubernetes(next, running) < 0) {
		reload_failed(sv, "out of memory");
		goto out;
	}
	kept = sm_config_match_sources(running, next, from);
	store = sm_store_new(next);
	if (!store) {
		reload_failed(sv, "out of memory");
		goto out;
	}
	sm_store_set_history(store, sv->history);
	r = sm_scheduler_reload(sv->sched, next, store, from);
	if (r < 0) {
		reload_failed(sv, r == -ENOMEM ? "out of memory"
		                               : "a source could not be set up (see above)");
		goto out;
	}
	/* From here on every request answers from the new store and config. */
	sm_store_live_replace(sv->live, store);
	sm_store_unref(sv->store);
	sv->store = store;
	store = NULL;
	log_source_changes(running, next, from);
	setup_logging(next);
	sm_log_info(LOG_CTX,
	            "config reloaded: %zu sources (%zu kept running, %zu started), %zu metrics",
	            next->n_sources, kept, next->n_sources - kept, count_metrics(next));
	sv->configs[sv->n_configs++] = next;
	next = NULL;
	remember_text(sv, &text, len);
	sm_telemetry_config_reload(sv->telemetry, true, sm_time_wall_ms(), NULL);
out:
	sm_store_unref(store);
	sm_config_free(next);
	free(from);
	free(text);
	sm_error_list_done(&errs);
}

/* The config file's directory, watched for any change (the file itself may be a symlink that
 * kubelet repoints, through `..data`, to a new directory for each ConfigMap update). Returns
 * the inotify descriptor, or -1 (then only SIGHUP reloads). */
static int watch_config_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[4096];
	int fd;

	if (!slash)
		(void)snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		(void)snprintf(dir, sizeof(dir), "/");
	else
		(void)snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0) {
		sm_log_warn(LOG_CTX, "cannot watch '%s' for changes: %s; send SIGHUP to reload",
		            dir, strerror(errno));
		return -1;
	}
	if (inotify_add_watch(fd, dir,
	                      IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
	                          IN_DELETE_SELF | IN_MOVE_SELF) < 0) {
		sm_log_warn(LOG_CTX, "cannot watch '%s' for changes: %s; send SIGHUP to reload",
		            dir, strerror(errno));
		(void)close(fd);
		return -1;
	}
	sm_log_info(LOG_CTX, "watching '%s' for changes of the config file", dir);
	return fd;
}

/* Empties the inotify queue; only "something happened" matters. */
static void drain_events(int fd)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

/* Until SIGTERM or SIGINT: SIGHUP reloads at once, a change in the config's directory once
 * it has settled. */
static void serve_loop(struct serve *sv, int sfd, int wfd)
{
	int64_t first_event = -1, last_event = -1;

	for (;;) {
		struct pollfd fds[2] = {{.fd = sfd, .events = POLLIN},
		                        {.fd = wfd, .events = POLLIN}};
		int timeout = -1;
		int n;

		if (first_event >= 0) {
			int64_t now = sm_time_mono_ms();
			int64_t at = last_event + RELOAD_QUIET_MS;

			if (at > first_event + RELOAD_MAX_WAIT_MS)
				at = first_event + RELOAD_MAX_WAIT_MS;
			if (at <= now) {
				first_event = last_event = -1;
				reload(sv, "config file changed", false);
				continue;
			}
			timeout = (int)(at - now);
		}
		n = poll(fds, wfd >= 0 ? 2 : 1, timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			sm_log_error(LOG_CTX, "poll failed: %s, shutting down", strerror(errno));
			return;
		}
		if (wfd >= 0 && (fds[1].revents & POLLIN)) {
			drain_events(wfd);
			last_event = sm_time_mono_ms();
			if (first_event < 0)
				first_event = last_event;
		}
		if (fds[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			ssize_t k = read(sfd, &si, sizeof(si));

			if (k != (ssize_t)sizeof(si))
				continue;
			if (si.ssi_signo == SIGHUP) {
				reload(sv, "SIGHUP", true);
				continue;
			}
			sm_log_info(LOG_CTX, "%s received, draining requests and shutting down",
			            signal_name((int)si.ssi_signo));
			return;
		}
	}
}

static int cmd_serve(const char *path)
{
	struct serve sv = {.path = path};
	struct sm_config *cfg = NULL;
	struct sm_http_server *http = NULL;
	struct sm_api_cache *cache = NULL;
	struct sm_api_context api;
	struct sm_error err = {0};
	struct sigaction sa = {.sa_handler = SIG_IGN};
	sigset_t set;
	int sfd = -1, wfd = -1;
	int ret = EXIT_FAILURE;
	int r;

	/* Before any thread exists, so every thread inherits the mask and only the signalfd
	 * below sees these signals. */
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

	/* Memory: blocks of 128 KiB and more (snapshot arrays, string arenas, big answers)
	 * always come from mmap, so freeing them gives them back at once (glibc otherwise
	 * raises its threshold after the first such free and keeps them in the heap); and two
	 * malloc arenas rather than up to eight per core. Cheaper than malloc_trim per round
	 * for the same effect; the figures are in bench/README.md, section 3 "Footprint". */
	(void)mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	(void)mallopt(M_ARENA_MAX, 2);
	if (load_config(path, &cfg, &sv.text, &sv.text_len) < 0)
		return EXIT_FAILURE;
	sv.configs = calloc(1, sizeof(*sv.configs));
	if (!sv.configs) {
		(void)fprintf(stderr, "scalemetrics: out of memory\n");
		sm_config_free(cfg);
		free(sv.text);
		return EXIT_FAILURE;
	}
	sv.configs[sv.n_configs++] = cfg;
	setup_logging(cfg);
	sm_log_info(LOG_CTX,
	            "scalemetrics %s (%s) starting with config '%s': %zu sources, %zu "
	            "metrics",
	            SM_VERSION, commit_or_unknown(), path, cfg->n_sources, count_metrics(cfg));
	warn_about_auth(cfg);

	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd < 0) {
		sm_log_error(LOG_CTX, "cannot create a signalfd: %s", strerror(errno));
		goto out;
	}
	sv.store = sm_store_new(cfg);
	if (!sv.store) {
		sm_log_error(LOG_CTX, "cannot create the metric store: out of memory");
		goto out;
	}
	/* The /status page's sparklines; set before the collectors start publishing. */
	sv.history = sm_history_new(SM_HISTORY_DEFAULT_MAX_SERIES);
	if (!sv.history) {
		sm_log_error(LOG_CTX, "cannot create the series history: out of memory");
		goto out;
	}
	sm_store_set_history(sv.store, sv.history);
	sv.live = sm_store_live_new(sv.store);
	if (!sv.live) {
		sm_log_error(LOG_CTX, "cannot create the metric store: out of memory");
		goto out;
	}
	r = sm_scheduler_start(cfg, sv.store, &sv.sched);
	if (r < 0) {
		sm_log_error(LOG_CTX, "cannot start the collectors: %s", strerror(-r));
		goto out;
	}
	/* A failed allocation only means answers are built anew every time. */
	cache = sm_api_cache_new(ANSWER_CACHE_ENTRIES, ANSWER_CACHE_BYTES);
	sv.telemetry = sm_telemetry_new();
	if (!sv.telemetry) {
		sm_log_error(LOG_CTX, "cannot create the /metrics counters: out of memory");
		goto out;
	}
	sm_telemetry_config_loaded(sv.telemetry, sm_time_wall_ms());
	api = (struct sm_api_context){
	    .live = sv.live,
	    .history = sv.history,
	    .telemetry = sv.telemetry,
	    .cache = cache,
	    .version = SM_VERSION,
	    .git_commit = SM_GIT_COMMIT,
	};
	r = sm_http_server_start(cfg, &api, &http, &err);
	if (r < 0) {
		sm_log_error(LOG_CTX, "cannot start the HTTPS server: %s", err.message);
		goto out;
	}
	wfd = watch_config_dir(path);

	serve_loop(&sv, sfd, wfd);
	ret = EXIT_SUCCESS;
out:
	sm_http_server_stop(http);
	sm_telemetry_free(sv.telemetry);
	sm_scheduler_stop(sv.sched);
	sm_api_cache_free(cache);
	sm_store_live_free(sv.live);
	sm_store_unref(sv.store);
	sm_history_free(sv.history);
	if (ret == EXIT_SUCCESS)
		sm_log_info(LOG_CTX, "stopped");
	for (size_t i = 0; i < sv.n_configs; i++)
		sm_config_free(sv.configs[i]);
	free(sv.configs);
	free(sv.text);
	if (wfd >= 0)
		(void)close(wfd);
	if (sfd >= 0)
		(void)close(sfd);
	return ret;
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	bool probe = false;
	int r;

	sm_config_set_source_parser(sm_source_config_parse);
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
