# SPDX-License-Identifier: MIT
"""Hostile tests of authentication, authorization and limits against the real binary over TLS
(docs/api.md "Authentication and authorization"; issue 6). Certificates come from
certs/make-certs.sh and certs/make-test-certs.sh; the Kubernetes API is kube_standin.py, which
records the exact TokenReview and SubjectAccessReview requests the server sends.

Every refused request asserts the exact status code, that the body is a Status, and that no
metric data was in it."""

import http.client
import json
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from kube_standin import KubeStandin
from smtest import (CLEAN_ENV, CUSTOM_V2, EXTERNAL, SLOW, SOURCE_ROOT, Server, free_port,
                    redis_source, server_config, wait_until)

MAKE_TEST_CERTS = SOURCE_ROOT / "certs" / "make-test-certs.sh"
METRIC = "redis_queue_length"
METRIC_PATH = f"{EXTERNAL}/namespaces/default/{METRIC}"
SERVED_MARKERS = (b"ExternalMetricValueList", b"MetricValueList", b"metricLabels", b'"value"')


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def tcerts(tmp_root):
    d = Path(tempfile.mkdtemp(prefix="sec-certs-", dir=tmp_root))
    subprocess.run(["bash", str(MAKE_TEST_CERTS), str(d)], check=True, capture_output=True)
    return {"dir": d, "ca": d / "ca.crt", "cert": d / "tls.crt", "key": d / "tls.key",
            "client_cert": d / "client.crt", "client_key": d / "client.key"}


def pair(tcerts, name):
    return (tcerts["dir"] / f"{name}.crt", tcerts["dir"] / f"{name}.key")


def configmap_data(tcerts, allowed=("front-proxy-client",)):
    d = tcerts["dir"]
    return {
        "client-ca-file": (d / "client-ca.crt").read_text(),
        "requestheader-client-ca-file": (d / "front-proxy-ca.crt").read_text(),
        "requestheader-allowed-names": json.dumps(list(allowed)),
        "requestheader-username-headers": '["X-Remote-User"]',
        "requestheader-group-headers": '["X-Remote-Group"]',
        "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
        "requestheader-uid-headers": "null",
    }


def ca_files(tcerts):
    """server.auth with both CAs from files (no ConfigMap needed)."""
    return {"requestheader_client_ca_file": str(tcerts["dir"] / "front-proxy-ca.crt"),
            "client_ca_file": str(tcerts["dir"] / "client-ca.crt"),
            "requestheader_allowed_names": ["front-proxy-client"]}


class Servers:
    """Starts scalemetrics with a full config (server and kubernetes sections); stops each
    at teardown, which must exit 0."""

    def __init__(self, tmp_root, tcerts, binary):
        self.tmp_root, self.tcerts, self.binary = tmp_root, tcerts, binary
        self.all = []

    def start(self, sources, kube_url, auth=None, wait=True, **server_extra):
        port = free_port()
        cfg = server_config(port, self.tcerts, sources, **server_extra)
        cfg["server"]["auth"] = dict({"mode": "delegated", "cache_ttl": "0s"}, **(auth or {}))
        cfg["kubernetes"] = {"server": kube_url}
        d = Path(tempfile.mkdtemp(prefix="sec-server-", dir=self.tmp_root))
        s = Server(d, cfg, port, self.tcerts, self.binary)
        self.all.append(s)
        return s.start(wait=wait)

    def stop_all(self):
        errors = []
        for s in self.all:
            if s.proc is None or s.log.closed:
                continue
            rc = s.stop()
            if rc != 0:
                errors.append(f"exit {rc}:\n{s.log_text()}")
        return errors


@pytest.fixture(scope="module")
def servers(tmp_root, tcerts, binary, redis_server, redis_db):
    """Servers of this module; the Redis database holds one queue of 3 jobs."""
    r = redis_server.client(redis_db)
    r.delete("queue:jobs")
    r.rpush("queue:jobs", "a", "b", "c")
    f = Servers(tmp_root, tcerts, binary)
    yield f
    errors = f.stop_all()
    assert not errors, "\n".join(errors)


@pytest.fixture(scope="module")
def kube(tcerts):
    k = KubeStandin().start()
    k.auth_configmap = configmap_data(tcerts)
    yield k
    k.stop()


@pytest.fixture(scope="module")
def srv(servers, kube, redis_server, redis_db):
    s = servers.start([redis_source(redis_server, redis_db)], kube.url)
    # First round done (readyz is open to everyone, without any review).
    wait_until(lambda: s.get("/readyz").status == 200, 10, what="readyz")
    return s


@pytest.fixture(autouse=True)
def reset_kube(request):
    if "kube" in request.fixturenames:
        k = request.getfixturevalue("kube")
        with k.lock:
            k.tokens = {}
            k.sar_rules = []
            k.review_status = None
        k.clear()


def get(server, path, cert=None, headers=(), method="GET", timeout=10):
    """One HTTPS request with repeatable header lines (a list of pairs)."""
    ctx = ssl.create_default_context(cafile=str(server.certs["ca"]))
    if cert:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx,
                                       timeout=timeout * SLOW)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in headers:
            conn.putheader(k, v)
        conn.endheaders()
        r = conn.getresponse()
        body = r.read()
        return r.status, r.headers, body
    finally:
        conn.close()


