#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Every function and global that src/ exports starts with `sm_` (STYLE.md 3: external
symbols are sm_<module>_<verb>; file-local helpers are static). A daemon linked with
hiredis, libpq, libcurl, cJSON, libyaml and GnuTLS shares one symbol namespace with them:
an unprefixed `pq_conn_open` or `escape` may clash with a library's, silently.

The symbols are read from the built core library with `nm` (what the linker sees, so a
prototype-less or macro-made definition cannot hide), not parsed from headers. main.c is
not in the core library; its only export is main.

Usage: exported-names.py --library PATH [--nm NM]   the core library (libscalemetrics-core.a)
       exported-names.py --self-test                the rule against made-up nm output
Prints one `src/LAYER/FILE.c: SYMBOL (nm type T)` per violation; exit status 1 if any.

EXCEPTIONS lists symbols allowed without the prefix, each with its reason; a listed symbol
that is no longer exported fails too (the list may only shrink)."""

import argparse
import contextlib
import io
import re
import subprocess
import sys

PREFIX = "sm_"

# symbol -> reason. Keep it empty: a new exception needs a reason a reviewer accepts.
EXCEPTIONS = {}

# nm -P: "LIB[OBJ]: NAME TYPE VALUE SIZE" for a member of an archive; "OBJ: NAME TYPE ..."
# for a single object.
NM_LINE = re.compile(r"^(?:[^\[]*\[(?P<member>[^\]]+)\]|(?P<obj>[^:]+)):\s+(?P<name>\S+)\s+"
                     r"(?P<type>\S)\b")
# Defined, external: text, data, bss, read-only, common, weak, unique, indirect function.
EXPORTED = set("TDBRCVWiuG")
# Symbols the compiler adds, not the code: AddressSanitizer's ODR indicators for each global
# (`__odr_asan.sm_log_level_current` in the -Db_sanitize=address build), the sanitizers' and
# coverage instrumentation's own.
COMPILER_ADDED = ("__odr_asan", "__asan_", "__ubsan_", "__sancov_", "__llvm_", "__profc_",
                  "__profd_")


def source_of(obj):
    """meson's object name back to the source path: src_api_errors.c.o -> src/api/errors.c
    (file names use hyphens, never underscores, so the first two '_' are the separators)."""
    base = obj.rsplit("/", 1)[-1]
    if base.endswith(".o"):
        base = base[:-2]
    parts = base.split("_", 2)
    return "/".join(parts) if len(parts) == 3 and parts[0] == "src" else base


def check_lines(lines, exceptions):
    """(violations, stale exceptions) for the lines of `nm -A -P -g --defined-only`."""
    bad, seen = [], set()
    for line in lines:
        m = NM_LINE.match(line)
        if not m or m["type"] not in EXPORTED:
            continue
        name = m["name"]
        if name.startswith(PREFIX) and len(name) > len(PREFIX):
            continue
        if name.startswith(COMPILER_ADDED):
            continue
        if name in exceptions:
            seen.add(name)
            continue
        bad.append((source_of(m["member"] or m["obj"]), name, m["type"]))
    stale = sorted(set(exceptions) - seen)
    return bad, stale


def report(bad, stale):
    for src, name, typ in bad:
        print(f"{src}: {name} (nm type {typ}): exported names start with '{PREFIX}' "
              f"(or make it static)")
    for name in stale:
        print(f"exported-names.py: stale exception: {name} is no longer exported without "
              f"'{PREFIX}'")
    return 1 if bad or stale else 0


SELF_TEST_NM = """\
lib.a[lib.a.p/src_util_buf.c.o]: sm_buf_append T 0 19e
lib.a[lib.a.p/src_util_buf.c.o]: sm_buf_curl_write T 1fd 4d
lib.a[lib.a.p/src_collectors_pq.c.o]: pq_conn_open T 10 20
lib.a[lib.a.p/src_collectors_pq.c.o]: pq_retry_ms D 0 8
lib.a[lib.a.p/src_api_errors.c.o]: status_table R 0 40
lib.a[lib.a.p/src_api_errors.c.o]: counter B 0 8
lib.a[lib.a.p/src_model_store.c.o]: smstore_get T 0 8
lib.a[lib.a.p/src_model_store.c.o]: sm_ T 0 8
lib.a[lib.a.p/src_model_store.c.o]: weak_hook W 0 8
lib.a[lib.a.p/src_model_store.c.o]: sm_store_new T 8 8
lib.a[lib.a.p/src_cli_explain-fetch.c.o]: allowed_one T 0 8
lib.a[lib.a.p/src_cli_explain-fetch.c.o]: sm_explain_build_path T 8 8
lib.a[lib.a.p/src_util_log.c.o]: __odr_asan.sm_log_level_current B 0 1

lib.a[lib.a.p/src_util_log.c.o]:
"""

SELF_TEST_EXCEPTIONS = {"allowed_one": "self-test", "gone_now": "self-test"}

SELF_TEST_EXPECT = [
    ("src/collectors/pq.c", "pq_conn_open", "T"),
    ("src/collectors/pq.c", "pq_retry_ms", "D"),
    ("src/api/errors.c", "status_table", "R"),
    ("src/api/errors.c", "counter", "B"),
    ("src/model/store.c", "smstore_get", "T"),
    ("src/model/store.c", "sm_", "T"),
    ("src/model/store.c", "weak_hook", "W"),
]


def self_test():
    bad, stale = check_lines(SELF_TEST_NM.splitlines(), SELF_TEST_EXCEPTIONS)
    errors = 0
    if bad != SELF_TEST_EXPECT:
        print(f"self-test: violations {bad}, expected {SELF_TEST_EXPECT}")
        errors += 1
    if stale != ["gone_now"]:
        print(f"self-test: stale {stale}, expected ['gone_now']")
        errors += 1
    with contextlib.redirect_stdout(io.StringIO()) as out:
        status = report(bad, stale), report([], [])
    if status != (1, 0) or "src/api/errors.c: counter (nm type B)" not in out.getvalue():
        print("self-test: wrong exit status")
        errors += 1
    print(f"exported-names self-test: {len(SELF_TEST_EXPECT)} expected violations, "
          f"{errors} mismatches", file=sys.stderr)
    return 1 if errors else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--library")
    ap.add_argument("--nm", default="nm")
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    if a.self_test:
        return self_test()
    if not a.library:
        ap.error("--library is required")
    out = subprocess.run([a.nm, "-A", "-P", "-g", "--defined-only", a.library],
                         check=True, capture_output=True, text=True).stdout
    return report(*check_lines(out.splitlines(), EXCEPTIONS))


if __name__ == "__main__":
    sys.exit(main())
