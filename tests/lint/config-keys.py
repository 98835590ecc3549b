#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Fails when docs/configuration.md leaves out something the config parser accepts: a key of
any descriptor table, a value of an enumerated key, or a built-in metric name.

What the binary accepts is read from its C source, not from a list kept by hand:
  - keys: every `struct sm_config_key NAME[] = {...}` table in src/**/*.c (config.c's own
    tables and each collector's). An entry is `{.name = "key", ...}` or a macro whose
    definition holds `.name = "key"` (scrape-config.c's RULE_KEY_*). An entry that is neither is
    an error, so a new way of declaring keys cannot slip past unnoticed;
  - enumerated values: the string array an entry's `.enum_names` names (auth modes, Redis key
    types, presets, URL schemes), and the string arrays inside the function an entry's
    `.parse` names (log levels and formats);
  - built-in metric names: the `*metrics[]` string arrays (PostgreSQL, PgBouncer), the
    metrics of the Redis `presets[]` table, and the suffixes of derived metrics (join2 calls
    in redis-config.c). Each of these must be found at least once, or the test fails: a
    renamed array must not make the check pass vacuously.

Mentioned means, in the doc: a key as `key`, `key: value` or `a.b.key` in backticks, or as a
YAML key (`key:` at the start of a line or after `{`/`,`) in a fenced block or a backtick
span; a value or metric name as a word of a backtick span or of a fenced block.

Usage: config-keys.py [--root DIR] [--doc FILE] [--list]   (--list: print what was found)
       config-keys.py --self-test   (the parser and the check against a sample tree)
Prints one line per omission; exit status 1 if there is any (or the source cannot be read)."""

import argparse
import re
import sys
import tempfile
from pathlib import Path

DOC = "docs/configuration.md"


class ParseError(Exception):
    pass


def strip_comments(text):
    """text with comments replaced by spaces (newlines kept); string literals kept as they are."""
    out, i, n = [], 0, len(text)
    while i < n:
        c, nxt = text[i], text[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "*":
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "/" and nxt == "/":
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(text[i:j])
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def line_of(text, offset):
    return text.count("\n", 0, offset) + 1


def brace_body(code, open_idx):
    """(body, end) of the braces opened at code[open_idx] == '{', string literals skipped."""
    depth, i = 0, open_idx
    while i < len(code):
        c = code[i]
        if c == '"':
            i += 1
            while i < len(code) and code[i] != '"':
                i += 2 if code[i] == "\\" else 1
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return code[open_idx + 1:i], i + 1
        i += 1
    raise ParseError("unbalanced braces")


def top_level_items(body):
    """The comma-separated items of an initializer body, nested braces and strings kept."""
    items, depth, cur, i = [], 0, [], 0
    while i < len(body):
        c = body[i]
        if c == '"':
            j = i + 1
            while j < len(body) and body[j] != '"':
                j += 2 if body[j] == "\\" else 1
            cur.append(body[i:j + 1])
            i = j + 1
            continue
        if c in "{([":
            depth += 1
        elif c in "})]":
            depth -= 1
        if c == "," and depth == 0:
            items.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    items.append("".join(cur).strip())
    return [x for x in items if x]


STRING = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
NAME_FIELD = re.compile(r'\.name\s*=\s*"((?:[^"\\\n]|\\.)*)"')
ENUM_FIELD = re.compile(r"\.enum_names\s*=\s*(\w+)")
PARSE_FIELD = re.compile(r"\.parse\s*=\s*(\w+)")
TABLE = re.compile(r"\bstruct\s+sm_config_key\s+(\w+)\s*\[[^\];]*\]\s*=\s*\{")
STRING_ARRAY = re.compile(r"\bconst\s+char\s*\*\s*const\s+(\w+)\s*\[[^\];]*\]\s*=\s*\{")
DEFINE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+(\w+)[ \t]+(.*)$", re.M)
PRESET_METRIC = re.compile(r'\{\s*"([A-Za-z_:][A-Za-z0-9_:]*)"\s*,\s*\{')
DERIVED_SUFFIX = re.compile(r'join2\(\s*r->metric\s*,\s*"(_\w+)"\s*\)')


class Schema:
    def __init__(self):
        self.keys = {}      # key -> [(file, line, table)]
        self.values = {}    # enum value -> [(file, line, key)]
        self.metrics = {}   # metric name -> [(file, line, where)]
        self.suffixes = {}  # derived metric suffix -> [(file, line)]
        self.tables = []    # (file, line, table, n_keys)


def read_source(root):
    """Schema of every .c under root/src. Raises ParseError with file:line on what it cannot
    read."""
    schema = Schema()
    files = sorted((root / "src").rglob("*.c"))
    if not files:
        raise ParseError(f"no C files under {root / 'src'}")
    codes = {f: strip_comments(f.read_text(errors="replace")) for f in files}
    arrays = {}  # string array name -> [(file, values)]
    for f, code in codes.items():
        for m in STRING_ARRAY.finditer(code):
            body, _ = brace_body(code, m.end() - 1)
            arrays.setdefault(m.group(1), []).append(
                (f, [bytes(s, "utf-8").decode("unicode_escape") for s in STRING.findall(body)]))

    for f, code in codes.items():
        rel = f.relative_to(root).as_posix()
        # Macros, continuation lines joined (their line numbers do not matter).
        macros = {}
        for m in DEFINE.finditer(code.replace("\\\n", " ")):
            name = NAME_FIELD.search(m.group(2))
            if name:
                macros[m.group(1)] = m.group(2)
        for m in TABLE.finditer(code):
            table, line = m.group(1), line_of(code, m.start())
            body, _ = brace_body(code, m.end() - 1)
            entries = top_level_items(body)
            if not entries:
                raise ParseError(f"{rel}:{line}: table {table} has no entries")
            for e in entries:
                text = e
                if re.fullmatch(r"\w+", e):
                    if e not in macros:
                        raise ParseError(f"{rel}:{line}: table {table}: entry {e} is not a "
                                         "macro with a .name")
                    text = macros[e]
                elif not e.startswith("{"):
                    raise ParseError(f"{rel}:{line}: table {table}: cannot read entry {e!r}")
                name = NAME_FIELD.search(text)
                if not name:
                    raise ParseError(f"{rel}:{line}: table {table}: entry without .name: {e!r}")
                key = name.group(1)
                schema.keys.setdefault(key, []).append((rel, line, table))
                enum = ENUM_FIELD.search(text)
                if enum:
                    found = arrays.get(enum.group(1))
                    if not found:
                        raise ParseError(f"{rel}:{line}: table {table}: key {key}: enum_names "
                                         f"{enum.group(1)} not found")
                    # Prefer the array of this file (a static one), else the only one.
                    values = next((v for af, v in found if af == f), found[0][1])
                    for v in values:
                        schema.values.setdefault(v, []).append((rel, line, key))
                parse = PARSE_FIELD.search(text)
                fn = parse and re.search(r"\b" + parse.group(1) + r"\s*\([^;{]*\)\s*\{", code)
                if fn:
                    fbody, _ = brace_body(code, fn.end() - 1)
                    for am in STRING_ARRAY.finditer(fbody):
                        abody, _ = brace_body(fbody, am.end() - 1)
                        for v in STRING.findall(abody):
                            schema.values.setdefault(v, []).append((rel, line, key))
            schema.tables.append((rel, line, table, len(entries)))

        for m in STRING_ARRAY.finditer(code):
            if m.group(1).endswith("metrics"):
                body, _ = brace_body(code, m.end() - 1)
                for s in STRING.findall(body):
                    schema.metrics.setdefault(s, []).append(
                        (rel, line_of(code, m.start()), m.group(1)))
        for m in re.finditer(r"\bpresets\s*\[[^\];]*\]\s*=\s*\{", code):
            body, _ = brace_body(code, m.end() - 1)
            for s in PRESET_METRIC.findall(body):
                schema.metrics.setdefault(s, []).append(
                    (rel, line_of(code, m.start()), "presets"))
        for m in DERIVED_SUFFIX.finditer(code):
            schema.suffixes.setdefault(m.group(1), []).append((rel, line_of(code, m.start())))

    if not schema.keys:
        raise ParseError("no struct sm_config_key tables found under src/")
    return schema


YAML_KEY = re.compile(r"(?:^[ \t]*(?:-[ \t]+)?|[{,][ \t]*)([A-Za-z_]\w*)[ \t]*:(?=[ \t]|$)", re.M)
WORD = re.compile(r"[A-Za-z0-9_.:{}-]+")


def read_doc(text):
    """(backtick spans, fenced block text) of a markdown document."""
    spans, blocks, prose = [], [], []
    in_block = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_block = not in_block
            continue
        (blocks if in_block else prose).append(line)
    for m in re.finditer(r"(`+)(.+?)\1", "\n".join(prose), re.S):
        spans.append(m.group(2).strip())
    return spans, "\n".join(blocks)


def words_of(text):
    """The words of text, and the words with trailing ':' dropped (`a: b` gives a, b)."""
    return {w.strip(":.") for w in WORD.findall(text)} | set(WORD.findall(text))


def check(schema, doc_text):
    spans, blocks = read_doc(doc_text)
    yaml_keys = set(YAML_KEY.findall(blocks))
    span_words = set()
    for s in spans:
        yaml_keys |= set(YAML_KEY.findall(s))
        span_words |= words_of(s)
    block_words = words_of(blocks)

    def key_ok(k):
        if k in yaml_keys:
            return True
        pat = re.compile(r"(?:[\w.]+\.)?" + re.escape(k) + r"(?:\s*:.*)?", re.S)
        return any(pat.fullmatch(s) for s in spans)

    missing = []
    for k, where in sorted(schema.keys.items()):
        if not key_ok(k):
            f, line, table = where[0]
            missing.append(f"config key `{k}` ({f}:{line}, table {table})")
    for v, where in sorted(schema.values.items()):
        if v not in span_words and v not in block_words:
            f, line, key = where[0]
            missing.append(f"value `{v}` of key `{key}` ({f}:{line})")
    for mname, where in sorted(schema.metrics.items()):
        if mname not in span_words and mname not in block_words:
            f, line, what = where[0]
            missing.append(f"built-in metric `{mname}` ({f}:{line}, {what})")
    for sfx, where in sorted(schema.suffixes.items()):
        if not any(sfx in w for w in span_words | block_words):
            f, line = where[0]
            missing.append(f"derived metric suffix `{sfx}` ({f}:{line})")
    return missing


def run(root, doc_path, listing=False, out=sys.stdout):
    try:
        schema = read_source(root)
    except (ParseError, OSError) as e:
        print(f"config-keys: cannot read the config schema: {e}", file=out)
        return 1
    if listing:
        for f, line, table, n in schema.tables:
            print(f"table {f}:{line} {table}: {n} keys", file=out)
        print("keys: " + " ".join(sorted(schema.keys)), file=out)
        print("values: " + " ".join(sorted(schema.values)), file=out)
        print("metrics: " + " ".join(sorted(schema.metrics)), file=out)
        print("suffixes: " + " ".join(sorted(schema.suffixes)), file=out)
    # Each kind of thing must have been found, or a renamed array would pass unnoticed.
    for what, found in (("enumerated values", schema.values),
                        ("built-in metric arrays (*metrics[], presets[])", schema.metrics),
                        ("derived metric suffixes", schema.suffixes)):
        if not found:
            print(f"config-keys: found no {what} in src/: the check no longer reads them",
                  file=out)
            return 1
    try:
        doc_text = doc_path.read_text()
    except OSError as e:
        print(f"config-keys: {e}", file=out)
        return 1
    missing = check(schema, doc_text)
    for m in missing:
        print(f"{doc_path.name}: does not mention {m}", file=out)
    if missing:
        print(f"{len(missing)} missing from {doc_path}: document each one (a key in backticks "
              "or as a YAML key in a fenced block)", file=out)
        return 1
    print(f"config-keys: {len(schema.keys)} keys from {len(schema.tables)} tables, "
          f"{len(schema.values)} enumerated values, {len(schema.metrics)} built-in metrics "
          f"and {len(schema.suffixes)} derived suffixes, all in {doc_path.name}", file=out)
    return 0


SAMPLE_C = r'''
/* A comment with a fake table: struct sm_config_key fake[] = {{.name = "not_a_key"}}; */
#define KEY_BY                                                                                 \
	{                                                                                      \
		.name = "by", .type = SM_CONFIG_STRING_LIST                                    \
	}
static const char *const mode_names[] = {[0] = "on", [1] = "off", NULL};
static const char *const builtin_metrics[] = {"x_total", "x_ratio"};
static const struct sm_config_key forward_decl[2];
static const struct sm_config_key sample_keys[] = {
    KEY_BY,
    {.name = "mode", .type = SM_CONFIG_ENUM, .enum_names = mode_names},
    {.name = "timeout",
     .type = SM_CONFIG_DURATION, /* a comment, } with a brace */
     .min = 10},
};
static const struct preset presets[] = {
    [0] = {.metrics = {{"q_length", {"{p}q:{name}"}, 1, 2, true}}},
};
static void f(void) { r->growth_metric = join2(r->metric, "_growth_per_second"); }
static int parse_level(struct sm_config_parser *p, const struct sm_config_node *v, void *t)
{
	static const char *const names[] = {"loud", "quiet", NULL};

	return parse_name_from(p, v, t, names);
}
static const struct sm_config_key level_keys[] = {
    {.name = "level", .type = SM_CONFIG_CUSTOM, .parse = parse_level},
};
'''

SAMPLE_DOC = """# Sample
`by`, `level` (`loud` or `quiet`), `server.mode: on` and `x_total`, `x_ratio`, `q_length`, `M_growth_per_second`.

```yaml
timeout: 1s   # off
```
"""


def self_test():
    failures = []
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "src").mkdir()
        (root / "src" / "sample.c").write_text(SAMPLE_C)
        doc = root / "doc.md"
        schema = read_source(root)
        if sorted(schema.keys) != ["by", "level", "mode", "timeout"]:
            failures.append(f"keys: {sorted(schema.keys)}")
        if sorted(schema.values) != ["loud", "off", "on", "quiet"]:
            failures.append(f"values: {sorted(schema.values)}")
        if sorted(schema.metrics) != ["q_length", "x_ratio", "x_total"]:
            failures.append(f"metrics: {sorted(schema.metrics)}")
        if list(schema.suffixes) != ["_growth_per_second"]:
            failures.append(f"suffixes: {list(schema.suffixes)}")

        cases = [
            (SAMPLE_DOC, 0, None),
            # Each omission alone is caught and named.
            (SAMPLE_DOC.replace("`by`, ", ""), 1, "config key `by`"),
            (SAMPLE_DOC.replace("timeout: 1s", "interval: 1s"), 1, "config key `timeout`"),
            (SAMPLE_DOC.replace("server.mode: on", "server.mode"), 1, "value `on`"),
            (SAMPLE_DOC.replace("`quiet`", "quietly"), 1, "value `quiet`"),
            (SAMPLE_DOC.replace("`x_ratio`, ", ""), 1, "built-in metric `x_ratio`"),
            (SAMPLE_DOC.replace("M_growth", "M_grow"), 1, "suffix `_growth_per_second`"),
            # A key only in prose, not in backticks or a block, is not documented.
            (SAMPLE_DOC.replace("`by`", "by"), 1, "config key `by`"),
        ]
        for text, want_rc, want_msg in cases:
            doc.write_text(text)
            out = tempfile.TemporaryFile("w+")
            rc = run(root, doc, out=out)
            out.seek(0)
            msg = out.read()
            if rc != want_rc or (want_msg and want_msg not in msg):
                failures.append(f"doc {text!r}: rc {rc}, want {want_rc} with {want_msg!r}:\n{msg}")

        # An entry the parser cannot read is an error, not a silent pass.
        (root / "src" / "sample.c").write_text(SAMPLE_C.replace("KEY_BY,", "UNKNOWN_MACRO,"))
        doc.write_text(SAMPLE_DOC)
        out = tempfile.TemporaryFile("w+")
        if run(root, doc, out=out) != 1:
            failures.append("an unknown macro entry was not an error")
    for f in failures:
        print(f"self-test: {f}")
    print("self-test: " + ("FAILED" if failures else "ok"))
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=Path(__file__).resolve().parents[2], type=Path)
    ap.add_argument("--doc", type=Path)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    if a.self_test:
        return self_test()
    return run(a.root, a.doc or a.root / DOC, a.list)


if __name__ == "__main__":
    sys.exit(main())
