# SPDX-License-Identifier: MIT
"""A small stand-in for the Kubernetes API server, on 127.0.0.1, over HTTP or HTTPS.

It answers what scalemetrics asks of a real API server, with the real JSON shapes:
  GET /api/v1/namespaces/NS/pods[?labelSelector=...]   a v1 PodList (equality selectors:
                                                       k=v, k==v, k!=v, k, !k, comma-joined)
  POST /apis/authentication.k8s.io/v1/tokenreviews     a TokenReview answer (201) from the
                                                       `tokens` table (token -> user dict)
  POST /apis/authorization.k8s.io/v1/subjectaccessreviews  a SubjectAccessReview answer (201)
                                                       from the `sar_rules` table
  GET  /api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication
                                                       the `auth_configmap` data (404 if None)
Routes live in ROUTES: each is (method, compiled path regex, handler(standin, request, match)
-> (status, body dict)).

Requests are recorded (method, path, Authorization header) so tests can check them, and every
POST body (parsed JSON) in `posts` as (path, body). With client_ca (HTTPS), a client
certificate is asked for and verified, and its CN recorded per request in `client_cns`. With a
token set, a request without "Authorization: Bearer TOKEN" gets the real 401 Status.
`review_status` makes both review endpoints answer that HTTP status with a Status document
instead (e.g. 403: no RBAC).

Use in-process:  k = KubeStandin().start(); k.set_pods([...]); ...; k.stop()
or run:          /usr/bin/python3 kube_standin.py PORT   (no pods; for manual poking)
"""