def refused(result, code, reason):
    """The request was answered with exactly this Status, and nothing was served."""
    status, headers, body = result
    for m in SERVED_MARKERS:
        assert m not in body, body
    doc = json.loads(body)
    assert status == code, (status, body)
    assert headers.get("Content-Type") == "application/json"
    assert doc["kind"] == "Status" and doc["apiVersion"] == "v1", doc
    assert doc["status"] == "Failure" and doc["code"] == code, doc
    assert doc.get("reason") == reason, doc
    return doc


def served(result):
    status, headers, body = result
    assert status == 200, (status, body)
    doc = json.loads(body)
    assert doc["kind"] == "ExternalMetricValueList", doc
    assert [i["value"] for i in doc["items"]] == ["3"], doc
    return doc


def sars(kube):
    return kube.reviews("SubjectAccessReview")


def token_reviews(kube):
    return kube.reviews("TokenReview")


EXPECTED_ATTRS = {"namespace": "default", "verb": "list", "group": "external.metrics.k8s.io",
                  "version": "v1beta1", "resource": METRIC}


def sar(user, groups, attrs=None, extra=None, non_resource=None):
    spec = {}
    if non_resource:
        spec["nonResourceAttributes"] = non_resource
    else:
        spec["resourceAttributes"] = attrs or EXPECTED_ATTRS
    spec["user"] = user
    if groups:
        spec["groups"] = groups
    if extra:
        spec["extra"] = extra
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": spec}


# ---------------------------------------------------------------------------------------------
# open paths


def test_health_paths_open_without_any_review(srv, kube, tcerts):
    for path in ("/healthz", "/livez", "/readyz"):
        status, _, body = get(srv, path)
        assert status == 200 and body == b"ok", (path, status, body)
        # Even with a certificate nobody trusts: health never depends on the API server.
        status, _, _ = get(srv, path, cert=pair(tcerts, "rogue-user"))
        assert status == 200
    assert kube.posts == []


# ---------------------------------------------------------------------------------------------
# anonymous, certificates nobody trusts


def test_anonymous_is_asked_about_and_denied(srv, kube):
    doc = refused(get(srv, METRIC_PATH), 403, "Forbidden")
    assert doc["message"] == (
        f'{METRIC}.external.metrics.k8s.io is forbidden: User "system:anonymous" cannot list '
        f'resource "{METRIC}" in API group "external.metrics.k8s.io" in the namespace '
        '"default"')
    assert doc["details"] == {"group": "external.metrics.k8s.io", "kind": METRIC}
    assert sars(kube) == [sar("system:anonymous", ["system:unauthenticated"])]
    assert token_reviews(kube) == []


@pytest.mark.parametrize("cert", [
    "rogue-user",             # unknown CA (O=system:masters inside: must not matter)
    "rogue-front-proxy",      # unknown CA with the aggregator's CN
    "client-expired",         # the client CA, expired
    "front-proxy-expired",    # the front-proxy CA, expired
    "front-proxy-wrong-cn",   # the front-proxy CA, CN not in the allowed names
    "front-proxy-server-eku",  # the front-proxy CA, serverAuth only
])
def test_untrusted_certificate_is_401(srv, kube, tcerts, cert):
    headers = [("X-Remote-User", "system:admin"), ("X-Remote-Group", "system:masters")]
    refused(get(srv, METRIC_PATH, cert=pair(tcerts, cert), headers=headers), 401,
            "Unauthorized")
    # Also discovery: an unauthenticated certificate never reaches authorization.
    refused(get(srv, f"{EXTERNAL}", cert=pair(tcerts, cert)), 401, "Unauthorized")
    assert kube.posts == [], "nothing may be asked about an untrusted certificate"


def test_untrusted_certificate_with_valid_token_uses_the_token(srv, kube, tcerts):
    """Union of authenticators: a failing certificate does not veto a good token."""
    kube.tokens["tok-b"] = {"username": "bob", "uid": "u-1", "groups": ["devs"]}
    kube.sar_rules = [{"user": "bob", "allowed": True}]
    served(get(srv, METRIC_PATH, cert=pair(tcerts, "rogue-user"),
               headers=[("Authorization", "Bearer tok-b")]))
    expected = sar("bob", ["devs", "system:authenticated"])
    expected["spec"]["uid"] = "u-1"
    assert sars(kube) == [expected]


# ---------------------------------------------------------------------------------------------
# front proxy


def test_front_proxy_identity_from_headers(srv, kube, tcerts):
    kube.sar_rules = [{"user": "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
                       "resource": METRIC, "verb": "list", "allowed": True,
                       "reason": "RBAC: allowed"}]
    headers = [
        ("X-Remote-User", "system:serviceaccount:kube-system:horizontal-pod-autoscaler"),
        ("X-Remote-Group", "system:serviceaccounts"),
        ("x-remote-group", "system:serviceaccounts:kube-system"),
        ("X-Remote-Group", ""),  # empty values are skipped
        ("X-Remote-Extra-Authentication.kubernetes.io%2fcredential-Id", "JTI=abc"),
        ("X-Remote-Extra-Scopes", "a"),
        ("X-Remote-Extra-Scopes", "b"),
    ]
    served(get(srv, METRIC_PATH, cert=pair(tcerts, "front-proxy-client"), headers=headers))
    assert sars(kube) == [sar(
        "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
        ["system:serviceaccounts", "system:serviceaccounts:kube-system",
         "system:authenticated"],
        extra={"authentication.kubernetes.io/credential-id": ["JTI=abc"],
               "scopes": ["a", "b"]})]
    assert token_reviews(kube) == []


