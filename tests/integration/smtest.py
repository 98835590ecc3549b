# SPDX-License-Identifier: MIT
"""Helpers for the integration tests (the fixtures are in conftest.py): free loopback ports,
a real redis-server, certificates, kubeconfig, config files, HTTPS requests, and the
scalemetrics process itself."""

import fcntl
import hashlib
import http.client
import json
import os
import random
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path


SOURCE_ROOT = Path(os.environ.get("SM_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
BINARY = Path(os.environ.get("SM_BINARY", SOURCE_ROOT / "build" / "scalemetrics")).absolute()
MAKE_CERTS = SOURCE_ROOT / "certs" / "make-certs.sh"
# ASan/UBSan builds start and answer more slowly; every wait scales with this.
SLOW = float(os.environ.get("SM_TEST_SLOWDOWN", "1"))

EXTERNAL = "/apis/external.metrics.k8s.io/v1beta1"
CUSTOM_V1 = "/apis/custom.metrics.k8s.io/v1beta1"
CUSTOM_V2 = "/apis/custom.metrics.k8s.io/v1beta2"

# Child processes must not go through a proxy to reach 127.0.0.1.
CLEAN_ENV = {k: v for k, v in os.environ.items()
             if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}


class Fatal(AssertionError):
    """Raised inside a wait_until predicate to stop waiting at once (the server died)."""


def wait_until(pred, timeout, interval=0.1, what="condition"):
    """Polls pred() until it returns a truthy value; returns it, or raises AssertionError
    with the last value seen."""
    deadline = time.monotonic() + timeout * SLOW
    last = None
    while True:
        try:
            last = pred()
        except Fatal:
            raise
        except Exception as e:  # not up yet, connection reset, 503 yet, ...: keep polling
            last = e
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout * SLOW:.1f}s waiting for {what}; "
                                 f"last: {last!r}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Ports: below Linux's ephemeral range (32768-60999), so no outgoing connection takes a port
# while its server is down for a restart; a lock file per port (so concurrent test runs on
# one machine never pick the same one) and a bind probe (so nothing else holds it).

_PORT_DIR = Path(tempfile.gettempdir()) / "scalemetrics-test-ports"
_port_locks = []


def free_port():
    _PORT_DIR.mkdir(exist_ok=True)
    for _ in range(200):
        port = random.randint(20000, 32000)
        fd = os.open(_PORT_DIR / f"{port}.lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                os.close(fd)
                continue
        _port_locks.append(fd)  # held for the whole session
        return port
    raise RuntimeError("no free loopback port found")


# ---------------------------------------------------------------------------------------------
# Redis


class RedisServer:
    """A real redis-server on a free loopback port. kill() and start() keep the port, so a
    restart looks to the server like the same Redis coming back."""

    def __init__(self, workdir):
        self.port = free_port()
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = None
        self.log = self.dir / "redis.log"

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        assert self.proc is None or self.proc.poll() is not None
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.dir),
             "--logfile", str(self.log), "--daemonize", "no", "--protected-mode", "yes"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=CLEAN_ENV)
        wait_until(lambda: self.client().ping(), 10, what=f"redis on {self.port}")
        return self

    def client(self, db=0):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=2,
                           decode_responses=True)

    def kill(self):
        """SIGKILL: the server sees connections reset and new ones refused."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)




# ---------------------------------------------------------------------------------------------
# Certificates and kubeconfig


def make_certs(outdir, namespace="default"):
    res = subprocess.run(["bash", str(MAKE_CERTS), str(outdir), namespace],
                         capture_output=True, text=True, check=True)
    return res.stdout.strip().splitlines()[-1]  # the caBundle


def write_kubeconfig(path, port, certs):
    """kubeconfig for `kubectl get --raw`: the server's CA, and as user the test client
    certificate. kubectl (clientcmd) prompts for a username and password on HTTPS when a user
    has no credentials at all; with auth mode none the server ignores the certificate."""
    path.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: scalemetrics
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority: {certs["ca"]}
users:
- name: tester
  user:
    client-certificate: {certs["client_cert"]}
    client-key: {certs["client_key"]}
contexts:
- name: scalemetrics
  context:
    cluster: scalemetrics
    user: tester
current-context: scalemetrics
""")
    return path


