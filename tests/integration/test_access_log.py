# SPDX-License-Identifier: MIT
"""The access log (server.access_log, issue 17): one line per request, ctx=http msg="request",
with the user and how they were authenticated (front proxy, client certificate, token,
anonymous), method, path and query, status, body bytes, duration, the client's address and
user agent, in logfmt and in JSON; none of it when the access log is off (the default), except
refused requests (401, 403), which are always logged with the reason. Probes are never in it.
Real binary over TLS, delegated auth against kube_standin.py."""

import json
import re
import tempfile
from pathlib import Path

import pytest

from kube_standin import KubeStandin
from smtest import (EXTERNAL, Server, free_port, redis_source, request, server_config,
                    wait_until)

METRIC = "redis_queue_length"
METRIC_PATH = f"{EXTERNAL}/namespaces/default/{METRIC}?labelSelector=queue%3Djobs"
UA = "access-log-test/1.0 (pytest)"

LOGFMT_LINE = re.compile(r'^ts=\S+ level=\w+ ctx=\S+ msg="(?:[^"\\]|\\.)*"(?: [a-z_]+=\S.*)?$')
LOGFMT_PAIR = re.compile(r'([a-z_]+)=("(?:[^"\\]|\\.)*"|[^ "]*)')


def parse_logfmt(line):
    assert LOGFMT_LINE.match(line), f"not a logfmt line: {line!r}"
    fields = {}
    for k, v in LOGFMT_PAIR.findall(line):
        fields[k] = json.loads(v) if v.startswith('"') else v
    return fields


def mark(server):
    """Where the server's log ends now: lines after it belong to the requests that follow."""
    return server.log_path.stat().st_size


def access_lines(server, fmt, since=0):
    """The access log lines the server wrote after since, each as a dict of its fields."""
    out = []
    with open(server.log_path, "rb") as f:
        f.seek(since)
        text = f.read().decode(errors="replace")
    for line in text.splitlines():
        doc = json.loads(line) if fmt == "json" else parse_logfmt(line)
        if doc.get("ctx") == "http" and doc.get("msg") == "request":
            out.append(doc)
    return out


def wait_line(server, fmt, since, **match):
    """The one access line after since whose fields equal match (written just after the
    answer is queued, so it may lag the response a little)."""
    def find():
        hits = [d for d in access_lines(server, fmt, since)
                if all(d.get(k) == v for k, v in match.items())]
        assert len(hits) <= 1, hits
        return hits[0] if hits else None
    return wait_until(find, 5, what=f"access log line with {match}")


# ---------------------------------------------------------------------------------------------
# fixtures


def set_rules(kube):
    """bob, the client certificate's user and the HPA may read; eve is denied."""
    with kube.lock:
        kube.tokens = {"tok-bob": {"username": "bob", "uid": "u-1", "groups": ["devs"]},
                       "tok-eve": {"username": "eve", "groups": ["guests"]}}
        kube.sar_rules = [
            {"user": "bob", "allowed": True},
            {"user": "scalemetrics-test-user", "allowed": True},
            {"user": "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
             "allowed": True},
            {"user": "eve", "denied": True, "reason": "eve may not read metrics"},
        ]
    kube.clear()


@pytest.fixture(scope="module")
def kube(certs):
    k = KubeStandin().start()
    set_rules(k)
    yield k
    k.stop()


@pytest.fixture(scope="module")
def servers(tmp_root, certs, binary, kube, redis_server, redis_db):
    """start(**server_keys): scalemetrics with delegated auth (both CAs from files, no
    caches) and one Redis queue of 3 jobs; all stopped at teardown, each exiting 0."""
    r = redis_server.client(redis_db)
    r.delete("queue:jobs")
    r.rpush("queue:jobs", "a", "b", "c")
    started = []

    def start(**server_keys):
        port = free_port()
        cfg = server_config(port, certs, [redis_source(redis_server, redis_db)], **server_keys)
        cfg["server"]["auth"] = {
            "mode": "delegated", "cache_ttl": "0s",
            "requestheader_client_ca_file": str(certs["front_proxy_ca"]),
            "requestheader_allowed_names": ["front-proxy-client"],
            "client_ca_file": str(certs["ca"])}
        cfg["kubernetes"] = {"server": kube.url}
        d = Path(tempfile.mkdtemp(prefix="alog-server-", dir=tmp_root))
        s = Server(d, cfg, port, certs, binary).start()
        started.append(s)
        # The first round is in: the metric answers 200 from now on.
        wait_until(lambda: get(s, METRIC_PATH, token="tok-bob").status == 200, 10,
                   what="first round")
        return s

    yield start
    errors = [f"exit {rc}:\n{s.log_text()}" for s in started
              if (rc := s.stop()) != 0]
    assert not errors, "\n".join(errors)


