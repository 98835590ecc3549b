# SPDX-License-Identifier: MIT
"""No secret is ever logged (issue 9): every secret the program handles is a distinctive string
("s3cr3t-..."), the server runs at debug level in both log formats through the paths that
touch them, and no secret (nor its URL-encoded or Basic-auth base64 form) may appear in any
stdout or stderr, while the logs do hold the events those paths must log (so the test fails
when logging is silently off).

Paths: Redis AUTH (password_file, ACL username with password_env; right and wrong);
PostgreSQL DSNs (key/value and URI, from a file and from the environment; right, wrong,
unreachable, malformed) against a real PostgreSQL with scram-sha-256; PgBouncer's admin
console with md5 auth (right and wrong); scrape targets with user:password@ in the URL (right
and wrong) against a local endpoint that checks Basic auth; kubernetes.token_file (right, then
rotated to a wrong one); client bearer tokens (allowed, denied, invalid), Basic auth and
front-proxy request headers; config errors in a file full of inline secrets; `check --probe`;
`explain --token-file` and a --server URL with userinfo. Sentinel has no password key and
scrape sources no bearer/basic keys (only URL userinfo), so those are not exercised."""

import base64
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from urllib.parse import quote

import pytest

from kube_standin import KubeStandin
from pgfixtures import PG_BIN, PgBouncer, Postgres
from smtest import (CLEAN_ENV, EXTERNAL, SLOW, RedisServer, Server, free_port,
                    server_config, to_yaml, wait_until)

pytestmark = pytest.mark.skipif(
    not shutil.which("redis-server") or not shutil.which(f"{PG_BIN}/initdb")
    or not shutil.which("pgbouncer"),
    reason="redis-server, PostgreSQL 15 or pgbouncer is not installed")

psycopg2 = pytest.importorskip("psycopg2")

# Every secret has the marker, so any fragment of one is caught too.
MARKER = "s3cr3t"
REDIS_PW = "s3cr3t-redis-DEFAULT+/x"
REDIS_PW_WRONG = "s3cr3t-redis-WRONG"
REDIS_ACL_USER = "queue-reader"
REDIS_ACL_PW = "s3cr3t-redis-ACL"
REDIS_ACL_PW_WRONG = "s3cr3t-redis-ACLWRONG"
PG_USER = "app"
PG_PW = "s3cr3t-pg-RIGHT/+@:x"
PG_PW_WRONG = "s3cr3t-pg-WRONG"
PG_PW_URI_WRONG = "s3cr3t-pg-URIWRONG"
PG_PW_UNREACHABLE = "s3cr3t-pg-UNREACHABLE"
PG_PW_BAD_URI = "s3cr3t-pg-BADURI"
PG_PW_BAD_PERCENT = "s3cr3t-pg-BAD%zzPCT"
BOUNCER_PW = "s3cr3t-bouncer-RIGHT"
BOUNCER_PW_WRONG = "s3cr3t-bouncer-WRONG"
SCRAPE_USER = "scraper"
SCRAPE_PW = "s3cr3t-scrape-RIGHT/x"
SCRAPE_PW_WRONG = "s3cr3t-scrape-WRONG"
KUBE_TOKEN = "s3cr3t-kube-SA-TOKEN"
KUBE_TOKEN_WRONG = "s3cr3t-kube-SA-ROTATED-WRONG"
TOKEN_ALLOWED = "s3cr3t-client-ALLOWED"
TOKEN_DENIED = "s3cr3t-client-DENIED"
TOKEN_INVALID = "s3cr3t-client-INVALID"
TOKEN_PROXIED = "s3cr3t-client-PROXIED"
TOKEN_ROTATION = "s3cr3t-client-DURING-ROTATION"
BASIC_USER = "eve"
BASIC_PW = "s3cr3t-client-BASIC"
EXPLAIN_URL_PW = "s3cr3t-explain-URL"
KUBE_URL_PW = "s3cr3t-kube-URL-PW"