def test_front_proxy_masters_skip_review(srv, kube, tcerts):
    headers = [("X-Remote-User", "system:kube-aggregator"), ("X-Remote-Group", "system:masters")]
    served(get(srv, METRIC_PATH, cert=pair(tcerts, "front-proxy-client"), headers=headers))
    assert kube.posts == []


def test_front_proxy_discovery_for_authenticated_user_without_groups(srv, kube, tcerts):
    """The aggregator's discovery and OpenAPI fetches come with a user and no groups: they
    pass because system:authenticated is added (docs/api.md "Authorization")."""
    cert = pair(tcerts, "front-proxy-client")
    for path in ("/apis", EXTERNAL, CUSTOM_V2, "/openapi/v2", "/version"):
        status, _, body = get(srv, path, cert=cert,
                              headers=[("X-Remote-User", "system:aggregator")])
        assert status == 200, (path, status, body)
    assert kube.posts == []


def test_front_proxy_without_user_header_is_401(srv, kube, tcerts):
    refused(get(srv, METRIC_PATH, cert=pair(tcerts, "front-proxy-client"),
                headers=[("X-Remote-Group", "system:masters")]), 401, "Unauthorized")
    assert kube.posts == []


def test_remembered_certificate_is_refused_once_it_expires(srv, kube, tcerts):
    """A verified chain is remembered (its signatures are not checked again on every request),
    but never past the validity of its certificates: a proxy certificate served a few
    seconds before it expires is refused after, although the same bytes come again."""
    subprocess.run(["bash", str(MAKE_TEST_CERTS), str(tcerts["dir"]), "--short-lived",
                    "front-proxy-short", "4"], check=True, capture_output=True)
    cert = pair(tcerts, "front-proxy-short")
    headers = [("X-Remote-User", "system:kube-aggregator"), ("X-Remote-Group", "system:masters")]
    started = time.monotonic()
    served(get(srv, METRIC_PATH, cert=cert, headers=headers))
    served(get(srv, METRIC_PATH, cert=cert, headers=headers))
    assert time.monotonic() - started < 4, "too slow to see the certificate while valid"
    time.sleep(max(0, started + 5.5 - time.monotonic()))
    refused(get(srv, METRIC_PATH, cert=cert, headers=headers), 401, "Unauthorized")
    assert kube.posts == []


def test_spoofed_remote_user_from_client_ca_cert_is_ignored(srv, kube, tcerts):
    kube.sar_rules = [{"user": "alice", "denied": True, "reason": "alice may not"}]
    headers = [("X-Remote-User", "system:admin"), ("X-Remote-Group", "system:masters"),
               ("X-Remote-Extra-Scopes", "all")]
    doc = refused(get(srv, METRIC_PATH, cert=pair(tcerts, "client-user"), headers=headers),
                  403, "Forbidden")
    assert doc["message"] == (
        f'{METRIC}.external.metrics.k8s.io is forbidden: User "alice" cannot list resource '
        f'"{METRIC}" in API group "external.metrics.k8s.io" in the namespace "default": '
        "alice may not")
    # Identity = the certificate's CN and O; the headers are not believed.
    assert sars(kube) == [sar("alice", ["team-a", "team-b", "system:authenticated"])]


def test_spoofed_remote_user_anonymous_is_ignored(srv, kube):
    headers = [("X-Remote-User", "system:admin"), ("X-Remote-Group", "system:masters")]
    refused(get(srv, METRIC_PATH, headers=headers), 403, "Forbidden")
    assert sars(kube) == [sar("system:anonymous", ["system:unauthenticated"])]


# ---------------------------------------------------------------------------------------------
# client certificates and tokens


def test_client_cert_allowed(srv, kube, tcerts):
    kube.sar_rules = [{"user": "alice", "group": "team-b", "namespace": "default",
                       "allowed": True}]
    served(get(srv, METRIC_PATH, cert=pair(tcerts, "client-user")))
    assert sars(kube) == [sar("alice", ["team-a", "team-b", "system:authenticated"])]


def tls_get(ctx, port, path, session=None):
    """One request on a new TLS connection (optionally resuming session); returns the
    status, whether the session was resumed, and the session to resume next time."""
    with socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                      .encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            return int(data.split(b" ", 2)[1]), s.session_reused, s.session