def get(server, path, token=None, cert=None, headers=None, method="GET"):
    h = {"User-Agent": UA}
    if token:
        h["Authorization"] = f"Bearer {token}"
    h.update(headers or {})
    return request(server.port, path, method=method, headers=h, ca=server.certs["ca"],
                   cert=cert)


@pytest.fixture(scope="module")
def on_logfmt(servers):
    return servers(access_log=True)


@pytest.fixture(scope="module")
def on_json(servers):
    return servers(access_log=True, log_format="json")


@pytest.fixture(scope="module")
def off(servers):
    return servers()  # access_log left out: off by default


# ---------------------------------------------------------------------------------------------
# access_log: true


def test_token_request_logged(on_logfmt):
    m = mark(on_logfmt)
    r = get(on_logfmt, METRIC_PATH, token="tok-bob")
    assert r.status == 200, r
    line = wait_line(on_logfmt, "logfmt", m, user="bob", path=METRIC_PATH, status="200")
    assert line["level"] == "info"
    assert line["auth"] == "token"
    assert line["method"] == "GET"
    assert line["groups"] == "devs,system:authenticated"
    assert line["bytes"] == str(len(r.body))
    assert re.fullmatch(r"\d+\.\d{3}", line["duration_ms"]), line
    assert re.fullmatch(r"127\.0\.0\.1:\d+", line["remote"]), line
    assert line["user_agent"] == UA
    assert "reason" not in line
    # The token itself is never in the log.
    assert "tok-bob" not in on_logfmt.log_path.read_text()


def test_front_proxy_request_logged(on_logfmt, certs):
    m = mark(on_logfmt)
    hpa = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
    r = get(on_logfmt, METRIC_PATH,
            cert=(certs["front_proxy_cert"], certs["front_proxy_key"]),
            headers={"X-Remote-User": hpa, "X-Remote-Group": "system:serviceaccounts"})
    assert r.status == 200, r
    line = wait_line(on_logfmt, "logfmt", m, user=hpa)
    assert line["auth"] == "front-proxy"
    assert line["groups"] == "system:serviceaccounts,system:authenticated"
    assert (line["path"], line["status"], line["bytes"]) == (METRIC_PATH, "200",
                                                             str(len(r.body)))


def test_client_certificate_request_logged(on_logfmt, certs):
    m = mark(on_logfmt)
    r = get(on_logfmt, METRIC_PATH, cert=(certs["client_cert"], certs["client_key"]))
    assert r.status == 200, r
    line = wait_line(on_logfmt, "logfmt", m, user="scalemetrics-test-user")
    assert line["auth"] == "client-cert"
    assert line["groups"] == "scalemetrics-testers,system:authenticated"
    assert (line["path"], line["status"]) == (METRIC_PATH, "200")


def test_discovery_head_and_metrics_logged(on_logfmt):
    m = mark(on_logfmt)
    assert get(on_logfmt, EXTERNAL, token="tok-bob").status == 200
    wait_line(on_logfmt, "logfmt", m, path=EXTERNAL, status="200", auth="token", user="bob")
    # HEAD: no body bytes go out.
    r = get(on_logfmt, EXTERNAL, token="tok-bob", method="HEAD")
    assert r.status == 200
    wait_line(on_logfmt, "logfmt", m, method="HEAD", path=EXTERNAL, bytes="0")
    # /metrics is logged like any other path.
    r = get(on_logfmt, "/metrics", token="tok-bob")
    assert r.status == 200, r
    wait_line(on_logfmt, "logfmt", m, path="/metrics", status="200", bytes=str(len(r.body)))