ALL_SECRETS = [v for k, v in dict(globals()).items()
               if isinstance(v, str) and v.startswith(MARKER)]
BASIC_PAIRS = [(SCRAPE_USER, SCRAPE_PW), (SCRAPE_USER, SCRAPE_PW_WRONG), (BASIC_USER, BASIC_PW),
               (REDIS_ACL_USER, REDIS_ACL_PW), (PG_USER, PG_PW)]


def forbidden_forms():
    """Each secret, its URL-encoded forms, its base64, and base64("user:password")."""
    forms = set()
    for s in ALL_SECRETS:
        forms |= {s, quote(s, safe=""), quote(s), base64.b64encode(s.encode()).decode()}
    for user, pw in BASIC_PAIRS:
        forms.add(base64.b64encode(f"{user}:{pw}".encode()).decode())
        forms.add(base64.b64encode(f"{user}:{quote(pw, safe='')}".encode()).decode())
    return sorted(f for f in forms if len(f) >= 5)


FORBIDDEN = forbidden_forms()


def assert_no_secret(text, where):
    assert MARKER not in text.lower(), f"a secret leaked in {where}:\n{text}"
    for f in FORBIDDEN:
        assert f not in text, f"secret form {f!r} leaked in {where}:\n{text}"


# ---------------------------------------------------------------------------------------------
# log lines

LOGFMT = re.compile(r'^ts=\S+ level=(\w+)(?: ctx=("(?:[^"\\]|\\.)*"|\S+))? '
                    r'msg=("(?:[^"\\]|\\.)*")((?: [a-z_]+=(?:"(?:[^"\\]|\\.)*"|[^ "]+))*)$')


def parse_log(text, fmt):
    """[(level, ctx, msg)] from every stderr line; each line must be in the format. Fields after
    msg (the access log's) are appended to msg as they appear in logfmt: ' key=value'."""
    events = []
    for line in text.splitlines():
        if fmt == "json":
            doc = json.loads(line)
            assert list(doc)[:2] == ["ts", "level"] and "msg" in doc, line
            fields = "".join(
                f" {k}=" + (",".join(v) if isinstance(v, list) else str(v))
                for k, v in doc.items() if k not in ("ts", "level", "ctx", "msg"))
            events.append((doc["level"], doc.get("ctx"), doc["msg"] + fields))
        else:
            m = LOGFMT.match(line)
            assert m, f"not a logfmt line: {line!r}"
            ctx = m.group(2)
            if ctx and ctx.startswith('"'):
                ctx = json.loads(ctx)
            events.append((m.group(1), ctx, json.loads(m.group(3)) + m.group(4)))
    return events


def find_event(events, ctx, *needles, level=None):
    for lv, c, msg in events:
        if c == ctx and all(n in msg for n in needles) and (level is None or lv == level):
            return msg
    return None


# ---------------------------------------------------------------------------------------------
# fixtures: Redis with passwords, PostgreSQL with scram, PgBouncer with md5, a Basic-auth
# scrape endpoint, the Kubernetes stand-in that wants the service-account token


@pytest.fixture(scope="module")
def redis_pw(tmp_root):
    r = RedisServer(tempfile.mkdtemp(prefix="redis-secret-", dir=tmp_root)).start()
    c = r.client()
    c.execute_command("ACL", "SETUSER", REDIS_ACL_USER, "on", f">{REDIS_ACL_PW}", "~*",
                      "+@all")
    c.rpush("queue:emails", *range(4))
    c.execute_command("CONFIG", "SET", "requirepass", REDIS_PW)
    yield r
    r.stop()


