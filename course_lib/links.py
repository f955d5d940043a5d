"""Where learners open the course: Binder and Colab links generated from ONE declared address.

The repository's public address is declared once, in ``pyproject.toml``::

    [tool.course]
    repository = "https://github.com/OWNER/NAME"
    branch = "main"

``python -m course_lib links`` writes, from it,

* the README's Binder badge and its per-lesson "open in Binder / open in Colab" table (between the markers
  ``<!-- links:start -->`` and ``<!-- links:end -->``);
* in each lesson notebook (and each exercise source in ``solutions/``), a links line at the end of the first
  markdown cell, and a setup block at the top of the first code cell (tagged ``course-setup``) that makes the
  notebook self-sufficient: where ``course_lib`` cannot be imported (Colab, a fresh kernel), it installs the course
  from the declared address, keeping the torch the host already has (Colab's is a CUDA build); elsewhere it does
  nothing.

``python -m course_lib links --check`` lists what is stale (a test runs it), so a fork changes one line and
runs one command. ``python -m course_lib release --address URL`` writes the same links for a release.
"""
from __future__ import annotations

import argparse
import glob
import os
import re
import sys
from urllib.parse import quote

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START, END = "<!-- links:start -->", "<!-- links:end -->"
NB_MARK = "<!-- links -->"
SETUP_TAG = "course-setup"
GITHUB = re.compile(r"^https://github\.com/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?$")


def declared(root: str = ROOT) -> dict:
    """{"repository": ..., "branch": ...} from ``[tool.course]`` in ``pyproject.toml``."""
    text = open(os.path.join(root, "pyproject.toml"), encoding="utf-8").read()
    try:
        import tomllib
        conf = tomllib.loads(text).get("tool", {}).get("course", {})
    except ModuleNotFoundError:  # Python 3.10: the two keys are plain strings
        section = re.search(r"^\[tool\.course\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
        body = section.group(1) if section else ""
        conf = dict(re.findall(r'^\s*(\w+)\s*=\s*"([^"]*)"', body, re.M))
    if "repository" not in conf:
        raise ValueError("pyproject.toml must declare [tool.course] repository = \"https://github.com/OWNER/NAME\"")
    return {"repository": conf["repository"], "branch": conf.get("branch", "main")}


def owner_name(repository: str) -> tuple[str, str]:
    """(owner, name) of a GitHub address ``https://github.com/OWNER/NAME`` (``.git`` and a trailing / allowed);
    ValueError naming the parameter for any other address."""
    m = GITHUB.match(repository)
    if not m:
        raise ValueError(f"repository must be a GitHub address https://github.com/OWNER/NAME; got {repository!r}")
    return m.group(1), m.group(2)


def binder_url(repository: str, branch: str, path: str) -> str:
    owner, name = owner_name(repository)
    return f"https://mybinder.org/v2/gh/{owner}/{name}/{quote(branch)}?urlpath={quote('lab/tree/' + path, safe='')}"


def colab_url(repository: str, branch: str, path: str) -> str:
    owner, name = owner_name(repository)
    return f"https://colab.research.google.com/github/{owner}/{name}/blob/{quote(branch)}/{path}"


def install_spec(repository: str, branch: str) -> str:
    """What pip installs on a kernel without the course: the repository at ``branch``."""
    owner_name(repository)
    return f"course_lib @ git+{repository.rstrip('/')}@{branch}"


SETUP_BEGIN = "# --- course setup (written by `python -m course_lib links`) ---"
SETUP_END = "# --- end of course setup ---"


def setup_source(repository: str, branch: str) -> str:
    """The setup block at the top of every notebook's first code cell: install the course where it is missing,
    else nothing."""
    return f'''{SETUP_BEGIN}
# On Colab (or any kernel without the course) this installs it, keeping the torch already there; elsewhere it does
# nothing. COURSE_SOURCE may name another copy (a fork, a folder).
import importlib.util, os, subprocess, sys
if importlib.util.find_spec("course_lib") is None:
    source = os.environ.get("COURSE_SOURCE", "{install_spec(repository, branch)}")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", source], check=True)
    importlib.invalidate_caches()
{SETUP_END}'''


def _without_setup(source: str) -> str:
    """A cell's source with its setup block (if any) removed."""
    if SETUP_BEGIN in source and SETUP_END in source:
        head, _, rest = source.partition(SETUP_BEGIN)
        _, _, tail = rest.partition(SETUP_END)
        return (head + tail).strip("\n")
    return source


def badge(repository: str, branch: str, path: str = "lessons/00_tour.ipynb") -> str:
    return (f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder_url(repository, branch, path)}) "
            f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({colab_url(repository, branch, path)})")


def _notebooks(root: str) -> list[str]:
    """The lessons, and the exercise sources (``solutions/``; in a student release, which has none, ``exercises/``)."""
    exercises = "solutions" if os.path.isdir(os.path.join(root, "solutions")) else "exercises"
    return sorted(glob.glob(os.path.join(root, "lessons", "*.ipynb")) + glob.glob(os.path.join(root, exercises, "*.ipynb")))


