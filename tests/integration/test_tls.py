# SPDX-License-Identifier: MIT
"""TLS: the configured certificate is served, reloaded when its files change (same process),
TLS >= 1.2, no h2 in ALPN, client certificates optional (docs/api.md "Must-haves" and
"TLS and client certificates")."""

import os
import socket
import ssl
import time

import pytest

from smtest import (SLOW, cert_fingerprint, make_certs, peer_fingerprint, redis_source, request,
                    tls_context, wait_until)


@pytest.fixture
def own_certs(tmp_path, certs):
    d = tmp_path / "serving"
    make_certs(d)
    return dict(certs, dir=d, ca=d / "ca.crt", cert=d / "tls.crt", key=d / "tls.key")


def replace_file(src, dst):
    tmp = f"{dst}.tmp"
    with open(src, "rb") as f, open(tmp, "wb") as g:
        g.write(f.read())
    os.replace(tmp, dst)


def test_serves_configured_certificate(start_server, redis_server, redis_db, own_certs):
    s = start_server([redis_source(redis_server, redis_db)], certs=own_certs)
    assert peer_fingerprint(s.port) == cert_fingerprint(own_certs["cert"])
    # Verifies against the CA under the service's DNS names and localhost.
    r = request(s.port, "/healthz", ca=own_certs["ca"], host="localhost")
    assert r.status == 200


def test_reload_on_file_replace(start_server, redis_server, redis_db, own_certs, tmp_path):
    s = start_server([redis_source(redis_server, redis_db)], certs=own_certs)
    pid = s.pid
    old = cert_fingerprint(own_certs["cert"])
    assert peer_fingerprint(s.port) == old

    new_dir = tmp_path / "rotated"
    make_certs(new_dir)  # a new CA, so a new serial and key
    new = cert_fingerprint(new_dir / "tls.crt")
    assert new != old
    replace_file(new_dir / "tls.key", own_certs["key"])
    replace_file(new_dir / "tls.crt", own_certs["cert"])
    time.sleep(0.2)
    # Touch both again, so a watcher that caught the pair half-written sees one more change.
    for p in (own_certs["key"], own_certs["cert"]):
        os.utime(p)

    wait_until(lambda: peer_fingerprint(s.port) == new, 5, interval=0.2,
               what="the new certificate on new connections")
    assert s.running() and s.pid == pid
    r = request(s.port, "/healthz", ca=new_dir / "ca.crt")
    assert r.status == 200, r


def test_reload_kubernetes_secret_volume(start_server, redis_server, redis_db, certs, tmp_path):
    """A mounted Secret: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>; an update swaps
    the ..data symlink atomically."""
    vol = tmp_path / "secret"
    vol.mkdir()
    first, second = vol / "..2024_01", vol / "..2024_02"
    make_certs(first)
    make_certs(second)
    os.symlink(first.name, vol / "..data")
    for f in ("tls.crt", "tls.key"):
        os.symlink(f"..data/{f}", vol / f)
    mine = dict(certs, ca=first / "ca.crt", cert=vol / "tls.crt", key=vol / "tls.key")
    s = start_server([redis_source(redis_server, redis_db)], certs=mine)
    pid = s.pid
    assert peer_fingerprint(s.port) == cert_fingerprint(first / "tls.crt")

    os.symlink(second.name, vol / "..data_tmp")
    os.replace(vol / "..data_tmp", vol / "..data")
    new = cert_fingerprint(second / "tls.crt")
    wait_until(lambda: peer_fingerprint(s.port) == new, 5, interval=0.2,
               what="the certificate of the swapped secret")
    assert s.running() and s.pid == pid


def test_broken_replacement_keeps_old_certificate(start_server, redis_server, redis_db,
                                                  own_certs, tmp_path):
    s = start_server([redis_source(redis_server, redis_db)], certs=own_certs)
    old = cert_fingerprint(own_certs["cert"])
    other = tmp_path / "other"
    make_certs(other)
    # A key that does not match the certificate: the server must keep serving the old pair.
    replace_file(other / "tls.key", own_certs["key"])
    time.sleep(2 * SLOW)
    assert peer_fingerprint(s.port) == old
    r = request(s.port, "/healthz", ca=own_certs["ca"])
    assert r.status == 200
    assert s.running()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # offering TLS 1.1 on purpose
def test_tls_versions_and_alpn(start_server, redis_server, redis_db):
    s = start_server([redis_source(redis_server, redis_db)])
    old = tls_context()
    old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client really offer TLS 1.0/1.1
    with pytest.raises((ssl.SSLError, OSError)):
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as raw:
            with old.wrap_socket(raw, server_hostname="localhost"):
                pass

    ctx = tls_context(s.certs["ca"])
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", s.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            assert tls.selected_alpn_protocol() in (None, "http/1.1")


def test_client_certificate_is_optional(start_server, redis_server, redis_db, certs):
    s = start_server([redis_source(redis_server, redis_db)])
    assert s.get("/healthz").status == 200
    r = s.get("/healthz", cert=(certs["front_proxy_cert"], certs["front_proxy_key"]))
    assert r.status == 200, r