@pytest.fixture(scope="module")
def pg():
    p = Postgres()
    hba = Path(p.data) / "pg_hba.conf"
    hba.write_text(f"host all {PG_USER} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    p.start()
    p.sql(f"CREATE ROLE {PG_USER} LOGIN PASSWORD '{PG_PW}'")
    yield p
    p.cleanup()


@pytest.fixture(scope="module")
def bouncer(pg):
    b = PgBouncer(pg)
    md5 = hashlib.md5((BOUNCER_PW + "postgres").encode()).hexdigest()
    Path(b.userlist).write_text(f'"postgres" "md5{md5}"\n')
    ini = Path(b.ini)
    ini.write_text(ini.read_text().replace("auth_type = trust", "auth_type = md5"))
    b.start()
    yield b
    b.stop()


class _ScrapeHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        good = "Basic " + base64.b64encode(f"{SCRAPE_USER}:{SCRAPE_PW}".encode()).decode()
        if self.headers.get("Authorization") == good:
            code, body = 200, b"# TYPE inflight gauge\ninflight 3\n"
        else:
            code, body = 401, b"Unauthorized\n"
            self.server.refused += 1
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        if code == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="metrics"')
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def scrape_endpoint():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ScrapeHandler)
    httpd.daemon_threads = True
    httpd.refused = 0
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def kube():
    k = KubeStandin(token=KUBE_TOKEN).start()
    k.tokens = {TOKEN_ALLOWED: {"username": "alice", "uid": "1", "groups": ["devs"]},
                TOKEN_DENIED: {"username": "bob", "uid": "2", "groups": ["others"]}}
    k.sar_rules = [{"user": "alice", "allowed": True},
                   {"user": "carol", "allowed": True},
                   {"user": "bob", "denied": True, "reason": "bob may not read metrics"}]
    yield k
    k.stop()


@pytest.fixture(scope="module")
def secrets_dir(tmp_root):
    d = Path(tempfile.mkdtemp(prefix="secrets-", dir=tmp_root))
    return d


def write(d, name, text):
    p = d / name
    p.write_text(text + "\n")
    return str(p)


def pg_kv(pg, pw, port=None, dbname="postgres", user=PG_USER):
    return (f"host=127.0.0.1 port={port or pg.port} dbname={dbname} user={user} "
            f"password='{pw}' connect_timeout=2")