def test_resumed_tls_session_keeps_the_client_certificate_identity(srv, kube, tcerts):
    # Session tickets let a client skip the full handshake; the identity its certificate
    # proved in the first handshake must carry over, and nothing else may be assumed.
    kube.sar_rules = [{"user": "alice", "group": "team-b", "namespace": "default",
                       "allowed": True}]
    ctx = ssl.create_default_context(cafile=str(srv.certs["ca"]))
    ctx.load_cert_chain(*map(str, pair(tcerts, "client-user")))
    status, reused, session = tls_get(ctx, srv.port, METRIC_PATH)
    assert (status, reused) == (200, False)
    status, reused, _ = tls_get(ctx, srv.port, METRIC_PATH, session)
    assert (status, reused) == (200, True)
    assert {r["spec"]["user"] for r in sars(kube)} == {"alice"}
    # An anonymous client's resumed session stays anonymous (and denied).
    anon = ssl.create_default_context(cafile=str(srv.certs["ca"]))
    status, reused, session = tls_get(anon, srv.port, METRIC_PATH)
    assert (status, reused) == (403, False)
    status, reused, _ = tls_get(anon, srv.port, METRIC_PATH, session)
    assert (status, reused) == (403, True)


def test_token_review_request_and_identity(srv, kube):
    kube.tokens["tok-1"] = {"username": "system:serviceaccount:monitoring:prometheus",
                            "uid": "4c1b", "groups": ["system:serviceaccounts",
                                                      "system:authenticated"],
                            "extra": {"authentication.kubernetes.io/pod-name": ["prom-0"]}}
    kube.sar_rules = [{"user": "system:serviceaccount:monitoring:prometheus", "allowed": True}]
    served(get(srv, METRIC_PATH, headers=[("Authorization", "Bearer tok-1")]))
    assert token_reviews(kube) == [{"apiVersion": "authentication.k8s.io/v1",
                                    "kind": "TokenReview", "spec": {"token": "tok-1"}}]
    s = sar("system:serviceaccount:monitoring:prometheus",
            ["system:serviceaccounts", "system:authenticated"],
            extra={"authentication.kubernetes.io/pod-name": ["prom-0"]})
    s["spec"]["uid"] = "4c1b"
    assert sars(kube) == [s]


@pytest.mark.parametrize("value", ["Bearer nope", "bearer nope"])
def test_bad_token_is_401(srv, kube, value):
    refused(get(srv, METRIC_PATH, headers=[("Authorization", value)]), 401, "Unauthorized")
    assert token_reviews(kube) == [{"apiVersion": "authentication.k8s.io/v1",
                                    "kind": "TokenReview", "spec": {"token": "nope"}}]
    assert sars(kube) == []


def test_non_bearer_authorization_is_anonymous(srv, kube):
    refused(get(srv, METRIC_PATH, headers=[("Authorization", "Basic YWRtaW46YWRtaW4=")]), 403,
            "Forbidden")
    assert token_reviews(kube) == []
    assert sars(kube) == [sar("system:anonymous", ["system:unauthenticated"])]


def test_denied_sar_is_403_with_go_message(srv, kube):
    kube.tokens["tok-2"] = {"username": "eve", "groups": []}
    kube.sar_rules = [{"user": "eve", "denied": True, "reason": "no <way> & never"}]
    path = f"{CUSTOM_V2}/namespaces/team-a/pods/%2A/http_requests?labelSelector=app%3Dweb"
    doc = refused(get(srv, path, headers=[("Authorization", "Bearer tok-2")]), 403, "Forbidden")
    assert doc["message"] == (
        'pods.custom.metrics.k8s.io "*" is forbidden: User "eve" cannot get resource '
        '"pods/http_requests" in API group "custom.metrics.k8s.io" in the namespace "team-a": '
        "no <way> & never")
    assert doc["details"] == {"name": "*", "group": "custom.metrics.k8s.io", "kind": "pods"}
    assert sars(kube) == [sar("eve", ["system:authenticated"], attrs={
        "namespace": "team-a", "verb": "get", "group": "custom.metrics.k8s.io",
        "version": "v1beta2", "resource": "pods", "subresource": "http_requests", "name": "*"})]


def test_no_opinion_is_403(srv, kube):
    kube.tokens["tok-3"] = {"username": "carol"}
    refused(get(srv, METRIC_PATH, headers=[("Authorization", "Bearer tok-3")]), 403,
            "Forbidden")


@pytest.mark.parametrize("path,attrs", [
    (f"{CUSTOM_V2}/namespaces/default/pods/*/http_requests",
     {"namespace": "default", "verb": "get", "group": "custom.metrics.k8s.io",
      "version": "v1beta2", "resource": "pods", "subresource": "http_requests", "name": "*"}),
    (f"{CUSTOM_V2}/namespaces/team-a/metrics/queue_depth",
     {"namespace": "team-a", "verb": "get", "group": "custom.metrics.k8s.io",
      "version": "v1beta2", "resource": "metrics", "name": "queue_depth"}),
    (f"{CUSTOM_V2}/nodes/n1/cpu_temp",
     {"verb": "get", "group": "custom.metrics.k8s.io", "version": "v1beta2",
      "resource": "nodes", "subresource": "cpu_temp", "name": "n1"}),
    (f"{EXTERNAL}/namespaces/default/queue_messages_ready?labelSelector=q%3Da",
     {"namespace": "default", "verb": "list", "group": "external.metrics.k8s.io",
      "version": "v1beta1", "resource": "queue_messages_ready"}),
    (f"{EXTERNAL}/namespaces/default/queue_messages_ready?watch=true",
     {"namespace": "default", "verb": "watch", "group": "external.metrics.k8s.io",
      "version": "v1beta1", "resource": "queue_messages_ready"}),
])
def test_sar_attributes_derivation(srv, kube, path, attrs):
    """The examples of docs/api.md "Authorization", as the server sends them."""
    kube.tokens["tok-4"] = {"username": "dan"}
    kube.sar_rules = [{"user": "dan", "allowed": True}]
    status, _, _ = get(srv, path, headers=[("Authorization", "Bearer tok-4")])
    assert status in (200, 404), status
    assert sars(kube) == [sar("dan", ["system:authenticated"], attrs=attrs)]


