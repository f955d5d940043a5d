"""Binder/Colab links from one declared address, and the setup cell that installs the course where it is missing."""
import json
import os
import shutil
import subprocess
import sys
import sysconfig

import nbformat
import pytest

from course_lib import links

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _copy(tmp_path):
    dst = tmp_path / "repo"
    for name in ("README.md", "pyproject.toml"):
        os.makedirs(dst, exist_ok=True)
        shutil.copy(os.path.join(ROOT, name), dst / name)
    for folder in ("lessons", "solutions"):
        shutil.copytree(os.path.join(ROOT, folder), dst / folder)
    return dst


def test_a_fork_changes_one_line_and_runs_one_command(tmp_path):
    repo = _copy(tmp_path)
    text = (repo / "pyproject.toml").read_text()
    old = links.declared(str(repo))["repository"]
    (repo / "pyproject.toml").write_text(text.replace(old, "https://github.com/a-fork/the-course"))
    stale = links.write_links(str(repo), check=True)
    assert str(repo / "README.md") in stale and any(p.endswith("00_tour.ipynb") for p in stale)
    links.write_links(str(repo))
    assert links.write_links(str(repo), check=True) == []  # idempotent
    readme = (repo / "README.md").read_text()
    assert "https://mybinder.org/v2/gh/a-fork/the-course/main?urlpath=lab%2Ftree%2Flessons%2F00_tour.ipynb" in readme
    assert "https://colab.research.google.com/github/a-fork/the-course/blob/main/lessons/03_" in readme
    assert old.split("github.com/")[1] not in readme
    nb = nbformat.read(repo / "lessons" / "00_tour.ipynb", as_version=4)
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert "course-setup" in first_code.metadata["tags"]
    assert "git+https://github.com/a-fork/the-course@main" in first_code.source
    # the block heads the first code cell (no cell is added: exercise cells keep their numbers), and a second address
    # replaces it rather than adding another
    before = nbformat.read(os.path.join(ROOT, "lessons", "00_tour.ipynb"), as_version=4)
    assert len(nb.cells) == len(before.cells)
    assert first_code.source.count(links.SETUP_BEGIN) == 1 and "from course_lib.lessons import tour" in first_code.source
    links.write_links(str(repo), repository="https://github.com/another/copy")
    again = nbformat.read(repo / "lessons" / "00_tour.ipynb", as_version=4)
    code = next(c for c in again.cells if c.cell_type == "code")
    assert code.source.count(links.SETUP_BEGIN) == 1 and "another/copy" in code.source and "a-fork" not in code.source
    assert "from course_lib.lessons import tour" in code.source
    assert "colab.research.google.com/github/a-fork/the-course/blob/main/lessons/00_tour.ipynb" in nb.cells[0].source
    sol = nbformat.read(repo / "solutions" / "01_kernel_regime.ipynb", as_version=4)
    assert "blob/main/exercises/01_kernel_regime.ipynb" in sol.cells[0].source  # learners open the exercise


def test_bad_addresses_are_refused(tmp_path):
    with pytest.raises(ValueError, match="GitHub address"):
        links.binder_url("https://gitlab.com/x/y", "main", "a.ipynb")
    repo = _copy(tmp_path)
    (repo / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    with pytest.raises(ValueError, match=r"\[tool.course\] repository"):
        links.declared(str(repo))


def _filtered_site_packages(tmp_path) -> str:
    """This environment's packages without the course (symlinks), for a venv that lacks course_lib."""
    site = sysconfig.get_paths()["purelib"]
    view = tmp_path / "site-view"
    view.mkdir()
    for entry in os.listdir(site):
        low = entry.lower()
        if "course_lib" in low or "editable" in low or low.endswith(".pth"):
            continue
        os.symlink(os.path.join(site, entry), view / entry)
    return str(view)


@pytest.mark.slow
def test_a_kernel_without_the_course_installs_it_from_the_first_cell(tmp_path):
    """Offline: a fresh venv whose only packages are this environment's (minus the course) runs a lesson's setup
    cell against a local copy of the repository, then runs the lesson's first experiment."""
    venv = tmp_path / "venv"
    # no pip of its own: pip and a recent setuptools come from the view below, as everything else does
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    purelib = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(purelib, "course-view.pth"), "w") as f:
        f.write(_filtered_site_packages(tmp_path) + "\n")
    source = tmp_path / "course-copy"
    ignore = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info", "artifacts", "site", "out", "build")
    shutil.copytree(ROOT, source, ignore=ignore)
    work = tmp_path / "work"
    work.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "COURSE_FAST": "1",
           "COURSE_SOURCE": str(source), "PIP_NO_INDEX": "1", "MPLBACKEND": "Agg",
           # offline: build with the setuptools already present instead of fetching one into an isolated env
           "PIP_NO_BUILD_ISOLATION": "0"}
    check = subprocess.run([py, "-c", "import course_lib"], cwd=work, env=env, capture_output=True, text=True)
    assert check.returncode != 0, "the test venv must start without the course"
    nb = nbformat.read(os.path.join(ROOT, "lessons", "00_tour.ipynb"), as_version=4)
    setup = next((c for c in nb.cells if c.cell_type == "code" and "course-setup" in c.metadata.get("tags", [])), None)
    setup = setup.source if setup is not None else links.setup_source(**links.declared(ROOT))
    program = setup + "\n" + "\n".join([
        "from course_lib.lessons import tour",
        "import json; run = tour.EXPERIMENT.execute(width=64)",
        "print(json.dumps({'ok': bool(run.result['history'].steps[-1] > 0), 'claims': len(run.claims)}))"])
    r = subprocess.run([py, "-c", program], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"ok": True, "claims": 4}
def test_links_in_the_repository_are_current():
    """Fails when the declared address changed (or a lesson was added) and `python -m course_lib links` was not run."""
    stale = links.write_links(ROOT, check=True)
    assert not stale, f"stale links in {stale}: run `python -m course_lib links`"


