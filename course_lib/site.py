"""The executed static course: every lesson run headless and rendered to HTML, with an index.

    python -m course_lib site --out site/

Each lesson executes top to bottom at its default settings (a fresh kernel, ``COURSE_FAST`` as set in
the environment), so every figure is in the page as an image, with its text alternative; widgets keep their
default state. The pages are self-contained for reading offline (a classroom projector, an archive): the
formulas are typeset by a local copy of MathJax (``site/mathjax/``, from the ``jupyter-server-mathjax``
package) instead of a CDN. The index lists each lesson's claims at the default settings and whether they
hold (read from the executed figures' metadata, so it is what the pages show).
"""
from __future__ import annotations

import argparse
import glob
import html
import os
import re
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MATHJAX_DIR = "mathjax"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"  # a configuration the package ships


def _title(nb, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", cell.source, re.M)
            if m:
                return m.group(1).strip()
    return fallback


def copy_mathjax(outdir: str) -> str:
    """Copy MathJax (shipped by ``jupyter-server-mathjax``) next to the pages; returns the relative script URL."""
    try:
        import jupyter_server_mathjax
    except ImportError as exc:  # pragma: no cover - a dependency of the course
        raise RuntimeError("the static site needs the jupyter-server-mathjax package (pip install "
                           "jupyter-server-mathjax) to typeset formulas without a network") from exc
    src = os.path.join(os.path.dirname(jupyter_server_mathjax.__file__), "static")
    dst = os.path.join(outdir, MATHJAX_DIR)
    if not os.path.exists(os.path.join(dst, "MathJax.js")):
        shutil.copytree(src, dst, dirs_exist_ok=True)
    return f"{MATHJAX_DIR}/MathJax.js?config={MATHJAX_CONFIG}"


def add_alt_text(page: str, nb) -> str:
    """Give every figure its text alternative: the lab template ignores the outputs' ``alt`` metadata (and
    nbconvert then writes a generic "No description"), so the alt attribute is set on the ``<img>`` whose
    data it describes."""
    from bs4 import BeautifulSoup  # nbconvert's own HTML post-processor

    alts = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            alt = out.get("metadata", {}).get("image/png", {}).get("alt")
            data = out.get("data", {}).get("image/png")
            if alt and data:
                alts["data:image/png;base64," + "".join(data.split())] = alt
    if not alts:
        return page
    soup = BeautifulSoup(page, features="html.parser")
    for img in soup.find_all("img"):
        alt = alts.get("".join(img.get("src", "").split()))
        if alt:
            img["alt"] = alt
    return str(soup)


def notebook_claims(nb) -> list[dict]:
    """The claims the executed notebook's figures carry: [{experiment, title, claims: [...]}, ...] (last
    state of each dashboard, in order)."""
    found = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            meta = out.get("metadata", {}).get("course")
            if meta:
                found[meta["experiment"]] = meta
    return list(found.values())


def build_site(outdir: str, root: str = ROOT, lessons: list[str] | None = None, timeout: int = 600) -> str:
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    os.makedirs(outdir, exist_ok=True)
    paths = sorted(glob.glob(os.path.join(root, "lessons", "*.ipynb")))
    if lessons:
        paths = [p for p in paths if os.path.basename(p)[:2] in {f"{int(x):02d}" for x in lessons}]
        if not paths:
            raise ValueError(f"lessons must name existing lesson numbers; got {lessons}")
    exporter = HTMLExporter(template_name="lab", mathjax_url=copy_mathjax(outdir))
    entries = []
    for path in paths:
        name = os.path.basename(path)[: -len(".ipynb")]
        nb = nbformat.read(path, as_version=4)
        t0 = time.perf_counter()
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": os.path.dirname(path)}}).execute()
        body, _ = exporter.from_notebook_node(nb)
        body = add_alt_text(body, nb)
        with open(os.path.join(outdir, f"{name}.html"), "w", encoding="utf-8") as f:
            f.write(body)
        entries.append((name, _title(nb, name), time.perf_counter() - t0, notebook_claims(nb)))
        print(f"rendered {name} ({entries[-1][2]:.1f} s)")
    try:
        from .links import declared

        address = declared(root)
    except ValueError:  # no declared address: the index simply has no Binder/Colab links
        address = None
    with open(os.path.join(outdir, "index.html"), "w", encoding="utf-8") as f:
        f.write(index_html(entries, address))
    return os.path.join(outdir, "index.html")


_ICON = {"holds": "✓", "fails": "✗", "does not apply": "–"}


def index_html(entries, address: dict | None = None) -> str:
    """The index: each lesson's page, its claims as measured, and (given ``address``, the declared
    ``{"repository", "branch"}``) links to open the notebook on Binder and Colab."""
    from .links import binder_url, colab_url

    items = []
    for name, title, _, experiments in entries:
        rows = []
        for exp in experiments:
            for c in exp["claims"]:
                why = f" — {html.escape(c['why'])}" if c.get("why") else ""
                rows.append(f"<li><code>{html.escape(c['id'])}</code> {_ICON[c['verdict']]} {c['verdict']}: "
                            f"{html.escape(c['statement'])}{why}</li>")
        claims = f"<ul class='claims'>{''.join(rows)}</ul>" if rows else ""
        live = ""
        if address:
            rel = f"lessons/{name}.ipynb"
            live = (f' (open the notebook on <a href="{html.escape(binder_url(address["repository"], address["branch"], rel))}">'
                    f'Binder</a> or <a href="{html.escape(colab_url(address["repository"], address["branch"], rel))}">'
                    "Colab</a>)")
        items.append(f'<li><a href="{html.escape(name)}.html">{html.escape(title)}</a>{live}{claims}</li>')
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Why gradient methods train
over-parameterized ReLU networks</title><style>body{{font-family:sans-serif;max-width:52em;margin:2em auto}}
ul.claims{{font-size:90%;color:#333}}</style>
</head><body><h1>Why gradient methods train over-parameterized ReLU networks</h1>
<p>The executed course: every lesson with its figures at the default settings, and under each lesson the claims
its text makes, as measured in that run (✓ holds, ✗ fails, – does not apply). To move the sliders, open the
notebooks in JupyterLab (<code>bash course.sh lab</code>).</p><ol>{''.join(items)}</ol></body></html>"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m course_lib site", description="Render the executed course to HTML.")
    ap.add_argument("--out", default="site", help="output folder (default: site/)")
    ap.add_argument("--lessons", nargs="*", help="lesson numbers (default: all)")
    args = ap.parse_args(argv)
    try:
        index = build_site(args.out, lessons=args.lessons)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"open {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