def sources(d, redis, pg, bouncer, scrape_port, dead_port):
    """Every source that handles a secret; returns (sources, env for the secrets in env)."""
    env = {"SM_TEST_REDIS_ACL_OK": REDIS_ACL_PW,
           "SM_TEST_REDIS_ACL_BAD": REDIS_ACL_PW_WRONG,
           "SM_TEST_PG_URI_OK": f"postgresql://{PG_USER}:{quote(PG_PW, safe='')}@127.0.0.1:"
                                f"{pg.port}/postgres?connect_timeout=2",
           "SM_TEST_PG_URI_BAD": f"postgresql://{PG_USER}:{PG_PW_URI_WRONG}@127.0.0.1:"
                                 f"{pg.port}/postgres"}
    timing = {"interval": "1s", "timeout": "1s", "max_age": "5s"}

    def redis_src(name, metric, **auth):
        return dict({"name": name, "type": "redis", "address": redis.address,
                     "queues": [{"metric": metric, "keys": ["queue:*"]}]}, **timing, **auth)

    def pg_src(name, metric, **dsn):
        return dict({"name": name, "type": "postgresql", "builtin": False,
                     "queries": [{"metric": metric, "sql": "SELECT 1"}]}, **timing, **dsn)

    def scrape_src(name, metric, pw):
        url = f"http://{SCRAPE_USER}:{quote(pw, safe='')}@127.0.0.1:{scrape_port}/metrics"
        return dict({"name": name, "type": "scrape", "targets": [url],
                     "gauges": [{"metric": metric, "gauge": "inflight"}]}, **timing)

    srcs = [
        redis_src("redis-ok", "redis_ok_queue_length",
                  password_file=write(d, "redis-pw", REDIS_PW)),
        redis_src("redis-wrong", "redis_wrong_queue_length",
                  password_file=write(d, "redis-pw-wrong", REDIS_PW_WRONG)),
        redis_src("redis-acl-ok", "redis_acl_ok_queue_length", username=REDIS_ACL_USER,
                  password_env="SM_TEST_REDIS_ACL_OK"),
        redis_src("redis-acl-wrong", "redis_acl_wrong_queue_length", username=REDIS_ACL_USER,
                  password_env="SM_TEST_REDIS_ACL_BAD"),
        pg_src("pg-ok", "pg_ok_one", dsn_file=write(d, "pg-ok", pg_kv(pg, PG_PW))),
        pg_src("pg-wrong", "pg_wrong_one", dsn_file=write(d, "pg-wrong", pg_kv(pg, PG_PW_WRONG))),
        pg_src("pg-uri-ok", "pg_uri_ok_one", dsn_env="SM_TEST_PG_URI_OK"),
        pg_src("pg-uri-wrong", "pg_uri_wrong_one", dsn_env="SM_TEST_PG_URI_BAD"),
        pg_src("pg-unreachable", "pg_unreachable_one",
               dsn_file=write(d, "pg-dead", pg_kv(pg, PG_PW_UNREACHABLE, port=dead_port))),
        pg_src("pg-bad-uri", "pg_bad_uri_one", dsn_file=write(
            d, "pg-bad-uri", f"postgresql://{PG_USER}:{PG_PW_BAD_URI}@[::1/postgres")),
        pg_src("pg-bad-percent", "pg_bad_percent_one", dsn_file=write(
            d, "pg-bad-pct", f"postgresql://{PG_USER}:{PG_PW_BAD_PERCENT}@127.0.0.1/postgres")),
        scrape_src("scrape-ok", "scrape_ok_inflight", SCRAPE_PW),
        scrape_src("scrape-wrong", "scrape_wrong_inflight", SCRAPE_PW_WRONG),
    ]
    return srcs, env


def bouncer_source(d, bouncer, name, pw):
    """PgBouncer sources serve fixed metric names: one per config, right or wrong."""
    return {"name": name, "type": "pgbouncer", "interval": "1s", "timeout": "1s",
            "dsn_file": write(d, name, f"{bouncer.admin_dsn()} password={pw}")}


# Failure events every run must log: (source, substrings of the message). The verbatim errors
# of Redis, PostgreSQL, PgBouncer and the HTTP status of the scrape.
EXPECTED_FAILURES = [
    ("redis-wrong", ["AUTH: WRONGPASS invalid username-password pair"]),
    ("redis-acl-wrong", ["AUTH: WRONGPASS invalid username-password pair"]),
    ("pg-wrong", [f'password authentication failed for user "{PG_USER}"']),
    ("pg-uri-wrong", [f'password authentication failed for user "{PG_USER}"']),
    ("pg-unreachable", ["Connection refused"]),
    ("pg-bad-uri", ["invalid DSN: end of string reached", 'in URI: "postgresql://***@[::1/']),
    ("pg-bad-percent", ['invalid DSN: invalid percent-encoded token: "***"']),
    ("bouncer-wrong", ["FATAL:  password authentication failed"]),
    ("scrape-wrong", ["HTTP status 401", "127.0.0.1"]),
]


# ---------------------------------------------------------------------------------------------
# the server


