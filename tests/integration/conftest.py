# SPDX-License-Identifier: MIT
"""pytest fixtures for the integration tests (helpers live in smtest.py): a real
redis-server, certificates from certs/make-certs.sh, the scalemetrics binary started with a
generated config and stopped with SIGTERM (exit code 0 required), kubectl and curl.

Run: /usr/bin/python3 -m pytest tests/integration   (SM_BINARY=..., default build/scalemetrics)"""

import shutil
import tempfile
from pathlib import Path

import pytest

from smtest import (BINARY, RedisServer, ServerFactory, kubectl_raw, make_certs, run_curl)


@pytest.fixture(scope="session")
def tmp_root():
    d = Path(tempfile.mkdtemp(prefix="sm-it-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server(tmp_root):
    """The shared Redis: tests isolate themselves by database number (redis_db)."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    r = RedisServer(tmp_root / "redis").start()
    yield r
    r.stop()


_next_db = iter(range(1, 16))


@pytest.fixture(scope="module")
def redis_db(redis_server):
    """A database number of the shared Redis for one test module, flushed."""
    db = next(_next_db)
    redis_server.client(db).flushdb()
    return db


@pytest.fixture
def own_redis(tmp_root):
    """A Redis of one's own, for tests that kill it."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    r = RedisServer(tempfile.mkdtemp(prefix="redis-", dir=tmp_root)).start()
    yield r
    r.stop()


@pytest.fixture(scope="session")
def certs(tmp_root):
    d = tmp_root / "certs"
    bundle = make_certs(d)
    return {"dir": d, "ca": d / "ca.crt", "cert": d / "tls.crt", "key": d / "tls.key",
            "ca_bundle": bundle,
            "front_proxy_ca": d / "front-proxy-ca.crt",
            "front_proxy_cert": d / "front-proxy-client.crt",
            "front_proxy_key": d / "front-proxy-client.key",
            "client_cert": d / "client.crt", "client_key": d / "client.key"}


@pytest.fixture(scope="session")
def binary():
    if not BINARY.exists():
        pytest.fail(f"scalemetrics binary not found at {BINARY} (set SM_BINARY)")
    return BINARY


@pytest.fixture
def start_server(tmp_root, certs, binary):
    """Function-scoped factory: start_server(sources, **server_overrides) -> Server."""
    f = ServerFactory(tmp_root, certs, binary)
    yield f
    failures = f.stop_all()
    assert not failures, "\n".join(failures)


@pytest.fixture(scope="module")
def module_server_factory(tmp_root, certs, binary):
    """Module-scoped factory, for servers shared by the tests of one module."""
    f = ServerFactory(tmp_root, certs, binary)
    yield f
    failures = f.stop_all()
    assert not failures, "\n".join(failures)


@pytest.fixture(scope="session")
def kubectl():
    if not shutil.which("kubectl"):
        pytest.skip("kubectl is not installed (Debian: apt-get install kubernetes-client)")
    return kubectl_raw


@pytest.fixture(scope="session")
def curl():
    if not shutil.which("curl"):
        pytest.skip("curl is not installed")
    return run_curl