import json
import re
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def status_doc(code, reason, message):
    """A metav1.Status failure, as the API server sends it."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def make_pod(name, namespace="default", ip="127.0.0.1", labels=None, phase="Running",
             ready=True, uid=None):
    """A v1 Pod as the API server returns it in a list (the fields a client reads, plus
    enough of the rest to be realistic)."""
    conditions = [
        {"type": "Initialized", "status": "True", "lastProbeTime": None,
         "lastTransitionTime": "2024-01-01T00:00:00Z"},
        {"type": "Ready", "status": "True" if ready else "False", "lastProbeTime": None,
         "lastTransitionTime": "2024-01-01T00:00:05Z"},
        {"type": "ContainersReady", "status": "True" if ready else "False",
         "lastProbeTime": None, "lastTransitionTime": "2024-01-01T00:00:05Z"},
        {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
         "lastTransitionTime": "2024-01-01T00:00:00Z"},
    ]
    status = {"phase": phase, "conditions": conditions, "hostIP": "10.0.0.10",
              "startTime": "2024-01-01T00:00:00Z", "qosClass": "BestEffort"}
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    return {
        "metadata": {
            "name": name, "namespace": namespace, "uid": uid or str(uuid.uuid4()),
            "resourceVersion": "1", "creationTimestamp": "2024-01-01T00:00:00Z",
            "labels": dict(labels or {}),
        },
        "spec": {"containers": [{"name": "app", "image": "example/app:1"}],
                 "nodeName": "node-1", "restartPolicy": "Always"},
        "status": status,
    }


def parse_selector(text):
    """Equality-based label selector -> list of (op, key, value); raises ValueError."""
    reqs = []
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        if "!=" in part:
            k, v = part.split("!=", 1)
            reqs.append(("!=", k.strip(), v.strip()))
        elif "==" in part:
            k, v = part.split("==", 1)
            reqs.append(("=", k.strip(), v.strip()))
        elif "=" in part:
            k, v = part.split("=", 1)
            reqs.append(("=", k.strip(), v.strip()))
        elif part.startswith("!"):
            reqs.append(("!", part[1:].strip(), None))
        elif re.fullmatch(r"[A-Za-z0-9./_-]+", part):
            reqs.append(("exists", part, None))
        else:
            raise ValueError(f"unable to parse requirement: {part!r}")
    return reqs


def selector_matches(reqs, labels):
    for op, k, v in reqs:
        if op == "=" and labels.get(k) != v:
            return False
        if op == "!=" and labels.get(k) == v:
            return False
        if op == "exists" and k not in labels:
            return False
        if op == "!" and k in labels:
            return False
    return True


def list_pods(standin, req, m):
    ns = m.group(1)
    try:
        reqs = parse_selector(req.query.get("labelSelector", [""])[0])
    except ValueError as e:
        return 400, status_doc(400, "BadRequest", str(e))
    with standin.lock:
        items = [p for p in standin.pods
                 if p["metadata"]["namespace"] == ns
                 and selector_matches(reqs, p["metadata"].get("labels", {}))]
        rv = str(standin.resource_version)
    return 200, {"kind": "PodList", "apiVersion": "v1",
                 "metadata": {"resourceVersion": rv}, "items": items}


def token_review(standin, req, m):
    """authentication.k8s.io/v1 TokenReview, as kube-apiserver answers it (201)."""
    body = req.json() or {}
    spec = body.get("spec") or {}
    token = spec.get("token", "")
    with standin.lock:
        user = standin.tokens.get(token)
    status = {}
    if user is not None:
        status = {"authenticated": True, "user": user}
        if spec.get("audiences"):
            status["audiences"] = spec["audiences"]
    else:
        status = {"error": "invalid bearer token"}  # authenticated omitted (false)
    return 201, {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
                 "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}


def _rule_matches(rule, spec):
    attrs = spec.get("resourceAttributes") or spec.get("nonResourceAttributes") or {}
    for k, v in rule.items():
        if k in ("allowed", "denied", "reason"):
            continue
        if k == "user":
            if spec.get("user") != v:
                return False
        elif k == "group":
            if v not in (spec.get("groups") or []):
                return False
        elif k == "nonResource":
            if bool(spec.get("nonResourceAttributes")) != v:
                return False
        elif attrs.get(k, "") != v:
            return False
    return True


def subject_access_review(standin, req, m):
    """authorization.k8s.io/v1 SubjectAccessReview (201): the first rule of sar_rules whose
    keys all match decides (keys: user, group (one of spec.groups), nonResource (bool), or any
    resourceAttributes / nonResourceAttributes field; the rule's allowed, denied, reason go
    to the status). No rule: allowed false, no opinion."""
    body = req.json() or {}
    spec = body.get("spec") or {}
    status = {"allowed": False}
    with standin.lock:
        rules = list(standin.sar_rules)
    for rule in rules:
        if _rule_matches(rule, spec):
            status = {"allowed": bool(rule.get("allowed", False))}
            if rule.get("denied"):
                status["denied"] = True
            if rule.get("reason"):
                status["reason"] = rule["reason"]
            break
    return 201, {"kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                 "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}


def auth_configmap(standin, req, m):
    with standin.lock:
        data = standin.auth_configmap
    if data is None:
        return 404, status_doc(404, "NotFound", 'configmaps "extension-apiserver-authentication"'
                               " not found")
    return 200, {"kind": "ConfigMap", "apiVersion": "v1",
                 "metadata": {"name": "extension-apiserver-authentication",
                              "namespace": "kube-system", "resourceVersion": "1"},
                 "data": dict(data)}


ROUTES = [
    ("GET", re.compile(r"^/api/v1/namespaces/([a-z0-9-]+)/pods$"), list_pods),
    ("POST", re.compile(r"^/apis/authentication\.k8s\.io/v1/tokenreviews$"), token_review),
    ("POST", re.compile(r"^/apis/authorization\.k8s\.io/v1/subjectaccessreviews$"),
     subject_access_review),
    ("GET", re.compile(r"^/api/v1/namespaces/kube-system/configmaps/"
                       r"extension-apiserver-authentication$"), auth_configmap),
]

REVIEW_PATHS = ("/apis/authentication.k8s.io/v1/tokenreviews",
                "/apis/authorization.k8s.io/v1/subjectaccessreviews")


class _Request:
    def __init__(self, handler, method):
        u = urlsplit(handler.path)
        self.method = method
        self.path = u.path
        self.query = parse_qs(u.query)
        self.headers = handler.headers
        n = int(handler.headers.get("Content-Length") or 0)
        self.body = handler.rfile.read(n) if n else b""

    def json(self):
        return json.loads(self.body or b"null")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _serve(self, method):
        standin = self.server.standin
        req = _Request(self, method)
        auth = self.headers.get("Authorization")
        peer = self.connection.getpeercert() if hasattr(self.connection, "getpeercert") else None
        cn = next((v for rdn in (peer or {}).get("subject", ()) for k, v in rdn
                   if k == "commonName"), None)
        with standin.lock:
            standin.requests.append((method, self.path, auth))
            standin.client_cns.append(cn)
            if method == "POST":
                try:
                    standin.posts.append((req.path, req.json()))
                except ValueError:
                    standin.posts.append((req.path, req.body))
            fail = standin.fail_with
            review_status = standin.review_status
            review_delay = standin.review_delay
        if review_delay and req.path in REVIEW_PATHS:
            time.sleep(review_delay)
        if review_status and req.path in REVIEW_PATHS:
            status, body = review_status, status_doc(
                review_status, "Forbidden" if review_status == 403 else "InternalError",
                "injected review failure")
        elif fail:
            status, body = fail, status_doc(fail, "InternalError", "injected failure")
        elif standin.token and auth != f"Bearer {standin.token}":
            status, body = 401, status_doc(401, "Unauthorized", "Unauthorized")
        else:
            status, body = 404, status_doc(404, "NotFound", "the server could not find the "
                                           "requested resource")
            for meth, rx, fn in ROUTES:
                m = rx.match(req.path)
                if m and meth == method:
                    status, body = fn(standin, req, m)
                    break
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")


class KubeStandin:
    def __init__(self, port=0, certfile=None, keyfile=None, token=None, client_ca=None):
        self.lock = threading.Lock()
        self.pods = []
        self.resource_version = 1
        self.requests = []
        self.token = token
        self.fail_with = None  # an HTTP status to answer everything with
        self.posts = []  # (path, parsed JSON body) of every POST
        self.tokens = {}  # TokenReview: token -> user {"username", "uid", "groups", "extra"}
        self.sar_rules = []  # SubjectAccessReview rules, see subject_access_review()
        self.auth_configmap = None  # data of kube-system/extension-apiserver-authentication
        self.review_status = None  # answer reviews with this HTTP status instead
        self.review_delay = 0  # seconds to wait before answering a review
        self.client_cns = []  # with client_ca: the CN of each request's client certificate
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.standin = self
        self.scheme = "http"
        if certfile:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(certfile), str(keyfile))
            if client_ca:
                ctx.load_verify_locations(str(client_ca))
                ctx.verify_mode = ssl.CERT_OPTIONAL
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.port = self.httpd.server_address[1]
        self.thread = None

    @property
    def url(self):
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def reviews(self, kind):
        """The bodies of the reviews received: kind "TokenReview" or "SubjectAccessReview"."""
        with self.lock:
            return [b for _, b in self.posts if isinstance(b, dict) and b.get("kind") == kind]

    def clear(self):
        with self.lock:
            self.requests.clear()
            self.posts.clear()
            self.client_cns.clear()

    def set_pods(self, pods):
        with self.lock:
            self.pods = list(pods)
            self.resource_version += 1


if __name__ == "__main__":
    k = KubeStandin(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(k.url, flush=True)
    k.httpd.serve_forever()