def test_probes_not_logged(on_logfmt):
    m = mark(on_logfmt)
    for path in ("/healthz", "/livez", "/readyz"):
        assert get(on_logfmt, path).status == 200
    # A request after them, to know their lines would be in by now.
    get(on_logfmt, "/version", token="tok-bob")
    wait_line(on_logfmt, "logfmt", m, path="/version")
    paths = {d.get("path") for d in access_lines(on_logfmt, "logfmt", m)}
    assert not paths & {"/healthz", "/livez", "/readyz"}, paths


def test_denied_and_unauthenticated_logged_with_reason(on_logfmt):
    m = mark(on_logfmt)
    r = get(on_logfmt, METRIC_PATH, token="tok-eve")
    assert r.status == 403, r
    line = wait_line(on_logfmt, "logfmt", m, user="eve", status="403")
    assert line["auth"] == "token"
    assert line["reason"] == "eve may not read metrics"
    assert line["bytes"] == str(len(r.body))
    r = get(on_logfmt, METRIC_PATH, token="tok-nobody")
    assert r.status == 401, r
    line = wait_line(on_logfmt, "logfmt", m, status="401")
    assert line["auth"] == "token"
    assert "user" not in line and "groups" not in line
    assert line["reason"] == "token not authenticated: invalid bearer token"


def test_anonymous_logged(on_logfmt):
    m = mark(on_logfmt)
    r = get(on_logfmt, METRIC_PATH)
    assert r.status == 403, r
    line = wait_line(on_logfmt, "logfmt", m, user="system:anonymous")
    assert line["auth"] == "anonymous"
    assert line["groups"] == "system:unauthenticated"


def test_credential_in_query_hidden(on_logfmt):
    m = mark(on_logfmt)
    path = f"{EXTERNAL}/namespaces/default/{METRIC}?access_token=hunter2secret&labelSelector=x"
    get(on_logfmt, path, token="tok-bob")
    line = wait_line(on_logfmt, "logfmt", m,
                     path=f"{EXTERNAL}/namespaces/default/{METRIC}"
                          "?access_token=***&labelSelector=x")
    assert line["user"] == "bob"
    assert "hunter2secret" not in on_logfmt.log_path.read_text()


def test_json_format(on_json, certs):
    m = mark(on_json)
    r = get(on_json, METRIC_PATH, token="tok-bob")
    assert r.status == 200, r
    line = wait_line(on_json, "json", m, user="bob")
    assert line["level"] == "info"
    assert line["auth"] == "token"
    assert line["method"] == "GET"
    assert line["path"] == METRIC_PATH
    assert line["status"] == 200  # numbers are JSON numbers
    assert line["bytes"] == len(r.body)
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["groups"] == ["devs", "system:authenticated"]  # a JSON array
    assert line["user_agent"] == UA
    assert list(line)[:4] == ["ts", "level", "ctx", "msg"]
    r = get(on_json, METRIC_PATH, token="tok-eve")
    assert r.status == 403
    line = wait_line(on_json, "json", m, user="eve")
    assert (line["status"], line["reason"]) == (403, "eve may not read metrics")
    r = get(on_json, METRIC_PATH,
            cert=(certs["front_proxy_cert"], certs["front_proxy_key"]),
            headers={"X-Remote-User": "system:serviceaccount:kube-system:"
                                      "horizontal-pod-autoscaler"})
    assert r.status == 200
    line = wait_line(on_json, "json", m, auth="front-proxy")
    assert line["groups"] == ["system:authenticated"]


# ---------------------------------------------------------------------------------------------
# access_log off (the default)


def test_off_by_default_but_refusals_logged(off):
    m = mark(off)
    for _ in range(3):
        assert get(off, METRIC_PATH, token="tok-bob").status == 200
    assert get(off, EXTERNAL, token="tok-bob").status == 200
    assert get(off, METRIC_PATH, token="tok-eve").status == 403
    assert get(off, METRIC_PATH, token="tok-nobody").status == 401
    denied = wait_line(off, "logfmt", m, status="403")
    assert (denied["user"], denied["auth"], denied["path"]) == ("eve", "token", METRIC_PATH)
    assert denied["reason"] == "eve may not read metrics"
    unauthenticated = wait_line(off, "logfmt", m, status="401")
    assert unauthenticated["auth"] == "token"
    # The refusals and nothing else: no line for the requests that were served.
    assert sorted(d["status"] for d in access_lines(off, "logfmt", m)) == ["401", "403"]
