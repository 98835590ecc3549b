# SPDX-License-Identifier: MIT
"""The command line: `check --config FILE` reports every error as file:line:col: message,
`version`, and `serve` refusing a bad config."""

import re
import subprocess

import pytest

from smtest import CLEAN_ENV, SLOW

GOOD = """\
server:
  listen: "127.0.0.1:18443"
  auth:
    mode: none
sources:
  - name: jobs
    type: redis
    address: "127.0.0.1:6379"
    interval: 5s
    queues:
      - metric: redis_queue_length
        keys: ["queue:*"]
        label: queue
"""

# Two errors in one file: an unknown key (line 9, column 5) and a bad duration (line 10).
TWO_ERRORS = """\
server:
  listen: "127.0.0.1:18443"
  auth:
    mode: none
sources:
  - name: jobs
    type: redis
    address: "127.0.0.1:6379"
    intervall: 5s
    timeout: fast
    queues:
      - metric: redis_queue_length
        keys: ["queue:*"]
"""


def run(binary, *args, timeout=20):
    return subprocess.run([str(binary), *args], capture_output=True, text=True,
                          timeout=timeout * SLOW, env=CLEAN_ENV, stdin=subprocess.DEVNULL)


def error_lines(p, path):
    """(line, col, message) for each `path:line:col: message` line printed."""
    pat = re.compile(r"^" + re.escape(str(path)) + r":(\d+):(\d+): (.+)$")
    out = []
    for line in (p.stdout + p.stderr).splitlines():
        m = pat.match(line.strip())
        if m:
            out.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    return out


def test_version(binary):
    p = run(binary, "version")
    assert p.returncode == 0, p
    assert re.search(r"\d+\.\d+\.\d+", p.stdout), p.stdout


def test_check_good_config(binary, tmp_path):
    cfg = tmp_path / "good.yaml"
    cfg.write_text(GOOD)
    p = run(binary, "check", "--config", str(cfg))
    assert p.returncode == 0, p


def test_check_reports_every_error(binary, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(TWO_ERRORS)
    p = run(binary, "check", "--config", str(cfg))
    assert p.returncode != 0, p
    errs = error_lines(p, cfg)
    assert len(errs) == 2, (p.stdout, p.stderr)
    (l1, c1, m1), (l2, _, m2) = sorted(errs)
    assert (l1, c1) == (9, 5), errs
    assert "intervall" in m1, errs
    assert l2 == 10, errs
    assert "timeout" in m2 or "fast" in m2 or "duration" in m2, errs


@pytest.mark.parametrize("text,line,col,word", [
    ("serverr:\n  listen: \"127.0.0.1:1\"\n", 1, 1, "serverr"),
    ("server:\n  listen: \"127.0.0.1:1\"\n  auth:\n    mode: maybe\n", 4, None, "maybe"),
    ("server:\n  listen: [\n", None, None, None),  # YAML syntax error
    (GOOD.replace("type: redis", "type: mongodb"), 7, None, "mongodb"),
    (GOOD.replace("name: jobs", "name: Jobs_1"), 6, None, "Jobs_1"),
    (GOOD + "  - name: jobs\n    type: redis\n    address: \"127.0.0.1:6379\"\n"
     "    queues:\n      - metric: other\n        keys: [\"x\"]\n", 14, None, "jobs"),
])
def test_check_single_error(binary, tmp_path, text, line, col, word):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    p = run(binary, "check", "--config", str(cfg))
    assert p.returncode != 0, p
    errs = error_lines(p, cfg)
    assert len(errs) >= 1, (p.stdout, p.stderr)
    if line is not None:
        assert any(e[0] == line for e in errs), errs
    if col is not None:
        assert any(e[1] == col for e in errs), errs
    if word is not None:
        assert any(word in e[2] for e in errs), errs


def test_check_missing_file(binary, tmp_path):
    missing = tmp_path / "nope.yaml"
    p = run(binary, "check", "--config", str(missing))
    assert p.returncode != 0, p
    assert str(missing) in p.stdout + p.stderr, p


def test_serve_refuses_a_bad_config(binary, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(TWO_ERRORS)
    p = run(binary, "serve", "--config", str(cfg))
    assert p.returncode != 0, p
    assert len(error_lines(p, cfg)) == 2, (p.stdout, p.stderr)


def test_unknown_command(binary):
    p = run(binary, "frobnicate")
    assert p.returncode != 0, p
