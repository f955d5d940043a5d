"""Instructor grading on a sample class: correct, partial, empty and hostile submissions.

The sample lesson (number 99) is made here so that the pipeline is tested on its own: 99.1 double(x) = 2x,
99.2 gram(X) = X X^T, each with public and hidden checks whose expected values are computed in the grader.
"""
import csv
import glob
import os
import shutil

import nbformat
import pytest
import torch

from course_lib import exercises, grading

IMPORTS = "import torch\nfrom course_lib.exercises import check"
DOUBLE = "def double(x):\n    '''Return 2 x.'''\n    # BEGIN SOLUTION\n    return 2 * x\n    # END SOLUTION"
GRAM = "def gram(X):\n    '''Return X X^T.'''\n    # BEGIN SOLUTION\n    return X @ X.T\n    # END SOLUTION"


def _pub_double(fn):
    """double([1, 2])"""
    got = fn(torch.tensor([1.0, 2.0]))
    assert torch.allclose(torch.as_tensor(got, dtype=torch.float32), torch.tensor([2.0, 4.0])), f"expected [2, 4], got {got}"


def _hid_double_random(fn):
    x = torch.randn(7, generator=torch.Generator().manual_seed(3))
    got = torch.as_tensor(fn(x))
    assert got.shape == x.shape and torch.allclose(got, 2 * x)


def _hid_double_matrix(fn):
    x = torch.arange(6.0).reshape(2, 3)
    assert torch.allclose(torch.as_tensor(fn(x)), 2 * x)


def _pub_gram(fn):
    """gram of two points"""
    X = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    got = torch.as_tensor(fn(X))
    assert got.shape == (2, 2) and torch.allclose(got, X @ X.T), f"expected {X @ X.T}, got {got}"


def _hid_gram(fn):
    X = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.allclose(torch.as_tensor(fn(X)), X @ X.T)


PUBLIC = {"99.1": [_pub_double], "99.2": [_pub_gram]}
HIDDEN = {"99.1": [_hid_double_random, _hid_double_matrix], "99.2": [_hid_gram]}
CHECKS = (PUBLIC, HIDDEN)


def notebook(*cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for i, (kind, src) in enumerate(cells):
        c = nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src)
        c["id"] = f"c{i}"
        nb.cells.append(c)
    return nb


def solution_nb(double=DOUBLE, gram=GRAM, extra_top="", extra_end=""):
    cells = [("code", IMPORTS + ("\n" + extra_top if extra_top else "")),
             ("md", "### Exercise 99.1: double"), ("code", double), ("code", 'check("99.1", double)'),
             ("md", "### Exercise 99.2: gram"), ("code", gram), ("code", 'check("99.2", gram)')]
    if extra_end:
        cells.append(("code", extra_end))
    return notebook(*cells)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    (root / "solutions").mkdir()
    nbformat.write(solution_nb(), root / "solutions" / "99_sample.ipynb")
    return root