def test_discovery_for_anonymous_asks_non_resource(srv, kube):
    doc = refused(get(srv, "/apis/custom.metrics.k8s.io"), 403, "Forbidden")
    assert doc["message"] == ('forbidden: User "system:anonymous" cannot get path '
                              '"/apis/custom.metrics.k8s.io"')
    assert doc["details"] == {}
    assert sars(kube) == [sar("system:anonymous", ["system:unauthenticated"],
                              non_resource={"path": "/apis/custom.metrics.k8s.io",
                                            "verb": "get"})]


def test_malformed_path_is_400_before_any_review(srv, kube):
    refused(get(srv, f"{EXTERNAL}/namespaces/default/%zz"), 400, "BadRequest")
    refused(get(srv, f"{EXTERNAL}//namespaces"), 400, "BadRequest")
    assert kube.posts == []


# ---------------------------------------------------------------------------------------------
# the API server failing


def test_review_refused_by_api_server_fails_closed(srv, kube, tcerts):
    """403 from the API server on the review itself (no system:auth-delegator binding)."""
    kube.review_status = 403
    refused(get(srv, METRIC_PATH, cert=pair(tcerts, "client-user")), 500, "InternalError")
    refused(get(srv, METRIC_PATH, headers=[("Authorization", "Bearer x")]), 401, "Unauthorized")
    assert srv.running()


def test_unreachable_api_server_fails_closed(servers, tcerts, redis_server, redis_db):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    s = servers.start([redis_source(redis_server, redis_db)], dead, auth=ca_files(tcerts))
    wait_until(lambda: s.get("/readyz").status == 200, 10, what="readyz")
    # Token cannot be checked: 401.
    refused(get(s, METRIC_PATH, headers=[("Authorization", "Bearer t")]), 401, "Unauthorized")
    # Authenticated by certificate, but the access check cannot be made: 503.
    doc = refused(get(s, METRIC_PATH, cert=pair(tcerts, "client-user")), 503,
                  "ServiceUnavailable")
    assert "SubjectAccessReview" in doc["message"]
    _, headers, _ = get(s, METRIC_PATH, cert=pair(tcerts, "client-user"))
    assert headers.get("Retry-After") is None
    refused(get(s, METRIC_PATH, cert=pair(tcerts, "front-proxy-client"),
                headers=[("X-Remote-User", "hpa")]), 503, "ServiceUnavailable")
    # Anonymous too.
    refused(get(s, METRIC_PATH), 503, "ServiceUnavailable")
    # system:masters and health need nobody.
    served(get(s, METRIC_PATH, cert=pair(tcerts, "front-proxy-client"),
               headers=[("X-Remote-User", "a"), ("X-Remote-Group", "system:masters")]))
    assert get(s, "/healthz")[0] == 200
    assert s.running()


