# SPDX-License-Identifier: MIT
"""HTTP behaviour the Kubernetes clients rely on (docs/api.md "HTTP details") and limits:
keep-alive, concurrent clients, oversized requests, no Retry-After, shutdown with idle and
half-sent connections."""

import http.client
import socket
import threading
import time

import pytest

from smtest import (EXTERNAL, SLOW, redis_source, tls_context, wait_external_value)

EMAILS = f"{EXTERNAL}/namespaces/default/redis_queue_length?labelSelector=queue%3Demails"


@pytest.fixture(scope="module")
def srv(module_server_factory, redis_server, redis_db):
    redis_server.client(redis_db).lpush("queue:emails", *range(11))
    s = module_server_factory([redis_source(redis_server, redis_db)])
    wait_external_value(s, "redis_queue_length", "queue%3Demails", "11")
    return s


def connection(srv):
    return http.client.HTTPSConnection("127.0.0.1", srv.port, context=tls_context(srv.certs["ca"]),
                                       timeout=10 * SLOW)


def test_keep_alive(srv):
    """Go clients reuse connections: several requests on one connection."""
    conn = connection(srv)
    try:
        for path in (EMAILS, f"{EXTERNAL}", "/healthz", EMAILS, f"{EXTERNAL}/namespaces/x/nope"):
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read()
            assert r.status in (200, 404), (path, r.status, body)
            assert r.getheader("Content-Length") == str(len(body)) or \
                r.getheader("Transfer-Encoding") == "chunked", r.getheaders()
    finally:
        conn.close()


def test_head_content_length_matches_get(srv):
    get = srv.get(EMAILS)
    head = srv.get(EMAILS, method="HEAD")
    assert head.status == 200 and head.body == b""
    if head.headers.get("Content-Length") is not None:
        assert int(head.headers["Content-Length"]) == len(get.body)


def test_concurrent_clients(srv):
    errors = []

    def client():
        try:
            for _ in range(5):
                r = srv.get(EMAILS)
                if r.status != 200 or r.json()["items"][0]["value"] != "11":
                    errors.append(r)
        except Exception as e:  # collected, reported below
            errors.append(e)

    threads = [threading.Thread(target=client) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60 * SLOW)
    assert not errors, errors[:3]


def test_oversized_url_is_refused_cleanly(srv):
    r = srv.get(f"{EXTERNAL}/namespaces/default/" + "a" * 40000)
    assert 400 <= r.status < 500, r
    assert srv.get("/healthz").status == 200


def test_oversized_header_is_refused_cleanly(srv):
    try:
        r = srv.get(EMAILS, headers={"X-Big": "b" * 64000})
        assert 400 <= r.status < 500, r
    except (ConnectionError, http.client.HTTPException):
        pass  # closing the connection on an oversized request is fine too
    assert srv.get("/healthz").status == 200


def test_many_header_lines_within_the_limits_are_served(srv):
    # A front-proxy user in ~250 groups sends ~250 X-Remote-Group lines: within the byte
    # limit (16 KiB) and the line cap (256), so it must be answered, not refused by
    # libmicrohttpd running out of its per-connection memory.
    headers = {f"X-Pad-{i:03d}": "g" * 48 for i in range(250)}
    assert sum(len(k) + len(v) + 4 for k, v in headers.items()) < 16000
    r = srv.get(EMAILS, headers=headers)
    assert r.status == 200, (r.status, r.body[:200])


def test_no_retry_after_on_errors(srv):
    r = srv.get(f"{EXTERNAL}/namespaces/default/no_such_metric")
    assert r.status == 404
    assert "Retry-After" not in r.headers


def test_sigterm_with_idle_connections_is_prompt(start_server, redis_server, redis_db):
    """Idle keep-alive connections (the aggregator always holds some) never delay shutdown."""
    s = start_server([redis_source(redis_server, redis_db)])
    idle = socket.create_connection(("127.0.0.1", s.port), timeout=5)  # no TLS handshake
    kept = connection(s)
    kept.request("GET", "/healthz")
    kept.getresponse().read()  # a finished request on a kept-alive connection
    time.sleep(0.3)
    t0 = time.monotonic()
    rc = s.stop(timeout=15)
    took = time.monotonic() - t0
    idle.close()
    kept.close()
    assert rc == 0, s.log_text()
    assert took < 3 * SLOW, f"SIGTERM took {took:.1f}s with idle connections open"


def test_sigterm_with_a_stalled_request_is_bounded(start_server, redis_server, redis_db):
    """A client that never finishes its request delays shutdown at most the drain bound
    (10 s, or connection_timeout when shorter)."""
    s = start_server([redis_source(redis_server, redis_db)])
    raw = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    half = tls_context().wrap_socket(raw, server_hostname="localhost")
    half.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # no final CRLF
    time.sleep(0.3)
    t0 = time.monotonic()
    rc = s.stop(timeout=20)
    took = time.monotonic() - t0
    half.close()
    assert rc == 0, s.log_text()
    assert took < 12 * SLOW, f"SIGTERM took {took:.1f}s with a stalled request"
