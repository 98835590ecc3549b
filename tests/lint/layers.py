#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Keeps src/'s layers apart (docs/design.md, "Source tree"). Fails on:

  1. an include that points the wrong way between layers: a file in src/LAYER/ (or a public
     header owned by LAYER) includes the public header of a layer LAYER may not call;
  2. an area's own header ("x-internal.h", or any quoted header without a path) included
     from another folder of src/, or through a path ("../"): only tests/ may reach into an
     area's internals;
  3. a .c file with a public header of its own name (include/scalemetrics/<name>.h, the
     header clang-format's IncludeBlocks takes as the main one) that does not include it
     first: the first include proves the header stands alone (STYLE.md 1);
  4. a file or directory name with an underscore under src/, include/, tests/unit/,
     tests/fuzz/ (but not its corpora) and tests/lint/: names use hyphens.

Usage: layers.py [--root DIR]     every rule over the tree
       layers.py --self-test      the rules against a small tree with known violations
Prints one `file:line: rule` per violation; exit status 1 if there is any.

Layers, lowest first; each may include its own headers and those of the layers listed in
ALLOWED: what the code does today, and no more, except that cli, the top, may include any
layer:

  util        error, hash, number, log, clock, buf, file, template, urlenc, ttl-cache,
              resource-kind
                                                         -> nothing
  config      the config file and its descriptor tables -> util
  model       series, series-index, store, history, telemetry
                                                         -> util, config
  query       query, selector, quantity                 -> util, config, model
  kube        the Kubernetes API client, kubeconfig     -> util, config, model
  collectors  registry, scheduler, the collectors, promtext, window
                                                         -> util, config, model, query, kube
  api         router, documents, answer cache           -> util, config, model, query
  http        server, TLS, auth, authz, upstream        -> util, config, model, kube, api
  cli         main, explain, hpa, probe                 -> every layer (it wires them)

Collectors and the API never include each other; only cli includes http's headers. An
include that must point the other way for a while goes in EXCEPTIONS with its reason; the
list is empty, and a stale entry fails the test.

A public header include/scalemetrics/NAME.h belongs to the layer of the folder holding
src/*/NAME.c; headers without such a file are placed in HEADER_LAYER. A header in neither
fails the test, so a new header is placed on purpose."""

import argparse
import re
import sys
import tempfile
from pathlib import Path

LAYERS = ("util", "config", "model", "query", "kube", "collectors", "api", "http", "cli")

ALLOWED = {
    "util": set(),
    "config": {"util"},
    "model": {"util", "config"},
    "query": {"util", "config", "model"},
    "kube": {"util", "config", "model"},
    "collectors": {"util", "config", "model", "query", "kube"},
    "api": {"util", "config", "model", "query"},
    "http": {"util", "config", "model", "kube", "api"},
    "cli": set(LAYERS) - {"cli"},
}

# Public headers with no src/*/NAME.c of the same name: the layer that implements them.
HEADER_LAYER = {
    "api": "api",  # src/api/router.c and the documents
    "auth": "http",  # src/http/auth.c and its auth-*.c
    "http": "http",  # src/http/server.c
    "kube": "kube",  # src/kube/client.c and pods.c
    "source": "collectors",  # the collector contract; src/collectors/registry.c
}

# (file, header): includes against the layer order, each with its reason; remove the entry
# when the include goes. Empty since issue 19: keep it so.
EXCEPTIONS = {}

# Quoted includes without a path that are generated at build time, not found in the folder.
GENERATED = {"commit.h"}

NAME_DIRS = ("src", "include", "tests/unit", "tests/fuzz", "tests/lint")
NAME_SKIP = ("tests/fuzz/corpus",)

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def includes(path):
    text = path.read_text(errors="replace")
    for m in INCLUDE.finditer(text):
        yield text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2)


def header_layers(root):
    """NAME -> layer for every include/scalemetrics/NAME.h (None: placed nowhere)."""
    owner = {}
    for c in (root / "src").glob("*/*.c"):
        owner.setdefault(c.stem, c.parent.name)
    out = {}
    for h in sorted((root / "include" / "scalemetrics").glob("*.h")):
        out[h.stem] = HEADER_LAYER.get(h.stem, owner.get(h.stem))
    return out


def rel(root, p):
    return p.relative_to(root).as_posix()


