#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Fails on C constructs STYLE.md bans, in src/, include/ and tests/unit/ (and tests/fuzz/).

Usage: style-check.py [--root DIR] [FILE...]   (default: every .c/.h under those directories)
       style-check.py --self-test     (the rules against a sample with known violations)
       style-check.py --clang-format [--root DIR] [FILE...]
                      clang-format --dry-run --Werror with the repo's .clang-format over every
                      .c/.h under src/, include/, tests/ and bench/ (exit 77, skipped, when
                      clang-format is not installed)
Prints one `file:line: rule` per violation; exit status 1 if there is any.

Comments and string/char literals are blanked before matching, so a URL in a string or a
banned name in a comment never trips a rule; `//` comments are found by the same lexer."""

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

DIRS = ("src", "include", "tests/unit", "tests/fuzz")
FORMAT_DIRS = ("src", "include", "tests", "bench")

# (rule name, regex on code with comments and literals blanked, files exempt)
CALL_RULES = [
    ("atoi/atol: use sm_number_* (number.h)", r"\bato(i|l|ll|f)\s*\(", ()),
    ("strto*: only src/util/number.c parses numbers",
     r"\bstrto(l|ul|ll|ull|d|f|ld|imax|umax)\s*\(", ("src/util/number.c",)),
    ("sprintf: use snprintf", r"\bv?sprintf\s*\(", ()),
    ("strcpy: use snprintf or memcpy with a length", r"\bstrcpy\s*\(", ()),
    ("strcat: use snprintf or memcpy with a length", r"\bstrcat\s*\(", ()),
    ("strtok: not reentrant", r"\bstrtok\s*\(", ()),
    ("gets", r"\bgets\s*\(", ()),
    ("scanf family: parse with number.h", r"\b(v?sscanf|v?scanf|v?fscanf)\s*\(", ()),
    ("rand/srand: not for anything", r"\bs?rand\s*\(", ()),
    ("gmtime: use gmtime_r", r"\bgmtime\s*\(", ()),
    ("localtime: use localtime_r", r"\blocaltime\s*\(", ()),
    ("asctime/ctime: use strftime", r"\b(asctime|ctime)\s*\(", ()),
    ("exit() outside src/cli/main.c", r"(?<![\w.>])exit\s*\(", ("src/cli/main.c",)),
]

# Calls whose arguments must mention CLOEXEC.
CLOEXEC_CALLS = r"(?<![\w.>])(open|openat|socket|accept4|pipe2|dup3|epoll_create1|inotify_init1|" \
                r"eventfd|timerfd_create|signalfd)\s*\("
NO_CLOEXEC_VARIANT = r"(?<![\w.>])(accept|pipe|dup2?|epoll_create|inotify_init|mkstemp)\s*\("


def blank(text):
    """Returns (code, code_with_strings, slash_comment_offsets): comments replaced by spaces
    (newlines kept) in both; string and char literals replaced by "" / '' in `code`."""
    code, keep = [], []
    slashes = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "*":
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            chunk = re.sub(r"[^\n]", " ", text[i:j])
            code.append(chunk)
            keep.append(chunk)
            i = j
        elif c == "/" and nxt == "/":
            slashes.append(i)
            j = text.find("\n", i)
            j = n if j < 0 else j
            chunk = " " * (j - i)
            code.append(chunk)
            keep.append(chunk)
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            lit = text[i:j]
            code.append(c + " " * max(len(lit) - 2, 0) + (c if len(lit) > 1 else ""))
            keep.append(lit)
            i = j
        else:
            code.append(c)
            keep.append(c)
            i += 1
    return "".join(code), "".join(keep), slashes


def line_of(text, offset):
    return text.count("\n", 0, offset) + 1


def paren_span(text, open_idx):
    """Index just past the parenthesis matching text[open_idx] == '('."""
    depth = 0
    for k in range(open_idx, len(text)):
        if text[k] == "(":
            depth += 1
        elif text[k] == ")":
            depth -= 1
            if depth == 0:
                return k + 1
    return len(text)


def split_args(args):
    """Top-level comma split of an argument list (without the outer parentheses)."""
    out, depth, cur = [], 0, []
    for ch in args:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [a.strip() for a in out]


ASSIGN = re.compile(r"(?<![=!<>+\-*/%&|^])=(?!=)|(\+|-|\*|/|%|&|\||\^|<<|>>)=(?!=)")


def check_file(path, rel):
    text = path.read_text(errors="replace")
    code, keep, slashes = blank(text)
    out = []

    for off in slashes:
        out.append((line_of(text, off), "// comment: use /* */"))

    for rule, pat, exempt in CALL_RULES:
        if rel in exempt:
            continue
        for m in re.finditer(pat, code):
            out.append((line_of(code, m.start()), rule))

    # Assignment inside if/while conditions (best effort: the whole parenthesised condition).
    for m in re.finditer(r"\b(if|while)\s*\(", code):
        start = m.end() - 1
        end = paren_span(code, start)
        cond = code[start + 1:end - 1]
        if ASSIGN.search(cond):
            out.append((line_of(code, m.start()), f"assignment inside {m.group(1)} condition"))

    # File descriptors without close-on-exec.
    for m in re.finditer(CLOEXEC_CALLS, code):
        start = m.end() - 1
        args = code[start:paren_span(code, start)]
        if "CLOEXEC" not in args:
            out.append((line_of(code, m.start()), f"{m.group(1)}() without *_CLOEXEC"))
    for m in re.finditer(NO_CLOEXEC_VARIANT, code):
        out.append((line_of(code, m.start()),
                    f"{m.group(1)}(): use the variant with a CLOEXEC flag"))

    # fopen/fdopen/freopen: the mode literal must contain 'e'.
    for m in re.finditer(r"(?<![\w.>])(fopen|fdopen|freopen|popen)\s*\(", keep):
        start = m.end() - 1
        args = split_args(keep[start + 1:paren_span(keep, start) - 1])
        mode = args[1] if len(args) > 1 else ""
        lit = re.fullmatch(r'"([^"]*)"', mode)
        if m.group(1) == "popen":
            if not lit or "e" not in lit.group(1):
                out.append((line_of(keep, m.start()), "popen() mode without 'e'"))
        elif not lit:
            out.append((line_of(keep, m.start()), f"{m.group(1)}() mode is not a literal"))
        elif "e" not in lit.group(1):
            out.append((line_of(keep, m.start()), f"{m.group(1)}() mode without 'e' (O_CLOEXEC)"))

    return sorted(set(out))


def c_files(root, dirs):
    return sorted(p for d in dirs for p in (root / d).rglob("*")
                  if p.suffix in (".c", ".h") and p.is_file())


def clang_format(root, files):
    exe = shutil.which("clang-format")
    if not exe:
        print("clang-format is not installed: skipped", file=sys.stderr)
        return 77
    files = files or c_files(root, FORMAT_DIRS)
    bad = set()
    for i in range(0, len(files), 50):
        p = subprocess.run([exe, "--style=file", "--dry-run", "--Werror", *map(str, files[i:i + 50])],
                           cwd=root, capture_output=True, text=True)
        for line in p.stderr.splitlines():
            m = re.match(r"^(.+?):(\d+):\d+: (?:error|warning): code should be clang-formatted", line)
            if m:
                f = Path(m.group(1)).resolve()
                rel = f.relative_to(root).as_posix() if f.is_relative_to(root) else str(f)
                bad.add((rel, int(m.group(2))))
        if p.returncode and not bad:
            print(p.stderr, file=sys.stderr)
            return 1
    per_file = {}
    for rel, line in sorted(bad):
        per_file.setdefault(rel, []).append(line)
    for rel, lines in per_file.items():
        print(f"{rel}:{lines[0]}: clang-format: {len(lines)} line(s) differ "
              f"(run clang-format -i {rel})")
    print(f"clang-format: {len(files)} files, {len(per_file)} not formatted", file=sys.stderr)
    return 1 if bad else 0


SELF_TEST = r"""/* SPDX-License-Identifier: MIT */
// 2: line comment
static const char *url = "https://example.com/x // not a comment"; /* strcpy( in a comment */
int f(const char *s, char *d)
{
	int x = atoi(s);                           /* 6 */
	long y = strtol(s, NULL, 10);              /* 7 */
	sprintf(d, "%d", x);                       /* 8 */
	snprintf(d, 4, "%d", x);
	strcpy(d, s);                              /* 10 */
	strcat(d, "sprintf(");                     /* 11 */
	if ((x = 3) > 2)                           /* 12 */
		return 1;
	if (x == 3 || x <= 2 || x >= 1 || x != 0)
		return 2;
	while (y -= 1)                             /* 16 */
		;
	FILE *f = fopen("x", "r");                 /* 18 */
	FILE *g = fopen("x", "re");
	int fd = open("x", O_RDONLY);              /* 20 */
	int fd2 = open("x", O_RDONLY | O_CLOEXEC);
	int sk = socket(AF_INET, SOCK_STREAM, 0);  /* 22 */
	ops->open(x);
	exit(1);                                   /* 24 */
	sm_x_exit(1);
	struct tm *t = gmtime(&now);               /* 26 */
	gmtime_r(&now, &tm);
	x = rand();                                /* 28 */
	char c = '"';
	x = sscanf(s, "%d", &x);                   /* 30 */
	return strtok(d, " ") != NULL;             /* 31 */
}
"""
SELF_TEST_EXPECT = {2: "//", 6: "atoi", 7: "strto", 8: "sprintf", 10: "strcpy", 11: "strcat",
                    12: "assignment", 16: "assignment", 18: "fopen", 20: "open", 22: "socket",
                    24: "exit", 26: "gmtime", 28: "rand", 30: "scanf", 31: "strtok"}


def self_test():
    """Checks the rules against a sample with known violations (and known non-violations)."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "sample.c"
        f.write_text(SELF_TEST)
        got = check_file(f, "src/sample.c")
    lines = {line for line, _ in got}
    bad = 0
    for line, word in SELF_TEST_EXPECT.items():
        if not any(l == line and rule.startswith(word) for l, rule in got):
            print(f"self-test: line {line}: expected a '{word}' violation, got "
                  f"{[r for l, r in got if l == line]}")
            bad += 1
    for line in sorted(lines - set(SELF_TEST_EXPECT)):
        print(f"self-test: line {line}: unexpected {[r for l, r in got if l == line]}")
        bad += 1
    print(f"style self-test: {len(SELF_TEST_EXPECT)} expected violations, {bad} mismatches",
          file=sys.stderr)
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("--root", default=Path(__file__).resolve().parents[2], type=Path)
    ap.add_argument("--clang-format", action="store_true")
    ap.add_argument("files", nargs="*", type=Path)
    a = ap.parse_args()
    root = a.root.resolve()
    if a.self_test:
        return self_test()
    if a.clang_format:
        return clang_format(root, [f.resolve() for f in a.files])
    files = a.files or c_files(root, DIRS)
    bad = 0
    for f in files:
        f = f.resolve()
        try:
            rel = f.relative_to(root).as_posix()
        except ValueError:
            rel = f.as_posix()
        for line, rule in check_file(f, rel):
            print(f"{rel}:{line}: {rule}")
            bad += 1
    print(f"style: {len(files)} files, {bad} violations", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