# hostile and ordinary submissions: name -> (notebook or raw text, expected {exercise: (points, status)})
WRONG_DOUBLE = "def double(x):\n    return 3 * x"
SECRET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hidden", "__init__.py")
SUBMISSIONS = {
    "alice_correct": (solution_nb(), {"99.1": (3, "passed"), "99.2": (2, "passed")}),
    "bob_partial": (solution_nb(double=WRONG_DOUBLE), {"99.1": (0, "failed"), "99.2": (2, "passed")}),
    "carol_empty": (None, {"99.1": (0, "not implemented"), "99.2": (0, "not implemented")}),
    "dan_raises": (solution_nb(double="def double(x):\n    raise ValueError('oops')"),
                   {"99.1": (0, "failed"), "99.2": (2, "passed")}),
    # a cell that never finishes or ends the process is skipped like a cell that raises: it costs what needs it
    "erin_loops": (solution_nb(extra_top="while True:\n    pass"), {"99.1": (3, "passed"), "99.2": (2, "passed")}),
    "erin_loops_where_double_is": (solution_nb(double=DOUBLE + "\nwhile True:\n    pass"),
                                   {"99.1": (0, "missing"), "99.2": (2, "passed")}),
    "frank_sys_exit": (solution_nb(extra_top="import sys\nsys.exit(0)"), {"99.1": (3, "passed"), "99.2": (2, "passed")}),
    # a fault in one exercise's function costs that exercise only: 99.2 is graded in a fresh worker
    "gina_os_exit": (solution_nb(double="import os\ndef double(x):\n    os._exit(3)"),
                     {"99.1": (0, "crashed"), "99.2": (2, "passed")}),
    "hank_kills_kernel": (solution_nb(extra_top="import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"),
                          {"99.1": (3, "passed"), "99.2": (2, "passed")}),
    "hugo_ends_every_cell": (notebook(*[("code", "import os\nos._exit(1)")] * 4, ("code", DOUBLE), ("code", GRAM)),
                             {"99.1": (0, "crashed"), "99.2": (0, "crashed")}),
    "ivy_prints_megabytes": (solution_nb(extra_top="for _ in range(200):\n    print('x' * 100_000)"),
                             {"99.1": (3, "passed"), "99.2": (2, "passed")}),
    "jack_not_a_notebook": ("{ this is not json", {"99.1": (0, "invalid"), "99.2": (0, "invalid")}),
    "kim_monkeypatches": (solution_nb(double=WRONG_DOUBLE, extra_top=(
        "import torch, numpy, builtins\ntorch.allclose = lambda *a, **k: True\nnumpy.allclose = lambda *a, **k: True\n"
        "builtins.AssertionError = Exception\nimport course_lib.exercises as ce\nce.check = lambda *a, **k: 'passed'")),
        {"99.1": (0, "failed"), "99.2": (2, "passed")}),
    "lea_fake_tensor": (solution_nb(double=(
        "import torch\nclass Always(torch.Tensor):\n    def __eq__(self, o):\n        return True\n"
        "def double(x):\n    return torch.zeros_like(x).as_subclass(Always)")),
        {"99.1": (0, "failed"), "99.2": (2, "passed")}),
    "max_reads_hidden": (solution_nb(double=f"def double(x):\n    return open({SECRET!r}).read()"),
                         {"99.1": (0, "failed"), "99.2": (2, "passed")}),
    "oscar_escapes": (solution_nb(double=(
        "import subprocess, ctypes\n"
        "def double(x):\n"
        f"    try:\n        open({SECRET!r}, 'a').write('# pwned')\n    except Exception:\n        pass\n"
        "    try:\n        subprocess.run(['true'])\n    except Exception:\n        pass\n"
        "    return ctypes.CDLL(None)")),
        {"99.1": (0, "failed"), "99.2": (2, "passed")}),
    "pia_error_in_last_cell": (solution_nb(extra_end="raise ValueError('late')"),
                               {"99.1": (3, "passed"), "99.2": (2, "passed")}),
    "nina_memory_hog": (solution_nb(double="def double(x):\n    big = bytearray(8 * 1024**3)\n    return 2 * x"),
                        {"99.1": (0, "failed"), "99.2": (2, "passed")}),
}


def write_class(folder, course_root):
    stub = exercises.student_notebook(nbformat.read(course_root / "solutions" / "99_sample.ipynb", as_version=4))
    for name, (nb, _) in SUBMISSIONS.items():
        target = folder / f"{name}.ipynb"
        if nb is None:
            nbformat.write(stub, target)
        elif isinstance(nb, str):
            target.write_text(nb)
        else:
            nbformat.write(nb, target)