def test_hanging_api_server_does_not_block_the_server(servers, tcerts, redis_server,
                                                      redis_db):
    """An API server that accepts connections and never answers: the reviews time out (10 s,
    then 401 / 503) while health checks, system:masters and other connections are served at
    once: the reviews run on the auth workers, not on the HTTP threads."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)  # never accepted: the kernel completes handshakes, nobody answers
    try:
        s = servers.start([redis_source(redis_server, redis_db)],
                          f"http://127.0.0.1:{hole.getsockname()[1]}", auth=ca_files(tcerts))
        wait_until(lambda: s.get("/readyz").status == 200, 10, what="readyz")
        results = {}

        def slow(name, **kw):
            t0 = time.monotonic()
            results[name] = (get(s, METRIC_PATH, timeout=40, **kw), time.monotonic() - t0)

        threads = [threading.Thread(target=slow, args=("token",),
                                    kwargs={"headers": [("Authorization", "Bearer t")]}),
                   threading.Thread(target=slow, args=("cert",),
                                    kwargs={"cert": pair(tcerts, "client-user")})]
        for t in threads:
            t.start()
        time.sleep(0.5)
        for _ in range(5):
            t0 = time.monotonic()
            assert get(s, "/healthz", timeout=5)[0] == 200
            served(get(s, METRIC_PATH, cert=pair(tcerts, "front-proxy-client"), timeout=5,
                       headers=[("X-Remote-User", "a"), ("X-Remote-Group", "system:masters")]))
            assert time.monotonic() - t0 < 1.0 * SLOW
        for t in threads:
            t.join(60)
        refused(results["token"][0], 401, "Unauthorized")
        refused(results["cert"][0], 503, "ServiceUnavailable")
        assert results["token"][1] >= 9, results  # the review's 10 s timeout
        assert s.running()
    finally:
        hole.close()


def test_sigterm_with_a_pending_review_exits_cleanly(servers, tcerts, redis_server, redis_db):
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)
    try:
        s = servers.start([redis_source(redis_server, redis_db)],
                          f"http://127.0.0.1:{hole.getsockname()[1]}", auth=ca_files(tcerts))
        wait_until(lambda: s.get("/readyz").status == 200, 10, what="readyz")
        out = {}

        def pending():
            try:
                out["r"] = get(s, METRIC_PATH, headers=[("Authorization", "Bearer t")],
                               timeout=40)
            except (OSError, http.client.HTTPException) as e:
                out["e"] = e

        t = threading.Thread(target=pending)
        t.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        assert s.stop(timeout=30) == 0
        assert time.monotonic() - t0 < 25 * SLOW
        t.join(30)
        # Answered (the review timed out: 401) or closed; never served.
        if "r" in out:
            refused(out["r"], 401, "Unauthorized")
    finally:
        hole.close()


def test_configmap_unreadable_trusts_no_certificate(servers, kube, tcerts, redis_server,
                                                   redis_db):
    """No ConfigMap (404) at start: certificates are not trusted (401), the server runs,
    and picks the ConfigMap up once it appears."""
    k = KubeStandin().start()
    try:
        k.auth_configmap = None
        s = servers.start([redis_source(redis_server, redis_db)], k.url,
                          auth={"refresh_interval": "1s"})
        wait_until(lambda: s.get("/readyz").status == 200, 10, what="readyz")
        headers = [("X-Remote-User", "a"), ("X-Remote-Group", "system:masters")]
        refused(get(s, METRIC_PATH, cert=pair(tcerts, "front-proxy-client"), headers=headers),
                401, "Unauthorized")
        k.auth_configmap = configmap_data(tcerts)
        wait_until(lambda: get(s, METRIC_PATH, cert=pair(tcerts, "front-proxy-client"),
                               headers=headers)[0] == 200, 10, interval=0.3,
                   what="the ConfigMap's CA in use")
        # Rotation: the allowed names change; the old proxy CN is refused afterwards.
        k.auth_configmap = configmap_data(tcerts, allowed=("someone-else",))
        wait_until(lambda: get(s, METRIC_PATH, cert=pair(tcerts, "front-proxy-client"),
                               headers=headers)[0] == 401, 10, interval=0.3,
                   what="the new allowed names in use")
        # The proxy CA changes: a chain verified (and remembered) under the old one is
        # refused once the new one is in use.
        k.auth_configmap = configmap_data(tcerts)
        wait_until(lambda: get(s, METRIC_PATH, cert=pair(tcerts, "front-proxy-client"),
                               headers=headers)[0] == 200, 10, interval=0.3,
                   what="the proxy CN allowed again")
        rotated = configmap_data(tcerts)
        rotated["requestheader-client-ca-file"] = (tcerts["dir"] / "client-ca.crt").read_text()
        k.auth_configmap = rotated
        wait_until(lambda: get(s, METRIC_PATH, cert=pair(tcerts, "front-proxy-client"),
                               headers=headers)[0] == 401, 10, interval=0.3,
                   what="the new proxy CA in use")
    finally:
        k.stop()


def test_config_lists_open_paths_and_header_names(servers, kube, tcerts, redis_server,
                                                  redis_db):
    auth = dict(ca_files(tcerts), always_allow_paths=["/version", "/openapi/*"],
                requestheader_username_headers=["X-Proxy-User"],
                requestheader_group_headers=["X-Proxy-Group"],
                requestheader_extra_headers_prefix=["X-Proxy-Extra-"])
    s = servers.start([redis_source(redis_server, redis_db)], kube.url, auth=auth)
    wait_until(lambda: s.get("/readyz").status == 200, 10, what="readyz")
    kube.clear()
    # Open to anonymous without asking; others still asked about.
    assert get(s, "/version")[0] == 200
    assert get(s, "/openapi/v2")[0] == 200
    refused(get(s, "/apis"), 403, "Forbidden")
    assert [r["spec"]["nonResourceAttributes"]["path"] for r in sars(kube)] == ["/apis"]
    # ... but a bad credential on an open path is still 401.
    refused(get(s, "/version", cert=pair(tcerts, "rogue-user")), 401, "Unauthorized")
    # The configured header names, and only those, carry the identity.
    kube.clear()
    kube.sar_rules = [{"user": "proxied", "allowed": True}]
    cert = pair(tcerts, "front-proxy-client")
    served(get(s, METRIC_PATH, cert=cert, headers=[
        ("X-Proxy-User", "proxied"), ("X-Proxy-Group", "g"), ("X-Proxy-Extra-K", "v"),
        ("X-Remote-User", "other"), ("X-Remote-Group", "system:masters")]))
    assert sars(kube) == [sar("proxied", ["g", "system:authenticated"], extra={"k": ["v"]})]
    refused(get(s, METRIC_PATH, cert=cert, headers=[("X-Remote-User", "other")]), 401,
            "Unauthorized")


def test_decisions_cached_separately(servers, kube, redis_server, redis_db):
    s = servers.start([redis_source(redis_server, redis_db)], kube.url,
                      auth={"cache_ttl": "1m"})
    wait_until(lambda: s.get("/readyz").status == 200, 10, what="readyz")
    kube.tokens["tok-ok"] = {"username": "ok-user"}
    kube.tokens["tok-no"] = {"username": "no-user"}
    kube.sar_rules = [{"user": "ok-user", "allowed": True},
                      {"user": "no-user", "denied": True}]
    ok = [("Authorization", "Bearer tok-ok")]
    no = [("Authorization", "Bearer tok-no")]
    for _ in range(3):
        served(get(s, METRIC_PATH, headers=ok))
        refused(get(s, METRIC_PATH, headers=no), 403, "Forbidden")
    assert len(token_reviews(kube)) == 2
    assert [r["spec"]["user"] for r in sars(kube)] == ["ok-user", "no-user"]
    # The selector is not part of the question (no selector-aware authorization): cached.
    served(get(s, f"{METRIC_PATH}?labelSelector=queue%3Djobs", headers=ok))
    assert len(sars(kube)) == 2
    # Another namespace is another question.
    get(s, f"{EXTERNAL}/namespaces/other/{METRIC}", headers=ok)
    assert len(sars(kube)) == 3
    assert sars(kube)[2]["spec"]["resourceAttributes"]["namespace"] == "other"


def test_cached_decisions_do_not_wait_behind_reviews(servers, kube, redis_server, redis_db):
    """A request whose token and decision are cached is decided in the HTTP thread: it is
    served at once while slow reviews of other requests keep every auth worker busy (four
    workers, five requests to review; the Kubernetes client sends one review at a time)."""
    s = servers.start([redis_source(redis_server, redis_db)], kube.url,
                      auth={"cache_ttl": "1m"})
    wait_until(lambda: s.get("/readyz").status == 200, 10, what="readyz")
    kube.tokens["tok-ok"] = {"username": "ok-user"}
    kube.sar_rules = [{"user": "ok-user", "allowed": True}]
    ok = [("Authorization", "Bearer tok-ok")]
    served(get(s, METRIC_PATH, headers=ok))  # now cached: token and decision
    kube.review_delay = 2
    results = {}

    def slow(i):
        results[i] = get(s, METRIC_PATH, timeout=40,
                         headers=[("Authorization", f"Bearer tok-new-{i}")])

    threads = [threading.Thread(target=slow, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(token_reviews(kube)) >= 2, 10, what="a review in flight")
        time.sleep(0.3)  # the other requests reach the workers and wait for the client
        for _ in range(5):
            t0 = time.monotonic()
            served(get(s, METRIC_PATH, headers=ok, timeout=10))
            assert time.monotonic() - t0 < 1.0 * SLOW
    finally:
        kube.review_delay = 0
        for t in threads:
            t.join(60)
    for i in range(5):
        refused(results[i], 401, "Unauthorized")  # unknown tokens, once reviewed
    assert len(sars(kube)) == 1  # the cached decision was never asked again


# ---------------------------------------------------------------------------------------------
# auth: none


def test_delegated_without_kubernetes_api_refuses_to_start(tmp_root, tcerts, binary,
                                                           redis_server, redis_db):
    port = free_port()
    cfg = server_config(port, tcerts, [redis_source(redis_server, redis_db)])
    cfg["server"]["auth"] = {"mode": "delegated"}
    d = Path(tempfile.mkdtemp(prefix="sec-nokube-", dir=tmp_root))
    s = Server(d, cfg, port, tcerts, binary)
    if "KUBERNETES_SERVICE_HOST" in CLEAN_ENV:
        pytest.skip("running inside a Kubernetes pod: the in-cluster API would be used")
    # Nor a kubeconfig of whoever runs the tests ($KUBECONFIG, ~/.kube/config).
    s.env.pop("KUBECONFIG", None)
    s.env["HOME"] = str(d)
    try:
        s.start(wait=False)
        assert s.proc.wait(15 * SLOW) != 0
    finally:
        s.log.close()
    assert "server.auth.mode delegated needs the Kubernetes API" in s.log_text()


@pytest.mark.parametrize("ca,why", [
    ("/nonexistent/ca.crt", "cannot read"),
    ("tls.key", "holds no PEM certificate"),
])
def test_unusable_ca_file_refuses_to_start(servers, kube, tcerts, ca, why):
    path = ca if ca.startswith("/") else str(tcerts["dir"] / ca)
    s = servers.start([], kube.url, auth={"client_ca_file": path}, wait=False)
    assert s.proc.wait(15 * SLOW) != 0
    s.log.close()
    assert f"server.auth.client_ca_file '{path}': " in s.log_text()
    assert why in s.log_text()


def test_auth_none_warns_and_serves(start_server, redis_server, redis_db):
    s = start_server([redis_source(redis_server, redis_db)])
    wait_until(lambda: "AUTHENTICATION IS DISABLED" in s.log_text(), 5, what="the warning")


# ---------------------------------------------------------------------------------------------
# limits


def raw_tls(port, timeout=5):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW)
    return ctx.wrap_socket(sock, server_hostname="localhost")


def read_status(sock):
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


@pytest.fixture(scope="module")
def limited(servers, kube, redis_server, redis_db):
    s = servers.start([redis_source(redis_server, redis_db)], kube.url,
                      limits={"max_connections": 40, "max_connections_per_ip": 12,
                              "connection_timeout": "2s", "max_header_bytes": 2048})
    wait_until(lambda: s.get("/readyz").status == 200, 10, what="readyz")
    return s


def test_limit_header_bytes(limited, kube):
    refused(get(limited, "/healthz", headers=[("X-Pad", "a" * 2100)]), 431, None)
    refused(get(limited, METRIC_PATH, headers=[("X-Pad", "a" * 2100)]), 431, None)
    assert get(limited, "/healthz", headers=[("X-Pad", "a" * 1500)])[0] == 200
    assert kube.posts == []


def test_limit_url_length(limited, kube):
    refused(get(limited, METRIC_PATH + "?labelSelector=" + "a" * 9000), 414, None)
    assert kube.posts == []


def test_many_header_lines_refused(limited, kube, srv):
    # 300 one-byte headers are under the byte limit of srv (16 KiB) but over the line cap.
    headers = [(f"X-H{i}", "1") for i in range(300)]
    refused(get(srv, METRIC_PATH, headers=headers), 431, None)
    assert kube.posts == []


@pytest.mark.parametrize("raw,codes", [
    (b"GET\r\n\r\n", {400}),
    (b"GET /apis HTTP/9.9\r\n\r\n", {505}),
    (b"\x16\x03\x01garbage\r\n\r\n", {400}),
    (b"GET /apis HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", {400}),
    (b"GET /apis HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", {400}),
    (b"GET /apis HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", {400}),
])
def test_malformed_requests_serve_nothing(limited, kube, raw, codes):
    s = raw_tls(limited.port)
    try:
        s.sendall(raw)
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (OSError, ssl.SSLError):
            pass
    finally:
        s.close()
    for m in SERVED_MARKERS + (b"APIGroupList",):
        assert m not in data, data
    if data:
        code = int(data.split(b" ", 2)[1])
        assert code in codes, data
    assert kube.posts == []
    assert limited.running()


def test_connection_timeout_closes_idle_and_slow(limited):
    s = raw_tls(limited.port, timeout=10)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\n")  # then nothing
        t0 = time.monotonic()
        try:
            data = s.recv(4096)
        except (OSError, ssl.SSLError):
            data = b""
        took = time.monotonic() - t0
    finally:
        s.close()
    assert not data or data.startswith(b"HTTP/1.1 4") or data == b"", data
    assert 1.5 <= took <= 6 * SLOW, took


def test_per_ip_connection_limit(limited):
    held = []
    try:
        for _ in range(12):
            held.append(raw_tls(limited.port))
        # The 13th connection from this address is closed at once.
        with pytest.raises((OSError, ssl.SSLError, ConnectionError)):
            extra = raw_tls(limited.port)
            try:
                extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                if not extra.recv(4096):
                    raise ConnectionError("closed")
            finally:
                extra.close()
    finally:
        for h in held:
            h.close()
    wait_until(lambda: get(limited, "/healthz")[0] == 200, 5, what="served again")


def test_total_connection_limit(servers, kube, redis_server, redis_db):
    s = servers.start([redis_source(redis_server, redis_db)], kube.url,
                      limits={"max_connections": 6, "max_connections_per_ip": 100})
    wait_until(lambda: s.get("/readyz").status == 200, 10, what="readyz")
    held = []
    try:
        for _ in range(6):
            held.append(raw_tls(s.port))
        with pytest.raises((OSError, ssl.SSLError, ConnectionError)):
            extra = raw_tls(s.port)
            try:
                extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                if not extra.recv(4096):
                    raise ConnectionError("closed")
            finally:
                extra.close()
    finally:
        for h in held:
            h.close()
    wait_until(lambda: get(s, "/healthz")[0] == 200, 5, what="served again")


def test_slowloris_cannot_hold_the_server(servers, kube, redis_server, redis_db):
    """Many connections trickling header bytes: normal requests are still served quickly,
    and every slow connection is closed within the connection timeout."""
    s = servers.start([redis_source(redis_server, redis_db)], kube.url,
                      limits={"max_connections": 200, "max_connections_per_ip": 150,
                              "connection_timeout": "2s"})
    wait_until(lambda: s.get("/readyz").status == 200, 10, what="readyz")
    stop = threading.Event()
    closed = []
    opened = []

    def slow_client():
        try:
            c = raw_tls(s.port, timeout=10)
        except (OSError, ssl.SSLError):
            return
        opened.append(1)
        t0 = time.monotonic()
        try:
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            i = 0
            while not stop.is_set():
                c.sendall(b"X-a%d: b\r\n" % i)  # one header line per 0.5 s, never ending
                i += 1
                time.sleep(0.5)
        except (OSError, ssl.SSLError):
            closed.append(time.monotonic() - t0)
        finally:
            c.close()

    threads = [threading.Thread(target=slow_client, daemon=True) for _ in range(100)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        assert len(opened) >= 90
        worst = 0.0
        for _ in range(10):
            t0 = time.monotonic()
            assert get(s, "/healthz", timeout=5)[0] == 200
            worst = max(worst, time.monotonic() - t0)
        assert worst < 1.0 * SLOW, worst
        # Trickling does not reset the per-connection timer forever... see below.
        wait_until(lambda: len(closed) >= 90, 15, interval=0.5,
                   what="slow connections closed by the server")
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    assert s.running()