def declare(root: str, repository: str, branch: str) -> None:
    """Rewrite ``[tool.course]`` in ``root``'s pyproject.toml to ``repository`` and ``branch`` (a release's address)."""
    owner_name(repository)
    path = os.path.join(root, "pyproject.toml")
    text = open(path, encoding="utf-8").read()
    section = re.search(r"^\[tool\.course\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    body = f'\nrepository = "{repository}"\nbranch = "{branch}"\n\n'
    if section:
        text = text[: section.start(1)] + body + text[section.end(1):]
    else:
        text = text.rstrip("\n") + "\n\n[tool.course]" + body
    open(path, "w", encoding="utf-8").write(text.rstrip("\n") + "\n")


def _title(path: str) -> str:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        m = re.search(r"^#\s+(.+)$", cell.source, re.M) if cell.cell_type == "markdown" else None
        if m:
            return m.group(1).strip()
    return os.path.basename(path)


def readme_block(root: str, repository: str, branch: str) -> str:
    rows = ["| notebook | Binder | Colab |", "|---|---|---|"]
    for path in sorted(glob.glob(os.path.join(root, "lessons", "*.ipynb"))):
        rel = os.path.relpath(path, root).replace(os.sep, "/")
        rows.append(f"| {_title(path)} | [open]({binder_url(repository, branch, rel)}) | "
                    f"[open]({colab_url(repository, branch, rel)}) |")
    return "\n".join([START, badge(repository, branch), "", *rows, END])


def notebook_line(repository: str, branch: str, rel: str) -> str:
    return (f"{NB_MARK} Open this notebook on [Binder]({binder_url(repository, branch, rel)}) or "
            f"[Colab]({colab_url(repository, branch, rel)}) (the first code cell installs the course there).")


def _update_notebook(nb, repository: str, branch: str, rel: str) -> bool:
    """Put the links line and the setup cell in ``nb``; returns True if anything changed."""
    import nbformat

    changed = False
    first = next(c for c in nb.cells if c.cell_type == "markdown")
    lines = [ln for ln in first.source.split("\n") if not ln.startswith(NB_MARK)]
    while lines and not lines[-1].strip():
        lines.pop()
    new = "\n".join(lines + ["", notebook_line(repository, branch, rel)])
    if new != first.source:
        first.source, changed = new, True
    # the setup block heads the first code cell (a cell of its own would renumber every cell after it, and graders
    # and reports address exercise cells by number)
    setup = setup_source(repository, branch)
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code:
        nb.cells.append(nbformat.v4.new_code_cell(setup, metadata={"tags": [SETUP_TAG]}))
        return True
    cell = code[0]
    rest = _without_setup(cell.source)
    source = setup + ("\n\n" + rest if rest.strip() else "")
    if cell.source != source:
        cell.source, changed = source, True
    tags = list(cell.metadata.get("tags", []))
    if SETUP_TAG not in tags:
        cell.metadata["tags"] = tags + [SETUP_TAG]
        changed = True
    return changed


def write_links(root: str = ROOT, *, repository: str | None = None, branch: str | None = None,
                check: bool = False) -> list[str]:
    """Write (or, with ``check``, only list) the files whose links are stale. Returns their paths."""
    import nbformat

    conf = declared(root)
    repository, branch = repository or conf["repository"], branch or conf["branch"]
    owner_name(repository)
    stale = []
    readme = os.path.join(root, "README.md")
    text = open(readme, encoding="utf-8").read()
    block = readme_block(root, repository, branch)
    if START in text and END in text:
        new = text[: text.index(START)] + block + text[text.index(END) + len(END):]
    else:
        head, _, rest = text.partition("\n")
        new = f"{head}\n\n{block}\n{rest}"
    if new != text:
        stale.append(readme)
        if not check:
            open(readme, "w", encoding="utf-8").write(new)
    for path in _notebooks(root):
        nb = nbformat.read(path, as_version=4)
        rel = os.path.relpath(path, root).replace(os.sep, "/")
        if "solutions" in rel.split("/"):
            rel = rel.replace("solutions/", "exercises/", 1)  # learners open the generated exercise notebook
        if _update_notebook(nb, repository, branch, rel):
            stale.append(path)
            if not check:
                nbformat.write(nb, path)
    return stale


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m course_lib links",
                                 description="Write the Binder/Colab links from pyproject.toml's [tool.course].")
    ap.add_argument("--check", action="store_true", help="only list stale files; exit 1 if any")
    ap.add_argument("--repository", help="override the declared address (e.g. a release's)")
    ap.add_argument("--branch", help="override the declared branch")
    args = ap.parse_args(argv)
    try:
        stale = write_links(repository=args.repository, branch=args.branch, check=args.check)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in stale:
        print(("stale: " if args.check else "wrote: ") + os.path.relpath(path, ROOT))
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