def read_gradebook(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_sample_class_gives_exactly_the_expected_gradebook(tmp_path, course):
    subs = tmp_path / "submissions"
    subs.mkdir()
    write_class(subs, course)
    secret_before = open(SECRET).read()
    limits = grading.Limits(timeout_s=25, call_timeout_s=10, memory_mb=3000)
    out = tmp_path / "grades"
    path = grading.grade_class(str(subs), "99", str(out), jobs=2, limits=limits, root=str(course), checks=CHECKS,
                               progress=lambda s: None)
    rows = read_gradebook(path)
    got = {(r["student"], r["exercise"]): (int(r["points"]), r["status"]) for r in rows}
    expected = {(s, ex): v for s, (_, exp) in SUBMISSIONS.items() for ex, v in exp.items()}
    assert got == expected
    assert len(rows) == len(expected)  # no duplicated row
    assert all(int(r["max_points"]) == (3 if r["exercise"] == "99.1" else 2) for r in rows)
    reasons = {(r["student"], r["exercise"]): r["reason"] for r in rows}
    assert reasons[("erin_loops", "99.1")].startswith("[notebook errors: cell 1: did not finish (no answer within the time "
                                                      "limit of 25 s for the submission")
    assert "skipped, and the notebook run again without it" in reasons[("erin_loops", "99.1")]
    assert "cell 3: did not finish" in reasons[("erin_loops_where_double_is", "99.1")]
    assert reasons[("hugo_ends_every_cell", "99.1")] == (
        "while running the notebook: the notebook ended its own process (exit code 1: sys.exit/os._exit?) in cell 4 "
        "(cells 1, 2, 3 were skipped already)")
    assert "SystemExit" in reasons[("frank_sys_exit", "99.1")]
    # cells are numbered as the learner counts them, every cell from the top (markdown included)
    assert reasons[("pia_error_in_last_cell", "99.1")] == "[notebook errors: cell 8: ValueError: late]"
    assert "exit code 3" in reasons[("gina_os_exit", "99.1")]
    assert "cell 1: stopped the notebook (the notebook's process was killed (SIGKILL" in reasons[("hank_kills_kernel", "99.1")]
    assert "not a valid notebook" in reasons[("jack_not_a_notebook", "99.1")]
    assert open(SECRET).read() == secret_before
    fb = (out / "feedback" / "bob_partial.md").read_text()
    assert "Score: 2 / 5" in fb and "expected [2, 4]" in fb
    # hidden checks are reported by number only: their code and names never reach the feedback
    assert "_hid_double" not in fb and "hidden check 1 failed" in fb

    # grading again resumes: nothing is regraded, no row duplicated, same scores
    path2 = grading.grade_class(str(subs), "99", str(out), jobs=2, limits=limits, root=str(course), checks=CHECKS,
                                progress=lambda s: s.startswith("graded") and pytest.fail("a complete student was graded again"))
    assert read_gradebook(path2) == rows


def test_interrupted_run_resumes_without_loss_or_duplicates(tmp_path, course):
    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ("alice_correct", "bob_partial"):
        nbformat.write(SUBMISSIONS[name][0], subs / f"{name}.ipynb")
    out = tmp_path / "grades"
    out.mkdir()
    # a gradebook left by an interrupted run: alice complete, bob half-written
    with open(out / "gradebook.csv", "w", newline="") as f:
        w = csv.DictWriter(f, grading.FIELDS)
        w.writeheader()
        w.writerow({"student": "alice_correct", "exercise": "99.1", "points": 3, "max_points": 3, "status": "passed", "reason": ""})
        w.writerow({"student": "alice_correct", "exercise": "99.2", "points": 2, "max_points": 2, "status": "passed", "reason": ""})
        w.writerow({"student": "bob_partial", "exercise": "99.1", "points": 0, "max_points": 3, "status": "failed", "reason": ""})
    graded = []
    path = grading.grade_class(str(subs), "99", str(out), jobs=1, root=str(course), checks=CHECKS, progress=graded.append)
    rows = read_gradebook(path)
    assert [r["student"] for r in rows].count("alice_correct") == 2
    assert [r["student"] for r in rows].count("bob_partial") == 2
    graded = [g for g in graded if g.startswith("graded ")]
    assert len(graded) == 1 and graded[0].startswith("graded bob_partial")
    # the same submission graded twice (fresh run) gives the same score
    path3 = grading.grade_class(str(subs), "99", str(tmp_path / "again"), jobs=1, root=str(course), checks=CHECKS,
                                progress=lambda s: None)
    assert sorted((r["student"], r["exercise"], r["points"]) for r in read_gradebook(path3)) == \
        sorted((r["student"], r["exercise"], r["points"]) for r in rows)


def test_unknown_lesson_and_missing_folder_are_clear_errors(tmp_path, course):
    with pytest.raises(ValueError, match="lesson must be one with exercises"):
        grading.lesson_spec("42", str(course))
    with pytest.raises(ValueError, match="submissions must be a folder"):
        grading.grade_class(str(tmp_path / "nope"), "99", str(tmp_path / "o"), root=str(course), checks=CHECKS)


def test_codec_round_trip_and_refuses_code():
    from course_lib import codec

    value = {"a": [1, 2.5, float("nan"), None, True, "s"], "t": torch.arange(6.0).reshape(2, 3), "c": 1 + 2j,
             "tup": (torch.tensor([1], dtype=torch.int64),)}
    back = codec.loads(codec.dumps({"value": value}))["value"]
    assert back["a"][:2] == [1, 2.5] and back["a"][2] != back["a"][2] and back["c"] == 1 + 2j
    assert torch.equal(back["t"], value["t"]) and back["tup"][0].dtype == torch.int64
    with pytest.raises(codec.CodecError):
        codec.dumps({"value": object()})
    with pytest.raises(codec.CodecError):
        codec.dumps({"value": lambda: 0})


REAL_SOLUTIONS = sorted(glob.glob(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "solutions", "*.ipynb")))


@pytest.mark.slow
@pytest.mark.parametrize("solution", REAL_SOLUTIONS, ids=[os.path.basename(p) for p in REAL_SOLUTIONS])
def test_real_lesson_solution_gets_full_marks_and_stub_none(solution, tmp_path):
    """Through the real pipeline (sandbox, public + hidden checks): solution = full marks, stub = 0."""
    lesson = os.path.basename(solution)[:2]
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(solution, subs / "solution.ipynb")
    stub = os.path.join(os.path.dirname(os.path.dirname(solution)), "exercises", os.path.basename(solution))
    shutil.copy(stub, subs / "stub.ipynb")
    # check_setup=False: the preflight would grade the same solution once more
    path = grading.grade_class(str(subs), lesson, str(tmp_path / "out"), jobs=2, progress=lambda s: None, check_setup=False)
    rows = read_gradebook(path)
    sol = [r for r in rows if r["student"] == "solution"]
    assert sol and all(r["status"] == "passed" and r["points"] == r["max_points"] for r in sol), sol
    assert all(r["status"] == "not implemented" and r["points"] == "0" for r in rows if r["student"] == "stub")