# ---------------------------------------------------------------------------------------------
# Config files


def _yaml_scalar(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj, indent=0):
    """A small block-style YAML emitter for dicts, lists and scalars (no PyYAML needed)."""
    pad = "  " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}{k}:")
                out.append(to_yaml(v, indent + 1))
            elif isinstance(v, (dict, list)):
                out.append(f"{pad}{k}: {'{}' if isinstance(v, dict) else '[]'}")
            else:
                out.append(f"{pad}{k}: {_yaml_scalar(v)}")
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, (dict, list)) and v:
                inner = to_yaml(v, indent + 1).split("\n")
                out.append(f"{pad}- {inner[0].lstrip()}")
                out.extend(inner[1:])
            else:
                out.append(f"{pad}- {_yaml_scalar(v)}")
    else:
        out.append(pad + _yaml_scalar(obj))
    return "\n".join(out)


def redis_source(redis, db=0, name="jobs", queues=None, **extra):
    """A redis source as docs/configuration.md describes it, with the test timings."""
    src = {"name": name, "type": "redis", "address": redis.address, "db": db,
           "interval": "1s", "timeout": "500ms", "max_age": "3s",
           "queues": queues if queues is not None else
           [{"metric": "redis_queue_length", "keys": ["queue:*"]}]}
    src.update(extra)
    return src


def server_config(port, certs, sources, **server_extra):
    server = {"listen": f"127.0.0.1:{port}",
              "tls": {"cert_file": str(certs["cert"]), "key_file": str(certs["key"])},
              "auth": {"mode": "none"},
              "namespace": "default"}
    server.update(server_extra)
    return {"server": server, "sources": sources}


# ---------------------------------------------------------------------------------------------
# HTTP


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def content_type(self):
        return self.headers.get("Content-Type")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {self.content_type} {self.body[:300]!r}>"


def tls_context(ca=None):
    if ca:
        ctx = ssl.create_default_context(cafile=str(ca))
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def request(port, path, method="GET", headers=None, ca=None, body=None, timeout=10,
            host="127.0.0.1", cert=None):
    ctx = tls_context(ca)
    if cert:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=timeout * SLOW)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, r.headers, data)
    finally:
        conn.close()


def peer_fingerprint(port):
    """SHA-256 of the DER certificate a new TLS connection is served."""
    with socket.create_connection(("127.0.0.1", port), timeout=5 * SLOW) as raw:
        with tls_context().wrap_socket(raw, server_hostname="localhost") as s:
            return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()


def cert_fingerprint(pem_path):
    der = ssl.PEM_cert_to_DER_cert(Path(pem_path).read_text())
    return hashlib.sha256(der).hexdigest()


# ---------------------------------------------------------------------------------------------
# The server


