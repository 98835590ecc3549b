# SPDX-License-Identifier: MIT
"""Fixtures for the image suite: the container image built by scripts/image.sh (or reused
when the tag was built from this very commit), run with podman as a Deployment would run it.

podman here: root, `--runtime runc` (crun fails under cgroup v1 hybrid mode), limits no higher
than the caller's (`--ulimit`), `--network host` (so the container shares the loopback with
the real redis-server the tests start and with the tests themselves).

Where podman cannot run or the image cannot be had (scripts/image.sh exits 77) the whole suite
is one skipped test saying why (test_build.py); a build that fails is that test failing with
the build's log."""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

from smtest import CLEAN_ENV, SOURCE_ROOT, RedisServer  # noqa: E402

ARTIFACTS = Path(os.environ.get("SM_TEST_ARTIFACTS") or tempfile.gettempdir()) / "image"
RUNTIME = os.environ.get("SM_PODMAN_RUNTIME", "runc")
PODMAN = ["podman", "--runtime", RUNTIME]
# Containers here cannot raise limits above the caller's hard limits (no CAP_SYS_RESOURCE).
ULIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]
BUILD_TIMEOUT = 900


def podman(*args, timeout=60, check=True):
    proc = subprocess.run(PODMAN + list(args), capture_output=True, text=True, timeout=timeout,
                          env=CLEAN_ENV, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout}{proc.stderr}")
    return proc


def build_image():
    """(image reference, seconds, None) or (None, None, (kind, text)) with kind "skip" or
    "fail"."""
    if os.environ.get("SM_IMAGE_SKIP"):
        return None, None, ("skip", f"SM_IMAGE_SKIP={os.environ['SM_IMAGE_SKIP']}")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "image-build.log"
    start = time.monotonic()
    try:
        with open(log, "w") as f:
            proc = subprocess.run(["bash", str(SOURCE_ROOT / "scripts" / "image.sh"), "--reuse"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=f,
                                  text=True, timeout=BUILD_TIMEOUT, env=CLEAN_ENV)
    except subprocess.TimeoutExpired:
        return None, None, ("fail", f"scripts/image.sh took more than {BUILD_TIMEOUT}s; "
                                    f"log: {log}\n{tail(log)}")
    seconds = time.monotonic() - start
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 77:
        why = [ln for ln in tail(log, 20).splitlines() if "cannot build here" in ln]
        return None, None, ("skip", (why[-1] if why else "scripts/image.sh exited 77").strip())
    if proc.returncode != 0 or not lines:
        return None, None, ("fail", f"scripts/image.sh exited {proc.returncode}; log: {log}\n"
                                    f"{tail(log)}")
    return lines[-1], seconds, None


def tail(path, n=40):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


IMAGE, BUILD_SECONDS, BUILD_PROBLEM = build_image()

if BUILD_PROBLEM:
    # One test (test_build.py), one clear line: not every case skipped with the same words.
    collect_ignore = ["test_image.py"]


@pytest.fixture(scope="session")
def image():
    return IMAGE


@pytest.fixture(scope="session")
def workdir():
    with tempfile.TemporaryDirectory(prefix="sm-image-") as d:
        os.chmod(d, 0o755)
        yield Path(d)


@pytest.fixture(scope="session")
def redis_server(workdir):
    r = RedisServer(workdir / "redis").start()
    yield r
    r.stop()
