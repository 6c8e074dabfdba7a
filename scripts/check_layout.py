#!/usr/bin/env python3
"""Checks the shape of the source tree that README "Where things live" promises.

- engine/ keeps at most 8 files at its top (code lives in its rooms: core, intake,
  delivery, bounces, ops, cli);
- no C++ file under engine/ is longer than 600 lines, and no function there longer than
  100 lines (a brace matcher that ignores comments and strings: good enough for our code);
- no comment in a tracked source file names a repository path that does not exist.
Prints one line per finding and exits 1 if there is any, 0 otherwise. Run from anywhere;
ctest runs it as the `layout` test.
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_TOP_FILES = 8
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 100
# Top-level folders a comment may name paths in; a name under them must exist.
TOP = ("engine", "smtp", "dns", "dkim", "queue", "bounce", "common", "bench", "tests", "data", "scripts", "docs",
       "examples", "cmake")
# A path after a space, quote or bracket (not inside another path such as /tmp/...),
# not followed by a pattern character (bench/micro_*.cpp, bench/results/peers.{md,png}).
PATH_IN_TEXT = re.compile(r"(?:^|(?<=[\s`'\"(\[]))((?:%s)/[A-Za-z0-9_./-]*[A-Za-z0-9_])(?!\.?[*{<$A-Za-z0-9_])"
                          % "|".join(TOP))
SIGNATURE_END = re.compile(r"\)\s*(?:const|noexcept|override|final|mutable|\s|->\s*[\w:<>,\s*&]+)*$")
CONTROL = re.compile(r"\b(?:if|for|while|switch|catch)\s*\([^{};]*\)\s*$")
LAMBDA = re.compile(r"\]\s*(?:\([^()]*\))?\s*(?:mutable)?\s*(?:->\s*[\w:<>]+)?\s*$")


def tracked_files():
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return [f for f in out.splitlines() if os.path.exists(os.path.join(ROOT, f))]


def ignored(name):
    """A path git ignores (made at run time, e.g. bench/.peers/)."""
    return any(subprocess.run(["git", "check-ignore", "-q", n], cwd=ROOT).returncode == 0 for n in (name, name + "/"))


def strip_code(text):
    """Comments and string literals blanked, line breaks kept."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r'R"(\w*)\((.*?)\)\1"', lambda m: '""' + "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r'"(?:\\.|[^"\\\n])*"', '""', text)
    return re.sub(r"'(?:\\.|[^'\\\n])*'", "''", text)


def long_functions(path):
    text = strip_code(open(path, encoding="utf-8", errors="replace").read())
    depth, line, current = 0, 1, None
    for i, ch in enumerate(text):
        if ch == "\n":
            line += 1
        elif ch == "{":
            before = text[max(0, i - 300):i].rstrip()
            if current is None and SIGNATURE_END.search(before) and not CONTROL.search(before) \
                    and not LAMBDA.search(before):
                name = re.search(r"([\w:~]+)\s*\([^;{}]*\)[^;{}()]*$", before)
                current = (depth, line, name.group(1) if name else "?")
            depth += 1
        elif ch == "}":
            depth -= 1
            if current is not None and depth == current[0]:
                length = line - current[1] + 1
                if length > MAX_FUNCTION_LINES:
                    yield current[1], current[2], length
                current = None


def comment_paths(path):
    for number, text in enumerate(open(path, encoding="utf-8", errors="replace"), 1):
        comment = re.search(r"(//|#|/\*|^\s*\*)(.*)$", text)
        if comment:
            for name in PATH_IN_TEXT.findall(comment.group(2)):
                yield number, name.rstrip(".")


def main():
    findings = []
    top = [f for f in os.listdir(os.path.join(ROOT, "engine")) if os.path.isfile(os.path.join(ROOT, "engine", f))]
    if len(top) > MAX_TOP_FILES:
        findings.append(f"engine/: {len(top)} files at its top (at most {MAX_TOP_FILES}): {sorted(top)}")
    files = tracked_files()
    for f in files:
        full = os.path.join(ROOT, f)
        if f.startswith("engine/") and f.endswith((".cpp", ".h")):
            lines = sum(1 for _ in open(full, encoding="utf-8", errors="replace"))
            if lines > MAX_FILE_LINES:
                findings.append(f"{f}: {lines} lines (at most {MAX_FILE_LINES})")
            for line, name, length in long_functions(full):
                findings.append(f"{f}:{line}: function {name} is {length} lines (at most {MAX_FUNCTION_LINES})")
        if f.endswith((".cpp", ".h", ".py", ".sh", ".cmake")) or os.path.basename(f) == "CMakeLists.txt":
            for line, name in comment_paths(full):
                if "*" in name or "<" in name:
                    continue
                if not os.path.exists(os.path.join(ROOT, name)) and not ignored(name):
                    findings.append(f"{f}:{line}: comment names {name}, which is not in the repository")
    for finding in findings:
        print(finding)
    print(f"check_layout: {len(files)} files, {len(findings)} findings")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