class Server:
    def __init__(self, workdir, config, port, certs, binary=BINARY):
        self.dir = Path(workdir)
        self.port = port
        self.certs = certs
        self.config_path = self.dir / "config.yaml"
        self.config_path.write_text(to_yaml(config) + "\n")
        self.log_path = self.dir / "server.log"
        self.binary = binary
        self.proc = None
        self.kubeconfig = write_kubeconfig(self.dir / "kubeconfig", port, certs)
        self.env = dict(CLEAN_ENV)  # the process's environment; tests may change it

    def start(self, wait=True):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(self.binary), "serve", "--config", str(self.config_path)],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                     env=self.env, cwd=self.dir)
        if wait:
            wait_until(self._ready, 15, interval=0.1, what="/readyz")
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise Fatal(f"scalemetrics exited with {self.proc.returncode}:\n"
                                 f"{self.log_text()}")
        try:
            return request(self.port, "/readyz", ca=self.certs["ca"], timeout=2).status == 200
        except (OSError, http.client.HTTPException):
            return False

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def get(self, path, **kw):
        kw.setdefault("ca", self.certs["ca"])
        return request(self.port, path, **kw)

    def json(self, path, **kw):
        """GET that must answer 200 application/json; returns the decoded body."""
        r = self.get(path, **kw)
        assert r.status == 200, f"GET {path}: {r!r}"
        assert r.content_type == "application/json", f"GET {path}: {r!r}"
        return r.json()

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def stop(self, timeout=20):
        """SIGTERM; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                self.log.close()
                raise AssertionError(f"scalemetrics did not exit within {timeout}s of SIGTERM:\n"
                                     f"{self.log_text()}")
        self.log.close()
        return self.proc.returncode


class ServerFactory:
    def __init__(self, tmp_root, certs, binary):
        self.tmp_root = tmp_root
        self.certs = certs
        self.binary = binary
        self.servers = []

    def __call__(self, sources, certs=None, wait=True, **server_extra):
        """Starts scalemetrics with these sources (and server.* overrides); waits for
        /readyz unless wait=False."""
        certs = certs or self.certs
        port = free_port()
        d = Path(tempfile.mkdtemp(prefix="server-", dir=self.tmp_root))
        s = Server(d, server_config(port, certs, sources, **server_extra), port, certs,
                   self.binary)
        self.servers.append(s)
        return s.start(wait=wait)

    def stop_all(self):
        """Stops every server still running; each must exit 0 on SIGTERM."""
        failures = []
        for s in self.servers:
            if s.proc is None or s.log.closed:
                continue
            try:
                rc = s.stop()
            except AssertionError as e:
                failures.append(str(e))
                continue
            if rc != 0:
                failures.append(f"scalemetrics exited with {rc} after SIGTERM "
                                f"(pid {s.pid}):\n{s.log_text()}")
        self.servers.clear()
        return failures


# ---------------------------------------------------------------------------------------------
# kubectl and curl


def run_curl(server, path, *args):
    """curl with real TLS verification against the test CA; stdout ends with
    "\nHTTP_CODE CONTENT_TYPE"."""
    return subprocess.run(["curl", "-sS", "--noproxy", "*", "--cacert", str(server.certs["ca"]),
                           "-w", "\n%{http_code} %{content_type}", *args,
                           f"https://127.0.0.1:{server.port}{path}"],
                          capture_output=True, text=True, timeout=30 * SLOW, env=CLEAN_ENV)


def kubectl_raw(server, path):
    """`kubectl get --raw PATH` against the server; returns CompletedProcess."""
    return subprocess.run(["kubectl", "--kubeconfig", str(server.kubeconfig), "get", "--raw", path],
                          capture_output=True, text=True, timeout=30 * SLOW, env=CLEAN_ENV,
                          stdin=subprocess.DEVNULL)


# ---------------------------------------------------------------------------------------------
# Helpers used by several test modules


def external_items(server, metric, selector=None, namespace="default"):
    path = f"{EXTERNAL}/namespaces/{namespace}/{metric}"
    if selector:
        path += "?labelSelector=" + selector
    doc = server.json(path)
    assert doc["kind"] == "ExternalMetricValueList", doc
    return doc["items"]


def wait_external_value(server, metric, selector, value, timeout=3.0):
    """Polls until exactly one item with this value; returns the item."""
    def check():
        items = external_items(server, metric, selector)
        return items[0] if len(items) == 1 and items[0]["value"] == value else None
    return wait_until(check, timeout, what=f"{metric}{{{selector}}} == {value}")


def assert_status(r, code, reason):
    """The response is a metav1.Status failure with this code and reason."""
    assert r.status == code, r
    assert r.content_type == "application/json", r
    doc = r.json()
    assert doc["kind"] == "Status", doc
    assert doc["apiVersion"] == "v1", doc
    assert doc["status"] == "Failure", doc
    assert doc["code"] == code, doc
    assert doc["reason"] == reason, doc
    assert isinstance(doc.get("message"), str) and doc["message"], doc
    return doc
