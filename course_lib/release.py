"""The student release: what an instructor hands out (a folder and a .zip).

    python -m course_lib release --out release/ [--address https://github.com/OWNER/NAME] [--branch main]

Contents: lessons/, exercises/ (regenerated from solutions/ first), the library course_lib/ (with
the public checks), pyproject.toml, course.sh, binder/, README.md. Never: solutions/, tests/ (the
hidden tests live there), benchmarks/, CI files. :func:`find_leaks` is what the tests use to prove
that no line of solution code and no hidden-test name or value is in the release.
"""
from __future__ import annotations

import argparse
import ast
import glob
import os
import re
import shutil
import sys

from . import links
from .exercises import BEGIN, END, build

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INCLUDE = ["lessons", "exercises", "course_lib", "binder", "pyproject.toml", "course.sh", "README.md"]
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info")


def build_release(outdir: str, root: str = ROOT, *, archive: bool = True, address: str | None = None,
                  branch: str | None = None) -> str:
    """Write the release folder (and ``outdir.zip``); returns the folder's path.

    address, branch : where learners will find the release (a GitHub address ``https://github.com/OWNER/NAME``);
        its pyproject.toml then declares that address and every Binder/Colab link and setup cell points there
        (:mod:`course_lib.links`). Default: the course's own declared address. ValueError for another kind of address.
    """
    if address is not None:
        links.owner_name(address)  # refuse a bad address before writing anything
    outdir = os.path.abspath(outdir)
    if os.path.abspath(root).startswith(outdir + os.sep) or outdir == os.path.abspath(root):
        raise ValueError(f"out must not contain the course itself; got {outdir!r}")
    build(root)  # exercises/ regenerated from the one source
    if os.path.exists(outdir):
        shutil.rmtree(outdir)
    os.makedirs(outdir)
    for name in INCLUDE:
        src = os.path.join(root, name)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(outdir, name), ignore=IGNORE)
        elif os.path.exists(src):
            shutil.copy2(src, os.path.join(outdir, name))
    if address is not None or branch is not None:
        conf = links.declared(outdir)
        links.declare(outdir, address or conf["repository"], branch or conf["branch"])
        links.write_links(outdir)
    if archive:
        shutil.make_archive(outdir, "zip", os.path.dirname(outdir), os.path.basename(outdir))
    return outdir


def _release_text(folder: str) -> dict[str, str]:
    texts = {}
    for path in glob.glob(os.path.join(folder, "**", "*"), recursive=True):
        if os.path.isfile(path):
            with open(path, "rb") as f:
                texts[os.path.relpath(path, folder)] = f.read().decode("utf-8", "replace")
    return texts


def solution_lines(root: str = ROOT) -> set[str]:
    """Every non-trivial line between BEGIN/END SOLUTION in the solution notebooks."""
    import nbformat

    lines = set()
    for path in glob.glob(os.path.join(root, "solutions", "*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            inside = False
            for line in cell.source.splitlines():
                s = line.strip()
                if s == BEGIN:
                    inside = True
                elif s == END:
                    inside = False
                elif inside and len(s) >= 12 and not s.startswith("#"):
                    lines.add(s)
    return lines


def _literals(tree) -> set[str]:
    """The values a test file hard-codes: float literals with at least 4 significant digits, long strings."""
    values = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, float) and len(repr(v).lstrip("-0.").replace(".", "").split("e")[0]) >= 4:
                values.add(repr(v))
            elif isinstance(v, str) and len(v) >= 24 and not v.startswith(("hidden", "Hidden")):
                values.add(v)
    return values


def hidden_secrets(root: str = ROOT) -> tuple[set[str], set[str]]:
    """What would give the hidden tests away: the names they define, and the values they hard-code
    (float literals with at least 4 significant digits, long string literals). Ordinary code lines
    (imports, calls to the public library) are not secrets and are not searched for. The mutants
    (tests/hidden/mutants/lessonN.py, the wrong answers the checks must reject) count as hidden tests: their
    names (those listed in MUTANTS) and their literals are secrets too."""
    import importlib.util

    names, values = set(), set()
    for path in glob.glob(os.path.join(root, "tests", "hidden", "lesson*.py")):
        # the hidden tests' names: the functions registered in HIDDEN (helpers may share generic names)
        spec = importlib.util.spec_from_file_location(f"_hidden_names_{os.path.basename(path)[:-3]}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        names |= {fn.__name__ for checks in getattr(module, "HIDDEN", {}).values() for fn in checks}
        values |= _literals(ast.parse(open(path, encoding="utf-8").read()))
    for path in glob.glob(os.path.join(root, "tests", "hidden", "mutants", "lesson*.py")):
        tree = ast.parse(open(path, encoding="utf-8").read())  # read, not run: the mutants import tests.hidden
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "MUTANTS" for t in node.targets):
                names |= {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
        values |= _literals(tree)
    return names, values


def find_leaks(folder: str, root: str = ROOT) -> list[str]:
    """What of the solutions and hidden tests appears in the release folder (should be nothing).

    A solution line that the public library itself contains (course_lib's modules, not its checks)
    is not a leak: the library is public by design. Anything else is.
    """
    texts = _release_text(folder)
    library = "\n".join(t for p, t in texts.items() if p.startswith("course_lib") and p.endswith(".py")
                        and not p.startswith(os.path.join("course_lib", "checks")))
    leaks = []
    for line in solution_lines(root):
        for path, text in texts.items():
            if line in text and not (path.startswith("course_lib") and line in library):
                leaks.append(f"solution line {line!r} in {path}")
    names, values = hidden_secrets(root)
    for name in names:
        pat = re.compile(rf"\b{re.escape(name)}\b")
        leaks += [f"hidden-test name {name!r} in {p}" for p, t in texts.items() if pat.search(t)]
    for value in values:
        leaks += [f"hidden-test value {value[:40]!r} in {p}" for p, t in texts.items() if value in t]
    for forbidden in ("solutions", "tests", "benchmarks", ".ci"):
        if os.path.exists(os.path.join(folder, forbidden)):
            leaks.append(f"folder {forbidden}/ is in the release")
    return leaks


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m course_lib release", description="Build the student release.")
    ap.add_argument("--out", default="release", help="output folder (an archive OUT.zip is written beside it)")
    ap.add_argument("--address", help="the release's public GitHub address (https://github.com/OWNER/NAME): its "
                    "Binder/Colab links and setup cells point there (default: pyproject.toml's [tool.course])")
    ap.add_argument("--branch", help="the release's branch (default: the declared one)")
    args = ap.parse_args(argv)
    try:
        folder = build_release(args.out, address=args.address, branch=args.branch)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    leaks = find_leaks(folder)
    if leaks:
        print("refusing: the release would leak\n  " + "\n  ".join(leaks[:20]), file=sys.stderr)
        shutil.rmtree(folder)
        if os.path.exists(folder + ".zip"):
            os.remove(folder + ".zip")
        return 1
    print(f"release: {folder} and {folder}.zip (no solution code, no hidden tests)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