def check(root, exceptions=None):
    exceptions = EXCEPTIONS if exceptions is None else exceptions
    out = []
    hl = header_layers(root)
    for name, layer in hl.items():
        if layer is None:
            out.append((f"include/scalemetrics/{name}.h", 1,
                        "header in no layer: no src/*/" + name + ".c; add it to HEADER_LAYER "
                        "in tests/lint/layers.py"))
        elif layer not in ALLOWED:
            out.append((f"include/scalemetrics/{name}.h", 1, f"unknown layer '{layer}'"))

    units = []  # (path, layer)
    for d in sorted((root / "src").iterdir()):
        if not d.is_dir():
            continue
        if d.name not in ALLOWED:
            out.append((rel(root, d), 1, f"folder '{d.name}' is in no layer: add it to "
                        "LAYERS and ALLOWED in tests/lint/layers.py and to docs/design.md"))
            continue
        for f in sorted(d.rglob("*")):
            if f.suffix in (".c", ".h"):
                units.append((f, d.name))
    for f in (root / "src").glob("*.[ch]"):
        out.append((rel(root, f), 1, "file at the top of src/: it belongs in a layer's folder"))
    for name, layer in hl.items():
        if layer in ALLOWED:
            units.append((root / "include" / "scalemetrics" / f"{name}.h", layer))

    for f, layer in units:
        r = rel(root, f)
        first = None
        for line, kind, target in includes(f):
            if first is None:
                first = target
            if kind == "<":
                continue
            if target.startswith("scalemetrics/"):
                name = target[len("scalemetrics/"):].removesuffix(".h")
                to = hl.get(name)
                if to is None or to == layer or to in ALLOWED[layer]:
                    continue
                if (r, name) in exceptions:
                    continue
                may = ", ".join(l for l in LAYERS if l in ALLOWED[layer]) or "nothing"
                out.append((r, line, f"{layer} -> {to} ({target}): {layer} may include "
                            f"{may}"))
            elif "/" in target:
                out.append((r, line, f'"{target}": an area\'s own headers are included '
                            "without a path, from their own folder only"))
            elif not (f.parent / target).is_file() and target not in GENERATED:
                out.append((r, line, f'"{target}" is not in {rel(root, f.parent)}/: another '
                            "area's own header (only tests/ may include it)"))
        own = root / "include" / "scalemetrics" / f"{f.stem}.h"
        if f.suffix == ".c" and own.is_file() and first != f"scalemetrics/{f.stem}.h":
            out.append((r, 1, f"own header first: the first include must be "
                        f"\"scalemetrics/{f.stem}.h\" (is {first!r})"))

    for d in NAME_DIRS:
        for p in sorted((root / d).rglob("*")):
            r = rel(root, p)
            if any(r == s or r.startswith(s + "/") for s in NAME_SKIP) or "__pycache__" in r:
                continue
            if "_" in p.name:
                out.append((r, 1, "file name with '_': use '-'"))

    for (f, name), _ in exceptions.items():
        if not (root / f).is_file() or not any(
                t == f"scalemetrics/{name}.h" for _, _, t in includes(root / f)):
            out.append((f, 1, f"stale exception: no longer includes scalemetrics/{name}.h; "
                        "remove it from EXCEPTIONS"))
    return sorted(set(out))


SELF_TEST_TREE = {
    "include/scalemetrics/hash.h": '#include <stddef.h>\n',
    "include/scalemetrics/store.h": '#include "scalemetrics/hash.h"\n',
    "include/scalemetrics/api.h": '#include "scalemetrics/store.h"\n',
    "include/scalemetrics/orphan.h": '\n',
    "include/scalemetrics/bad_name.h": '\n',
    "src/util/hash.c": '#include "scalemetrics/hash.h"\n',
    "src/model/store.c": '#include <stdlib.h>\n#include "scalemetrics/store.h"\n',
    "src/model/series-index.c": '#include "scalemetrics/api.h"\n',
    "src/api/router.c": '#include "scalemetrics/api.h"\n#include "api-internal.h"\n',
    "src/api/api-internal.h": '\n',
    "src/http/server.c": '#include "../api/api-internal.h"\n#include "api-internal.h"\n',
    "src/config/config.c": '#include "scalemetrics/hash.h"\n',
    "src/top.c": '\n',
    "src/extra/x.c": '\n',
    "tests/unit/test_store.c": '\n',
    "tests/fuzz/corpus/a_b/seed_1": '\n',
}
# (file, line, start of the expected message)
SELF_TEST_EXPECT = {
    ("include/scalemetrics/orphan.h", 1, "header in no layer"),
    ("include/scalemetrics/bad_name.h", 1, "header in no layer"),
    ("include/scalemetrics/bad_name.h", 1, "file name with '_'"),
    ("src/model/series-index.c", 1, "model -> api"),
    ("src/model/store.c", 1, "own header first"),
    ("src/http/server.c", 1, '"../api/api-internal.h"'),
    ("src/http/server.c", 2, '"api-internal.h" is not in src/http/'),
    ("src/top.c", 1, "file at the top of src/"),
    ("src/extra", 1, "folder 'extra' is in no layer"),
    ("tests/unit/test_store.c", 1, "file name with '_'"),
    ("src/config/config.c", 1, "stale exception: no longer includes scalemetrics/api.h"),
}
# The self-test's own list, so the stale-exception rule is tested however short the real one.
SELF_TEST_EXCEPTIONS = {("src/config/config.c", "api"): "an include the file no longer has"}


def self_test():
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        for name, text in SELF_TEST_TREE.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        for sub in NAME_DIRS:
            (root / sub).mkdir(parents=True, exist_ok=True)
        got = check(root, SELF_TEST_EXCEPTIONS)
    bad = 0
    for f, line, start in sorted(SELF_TEST_EXPECT):
        if not any(g[0] == f and g[1] == line and g[2].startswith(start) for g in got):
            print(f"self-test: {f}:{line}: expected '{start}...', got "
                  f"{[g[2] for g in got if g[0] == f]}")
            bad += 1
    for g in got:
        if not any(g[0] == f and g[1] == line and g[2].startswith(start)
                   for f, line, start in SELF_TEST_EXPECT):
            print(f"self-test: unexpected {g[0]}:{g[1]}: {g[2]}")
            bad += 1
    print(f"layers self-test: {len(SELF_TEST_EXPECT)} expected violations, {bad} mismatches",
          file=sys.stderr)
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("--root", default=Path(__file__).resolve().parents[2], type=Path)
    a = ap.parse_args()
    if a.self_test:
        return self_test()
    root = a.root.resolve()
    got = check(root)
    for f, line, msg in got:
        print(f"{f}:{line}: {msg}")
    n = sum(1 for _ in (root / "src").rglob("*.[ch]"))
    print(f"layers: {n} files in src/, {len(got)} violations", file=sys.stderr)
    return 1 if got else 0


if __name__ == "__main__":
    sys.exit(main())
