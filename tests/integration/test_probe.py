# SPDX-License-Identifier: MIT
"""`scalemetrics check --config FILE --probe`: one round of every source against a live and a
dead Redis; the table's rows, the progress on stderr and the exit code."""

import re
import subprocess

from smtest import CLEAN_ENV, SLOW, free_port, redis_source, server_config, to_yaml


def probe(binary, tmp_path, certs, sources):
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(server_config(free_port(), certs, sources)) + "\n")
    return subprocess.run([str(binary), "check", "--config", str(path), "--probe"],
                          capture_output=True, text=True, timeout=30 * SLOW, env=CLEAN_ENV,
                          stdin=subprocess.DEVNULL)


def rows(out):
    """{source: line} for the table rows (after the SOURCE header)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("SOURCE"))
    res = {}
    for line in lines[start + 1:]:
        m = re.match(r"^(\S+)\s+(\S+)\s+(.*)$", line)
        if m and not line.startswith(" ") and "probed" not in line:
            res[m.group(1)] = line
    return res


def test_live_redis(tmp_path, certs, own_redis, binary):
    r = own_redis.client()
    r.rpush("queue:emails", *range(37))
    r.rpush("queue:sms", *range(5))
    p = probe(binary, tmp_path, certs, [redis_source(own_redis)])
    assert p.returncode == 0, p
    row = rows(p.stdout)["jobs"]
    assert re.match(r"^jobs\s+redis\s+ok\s+2\s+", row), row
    assert 'redis_queue_length{queue="emails"}=37' in row, row
    assert 'redis_queue_length{queue="sms"}=5' in row, row
    assert re.search(r"\d+ ms$", row), row
    assert "probing 'jobs' (redis)..." in p.stderr, p.stderr
    assert "1 source probed, all ok" in p.stdout, p.stdout


def test_dead_redis(tmp_path, certs, own_redis, binary):
    own_redis.kill()
    p = probe(binary, tmp_path, certs, [redis_source(own_redis)])
    assert p.returncode == 1, p
    row = rows(p.stdout)["jobs"]
    # The Redis error verbatim (hiredis: "Connection refused").
    assert re.match(r"^jobs\s+redis\s+FAILED: .*Connection refused", row), row
    assert "FAILED" in p.stderr, p.stderr


def test_live_and_dead(tmp_path, certs, redis_server, binary):
    dead = redis_source(redis_server, name="gone", timeout="300ms",
                        queues=[{"metric": "gone_queue_length", "keys": ["queue:*"]}])
    dead["address"] = f"127.0.0.1:{free_port()}"
    p = probe(binary, tmp_path, certs, [redis_source(redis_server, db=15), dead])
    assert p.returncode == 1, p
    assert "config OK" in p.stdout and "SOURCE" in p.stdout, p.stderr
    got = rows(p.stdout)
    assert re.match(r"^jobs\s+redis\s+ok\s+", got["jobs"]), got
    assert "FAILED:" in got["gone"], got
    assert "probing 'jobs' (redis)..." in p.stderr and "probing 'gone' (redis)..." in p.stderr
    assert "2 sources probed, some FAILED" in p.stdout, p.stdout


def test_check_without_probe_does_not_connect(tmp_path, certs, binary):
    src = {"name": "gone", "type": "redis", "address": f"127.0.0.1:{free_port()}",
           "queues": [{"metric": "redis_queue_length", "keys": ["queue:*"]}]}
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(server_config(free_port(), certs, [src])) + "\n")
    p = subprocess.run([str(binary), "check", "--config", str(path)], capture_output=True,
                       text=True, timeout=30 * SLOW, env=CLEAN_ENV, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p
    assert "probing" not in p.stderr, p.stderr


def test_bad_config_is_not_probed(tmp_path, certs, binary):
    path = tmp_path / "config.yaml"
    path.write_text("sources:\n  - name: jobs\n    type: nope\n")
    p = subprocess.run([str(binary), "check", "--config", str(path), "--probe"],
                       capture_output=True, text=True, timeout=30 * SLOW, env=CLEAN_ENV,
                       stdin=subprocess.DEVNULL)
    assert p.returncode != 0, p
    assert "probing" not in p.stderr, p.stderr