class EnvServer(Server):
    """smtest.Server, started with extra environment variables (password_env, dsn_env)."""

    def __init__(self, *a, env=None, **kw):
        super().__init__(*a, **kw)
        self.env = dict(CLEAN_ENV, **(env or {}))

    def start(self, wait=True):
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self.log = os.fdopen(fd, "ab")
        self.proc = subprocess.Popen([str(self.binary), "serve", "--config",
                                      str(self.config_path)],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                     env=self.env, cwd=self.dir)
        if wait:
            wait_until(self._ready, 15, interval=0.1, what="/readyz")
        return self


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def explain(binary, port, certs, tmp, token=None, server=None):
    hpa = tmp / "hpa.yaml"
    hpa.write_text("""apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: worker, namespace: default}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: worker}
  minReplicas: 1
  maxReplicas: 10
  metrics:
    - type: External
      external:
        metric: {name: redis_ok_queue_length}
        target: {type: AverageValue, averageValue: "2"}
status: {currentReplicas: 1, desiredReplicas: 1}
""")
    cmd = [str(binary), "explain", "--hpa", str(hpa), "--ca-file", str(certs["ca"]),
           "--server", server or f"https://127.0.0.1:{port}", "--timeout", "5s"]
    if token:
        cmd += ["--token-file", write(tmp, "explain-token", token)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30 * SLOW, env=CLEAN_ENV,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_serve_logs_no_secret(fmt, tmp_root, certs, binary, redis_pw, pg, bouncer,
                              scrape_endpoint, kube, secrets_dir):
    d = Path(tempfile.mkdtemp(prefix=f"secret-serve-{fmt}-", dir=tmp_root))
    srcs, env = sources(secrets_dir, redis_pw, pg, bouncer, scrape_endpoint.server_address[1],
                        free_port())
    srcs.append(bouncer_source(secrets_dir, bouncer, "bouncer-wrong", BOUNCER_PW_WRONG))
    token_file = Path(write(d, "sa-token", KUBE_TOKEN))
    port = free_port()
    # Everything that can be logged is: debug level and the access log.
    cfg = server_config(port, certs, srcs, log_level="debug", log_format=fmt, access_log=True)
    cfg["server"]["auth"] = {
        "mode": "delegated", "cache_ttl": "0s",
        "requestheader_client_ca_file": str(certs["front_proxy_ca"]),
        "requestheader_allowed_names": ["front-proxy-client"],
        "client_ca_file": str(certs["ca"])}
    cfg["kubernetes"] = {"server": kube.url, "token_file": str(token_file)}
    s = EnvServer(d, cfg, port, certs, binary, env=env)
    s.start()
    explain_out = []
    try:
        # Successes: every right secret works (so the wrong ones fail for the secret alone).
        for metric in ("redis_ok_queue_length", "redis_acl_ok_queue_length", "pg_ok_one",
                       "pg_uri_ok_one", "scrape_ok_inflight"):
            def served(metric=metric):
                r = s.get(f"{EXTERNAL}/namespaces/default/{metric}",
                          headers=bearer(TOKEN_ALLOWED))
                return r.status == 200 and r.json()["items"]
            wait_until(served, 10, what=f"{metric} served")
        assert s.get(f"{EXTERNAL}/namespaces/default/redis_ok_queue_length",
                     headers=bearer(TOKEN_ALLOWED)).json()["items"][0]["value"] == "4"

        def not_logged():
            events = parse_log(s.log_path.read_text(), fmt)
            return [src for src, needles in EXPECTED_FAILURES
                    if not find_event(events, src, *needles)]
        try:
            wait_until(lambda: not not_logged(), 10, what="every source's failure logged")
        except AssertionError:
            raise AssertionError(f"not logged: {not_logged()}\n{s.log_path.read_text()}")

        # The failing sources' 503 Status documents carry the same errors, as clients see them.
        for metric, src in (("scrape_wrong_inflight", "scrape-wrong"),
                            ("pg_bad_uri_one", "pg-bad-uri"),
                            ("pg_bad_percent_one", "pg-bad-percent"),
                            ("redis_wrong_queue_length", "redis-wrong")):
            r = s.get(f"{EXTERNAL}/namespaces/default/{metric}", headers=bearer(TOKEN_ALLOWED))
            assert r.status == 503 and src in r.json()["message"], r
            assert_no_secret(r.body.decode(), f"the 503 for {metric}")

        path = f"{EXTERNAL}/namespaces/default/redis_ok_queue_length"
        assert s.get(path, headers=bearer(TOKEN_DENIED)).status == 403
        assert s.get(path, headers=bearer(TOKEN_INVALID)).status == 401
        basic = base64.b64encode(f"{BASIC_USER}:{BASIC_PW}".encode()).decode()
        assert s.get(path, headers={"Authorization": f"Basic {basic}"}).status == 403
        proxied = s.get(path, cert=(certs["front_proxy_cert"], certs["front_proxy_key"]),
                        headers={"X-Remote-User": "carol", "X-Remote-Group": "devs",
                                 "Authorization": f"Bearer {TOKEN_PROXIED}"})
        assert proxied.status == 200, proxied
        assert s.get(path, cert=(certs["client_cert"], certs["client_key"]),
                     headers={"Authorization": f"Basic {basic}"}).status == 403

        # explain with a token file (accepted, then refused), and a --server URL with userinfo.
        ok = explain(binary, port, certs, d, token=TOKEN_ALLOWED)
        assert ok.returncode == 0, ok
        assert "redis_ok_queue_length" in ok.stdout, ok
        refused = explain(binary, port, certs, d, token=TOKEN_INVALID)
        assert refused.returncode != 0, refused
        assert "401" in refused.stdout + refused.stderr, refused
        userinfo = explain(binary, port, certs, d, token=TOKEN_ALLOWED,
                           server=f"https://viewer:{EXPLAIN_URL_PW}@127.0.0.1:{port}")
        assert "GET /apis/external.metrics.k8s.io/v1beta1/namespaces/default/" \
            "redis_ok_queue_length" in userinfo.stdout, userinfo
        explain_out += [ok, refused, userinfo]

        # The service-account token rotates to one the API server refuses, then back.
        token_file.write_text(KUBE_TOKEN_WRONG + "\n")
        assert s.get(path, headers=bearer(TOKEN_ROTATION)).status == 401
        token_file.write_text(KUBE_TOKEN + "\n")
        assert s.get(path, headers=bearer(TOKEN_ALLOWED)).status == 200
    finally:
        rc = s.stop()
    log = s.log_path.read_text()
    assert rc == 0, log
    for p in explain_out:
        assert_no_secret(p.stdout, f"explain stdout {p.args}")
        assert_no_secret(p.stderr, f"explain stderr {p.args}")
    assert_no_secret(log, f"the server log ({fmt})")

    # The logs hold the events of every path above.
    events = parse_log(log, fmt)
    assert len({lv for lv, _, _ in events} & {"debug", "info", "warn"}) == 3, log
    for src, needles in EXPECTED_FAILURES:
        assert find_event(events, src, "round failed", *needles, level="warn"), (src, log)
    scrape = find_event(events, "scrape-wrong", "HTTP status 401")
    assert f"127.0.0.1:{scrape_endpoint.server_address[1]}/metrics" in scrape, scrape
    # The access log: refusals with their reason, the identities (never a credential).
    assert find_event(events, "http", "request", "status=401", "auth=token",
                      "token not authenticated: invalid bearer token"), log
    assert find_event(events, "http", "request", "status=403", "user=bob",
                      "bob may not read"), log
    assert find_event(events, "http", "request", "status=403", "user=system:anonymous"), log
    assert find_event(events, "http", "request", "status=403", "auth=client-cert",
                      "user=scalemetrics-test-user"), log
    assert find_event(events, "http", "request", "status=200", "auth=front-proxy",
                      "user=carol"), log
    assert find_event(events, "auth", "cannot check a bearer token",
                      "the API server answered the TokenReview with 401", level="warn"), log
    assert find_event(events, "http", "request", "method=GET",
                      "path=/apis/external.metrics.k8s.io", "status=200"), log
    # The stand-in did receive the secrets (they were in use, not missing).
    assert any(a == f"Bearer {KUBE_TOKEN}" for _, _, a in kube.requests)
    assert any(a == f"Bearer {KUBE_TOKEN_WRONG}" for _, _, a in kube.requests)
    assert scrape_endpoint.refused > 0


def test_kube_server_url_userinfo_not_logged(tmp_root, certs, binary):
    """kubernetes.server with user:password@ (libcurl would send it as Basic auth): the
    TokenReview and the scrape collector's pod listing fail to connect, and say where without
    the password."""
    d = Path(tempfile.mkdtemp(prefix="secret-kubeurl-", dir=tmp_root))
    dead = free_port()
    port = free_port()
    scrape = {"name": "pods-web", "type": "scrape", "interval": "1s", "timeout": "500ms",
              "pods": {"namespace": "default", "selector": "app=web", "port": 8000},
              "gauges": [{"metric": "web_inflight", "gauge": "inflight"}]}
    cfg = server_config(port, certs, [scrape], log_level="debug", log_format="json")
    cfg["server"]["auth"] = {
        "mode": "delegated", "cache_ttl": "0s",
        "requestheader_client_ca_file": str(certs["front_proxy_ca"]),
        "requestheader_allowed_names": ["front-proxy-client"],
        "client_ca_file": str(certs["ca"])}
    cfg["kubernetes"] = {"server": f"http://kubeuser:{KUBE_URL_PW}@127.0.0.1:{dead}"}
    s = EnvServer(d, cfg, port, certs, binary)
    s.start()
    try:
        r = s.get(f"{EXTERNAL}/namespaces/default/web_inflight", headers=bearer(TOKEN_ALLOWED))
        assert r.status == 401, r

        def logged():
            events = parse_log(s.log_path.read_text(), "json")
            return find_event(events, "pods-web", "round failed", "GET http://***@127.0.0.1:")
        wait_until(logged, 10, what="the pod listing failure logged")
    finally:
        rc = s.stop()
    log = s.log_path.read_text()
    assert rc == 0, log
    assert_no_secret(log, "the server log (kubernetes.server with userinfo)")
    events = parse_log(log, "json")
    assert find_event(events, "auth", "cannot check a bearer token",
                      f"POST http://***@127.0.0.1:{dead}/apis/authentication.k8s.io"), log


def test_check_probe_prints_no_secret(tmp_root, certs, binary, redis_pw, pg, bouncer,
                                      scrape_endpoint, secrets_dir):
    d = Path(tempfile.mkdtemp(prefix="secret-probe-", dir=tmp_root))
    srcs, env = sources(secrets_dir, redis_pw, pg, bouncer, scrape_endpoint.server_address[1],
                        free_port())
    srcs.append(bouncer_source(secrets_dir, bouncer, "bouncer-ok", BOUNCER_PW))
    path = d / "config.yaml"
    path.write_text(to_yaml(server_config(free_port(), certs, srcs, log_level="debug")) + "\n")
    p = subprocess.run([str(binary), "check", "--config", str(path), "--probe"],
                       capture_output=True, text=True, timeout=60 * SLOW,
                       env=dict(CLEAN_ENV, **env), stdin=subprocess.DEVNULL)
    assert_no_secret(p.stdout, "check --probe stdout")
    assert_no_secret(p.stderr, "check --probe stderr")
    assert p.returncode == 1, p
    rows = {}
    for line in p.stdout.splitlines():
        m = re.match(r"^([a-z0-9-]+)\s+(redis|postgresql|pgbouncer|scrape)\s+(.*)$", line)
        if m:
            rows[m.group(1)] = m.group(3)
    for name in ("redis-ok", "redis-acl-ok", "pg-ok", "pg-uri-ok", "bouncer-ok", "scrape-ok"):
        assert rows[name].startswith("ok"), (name, p.stdout)
    for name, needles in EXPECTED_FAILURES:
        if name == "bouncer-wrong":
            continue
        assert rows[name].startswith("FAILED: "), (name, p.stdout)
        # The table cuts long cells: the start of the verbatim error is enough.
        assert needles[0][:30] in rows[name], (name, p.stdout)


CONFIG_WITH_SECRETS = """\
server:
  listen: "127.0.0.1:{port}"
  tls: {{cert_file: "{cert}", key_file: "{key}"}}
  auth: {{mode: none}}
  password: "s3cr3t-cfg-SERVER"
kubernetes:
  server: "ftp://kube:s3cr3t-cfg-KUBEURL@127.0.0.1:1"
  token: "s3cr3t-cfg-KUBETOKEN"
sources:
  - name: jobs
    type: redis
    password: "s3cr3t-cfg-REDIS"
    queues: [{{metric: q_len, keys: ["queue:*"]}}]
  - name: db
    type: postgresql
    dsn: "postgresql://app:s3cr3t-cfg-DSN@127.0.0.1/app"
    builtin: true
  - name: web
    type: scrape
    targets: ["ftp://scraper:s3cr3t-cfg-SCRAPE@127.0.0.1/metrics",
              "http://scraper:s3cr3t-cfg-SCRAPEOK@127.0.0.1:1/metrics"]
    token: "s3cr3t-cfg-SCRAPETOKEN"
    gauges: [{{metric: web_inflight, gauge: inflight}}]
"""

# (line, column, substring) of the errors the file above must produce.
CONFIG_ERRORS = [
    (5, 3, 'unknown key "password" in server'),
    (7, 11, "invalid server"),
    (8, 3, 'unknown key "token" in kubernetes'),
    (12, 5, 'unknown key "password" in source \'jobs\' (secrets are given by password_file or '
     'password_env)'),
    (16, 5, 'unknown key "dsn" in source \'db\' (secrets are given by dsn_file or dsn_env)'),
    (None, None, "expected an http:// or https:// URL"),
    (22, 5, 'unknown key "token" in source \'web\''),
]


def run_check(binary, path):
    return subprocess.run([str(binary), "check", "--config", str(path)], capture_output=True,
                          text=True, timeout=30 * SLOW, env=CLEAN_ENV, stdin=subprocess.DEVNULL)


def test_config_errors_do_not_echo_secrets(tmp_root, certs, binary):
    d = Path(tempfile.mkdtemp(prefix="secret-config-", dir=tmp_root))
    path = d / "config.yaml"
    path.write_text(CONFIG_WITH_SECRETS.format(port=free_port(), cert=certs["cert"],
                                               key=certs["key"]))
    p = run_check(binary, path)
    assert_no_secret(p.stdout, "check stdout")
    assert_no_secret(p.stderr, "check stderr")
    assert p.returncode == 1, p
    lines = p.stderr.splitlines()
    for line in lines:
        assert re.match(rf"^{re.escape(str(path))}:\d+:\d+: ", line), lines
    for ln, col, text in CONFIG_ERRORS:
        prefix = f"{path}:{ln}:{col}: " if ln else f"{path}:"
        assert any(line.startswith(prefix) and text in line for line in lines), (ln, text, lines)

    # A YAML syntax error on a line that holds a secret.
    bad = d / "syntax.yaml"
    bad.write_text('sources:\n  - name: jobs\n    password: "s3cr3t-cfg-YAML\n')
    p = run_check(binary, bad)
    assert_no_secret(p.stdout + p.stderr, "check of a YAML syntax error")
    assert p.returncode == 1, p
    assert re.match(rf"^{re.escape(str(bad))}:\d+:\d+: ", p.stderr), p.stderr

    # serve of the same file: config errors, then exit; nothing starts, nothing leaks.
    p = subprocess.run([str(binary), "serve", "--config", str(path)], capture_output=True,
                       text=True, timeout=30 * SLOW, env=CLEAN_ENV, stdin=subprocess.DEVNULL)
    assert p.returncode == 1, p
    assert_no_secret(p.stdout + p.stderr, "serve with a bad config")
    assert 'unknown key "dsn"' in p.stderr, p.stderr
