"""The class report (grades/report.html and report.csv): per exercise, the score distribution and the most
frequent failing checks with their hints and the share of students who hit each. A synthetic class with planted
mistakes in known shares must be reported with exactly those shares.

PYTEST_DONT_REWRITE: the sample checks below must raise the plain messages a course check raises."""
import csv
import json
import math
import os
import re

import nbformat
import pytest
import torch

from course_lib import grade_report, grading

from .test_grading import notebook

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------------------------
# sample lesson 97: checks whose hints name the mistake
# ----------------------------------------------------------------------------------------------
def _pub_scale(fn):
    """scale of [1, 2]"""
    x = torch.tensor([1.0, 2.0], dtype=torch.float64)
    got, exp = torch.as_tensor(fn(x), dtype=torch.float64), x / (2 * math.pi)
    hint = ("the 1/(2 pi) factor is missing" if torch.allclose(got, x) else
            "divide by 2 pi, not pi" if torch.allclose(got, x / math.pi) else "scale(x) = x / (2 pi)")
    assert torch.allclose(got, exp), f"expected {exp.tolist()}, got {got.tolist()}; hint: {hint}"


def _hid_scale(fn):
    """scale of a 3 x 3 matrix"""
    x = torch.arange(9.0, dtype=torch.float64).reshape(3, 3)
    got = torch.as_tensor(fn(x), dtype=torch.float64)
    assert torch.allclose(got, x / (2 * math.pi)), f"wrong on a matrix: got {got[0, 1].item():.4f} at [0, 1]"


def _pub_sq(fn):
    """squared norm of [3, 4]"""
    got = float(fn(torch.tensor([3.0, 4.0])))
    assert got == pytest.approx(25.0), f"expected 25, got {got}" + ("; hint: no square root: the squared norm" if got == pytest.approx(5.0) else "")


CHECKS97 = ({"97.1": [_pub_scale], "97.2": [_pub_sq]}, {"97.1": [_hid_scale], "97.2": []})
SCALE = "def scale(x):\n    return x / (2 * math.pi)"
SQ = "def sq(x):\n    return float((x ** 2).sum())"
MISTAKES = {  # student -> (scale, sq)
    **{f"s{i}": ("def scale(x):\n    return x", SQ) for i in range(4)},            # 40% miss the 1/(2 pi) factor
    "s4": ("def scale(x):\n    return x / math.pi", SQ),                             # 10% divide by pi
    **{f"s{i}": (SCALE, "def sq(x):\n    return float((x ** 2).sum()) ** 0.5") for i in (5, 6, 7)},  # 30% take the root
    "s8": (SCALE, "def sq(x):\n    raise NotImplementedError"),                      # 10% did not do 97.2
    "s9": (SCALE, SQ),                                                               # all right
}


def lesson97(scale=SCALE, sq=SQ):
    return notebook(("code", "import math\nfrom course_lib.exercises import check"),
                    ("md", "### Exercise 97.1: scale"), ("code", scale), ("code", 'check("97.1", scale)'),
                    ("md", "### Exercise 97.2: squared norm"), ("code", sq), ("code", 'check("97.2", sq)'))


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    root = tmp_path_factory.mktemp("course97")
    (root / "solutions").mkdir()
    nbformat.write(lesson97(), root / "solutions" / "97_sample.ipynb")
    subs = root / "subs"
    subs.mkdir()
    for student, (scale, sq) in MISTAKES.items():
        nbformat.write(lesson97(scale, sq), subs / f"{student}.ipynb")
    out = root / "grades"
    said = []
    grading.grade_class(str(subs), "97", str(out), jobs=2, root=str(root), checks=CHECKS97, answered={},
                        limits=grading.Limits(timeout_s=60, call_timeout_s=20), progress=said.append)
    return out, said


def _report_rows(out):
    with open(out / "report.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_report_gives_the_planted_mistakes_with_their_exact_shares(graded_class):
    out, said = graded_class
    assert f"report: {out / 'report.html'}" in said
    rows = _report_rows(out)
    failed = {(r["exercise"], r["item"], r["hint"]): (int(r["students"]), int(r["class_size"]), r["share"])
              for r in rows if r["kind"] == "failed check"}
    assert failed == {
        ("97.1", "scale of [1, 2]", "the 1/(2 pi) factor is missing"): (4, 10, "0.4000"),
        ("97.1", "scale of [1, 2]", "divide by 2 pi, not pi"): (1, 10, "0.1000"),
        ("97.1", "scale of a 3 x 3 matrix (hidden)", "wrong on a matrix: got # at …"): (5, 10, "0.5000"),
        ("97.2", "squared norm of [3, 4]", "no square root: the squared norm"): (3, 10, "0.3000"),
    }
    # the most frequent first
    assert [r["hint"] for r in rows if r["kind"] == "failed check" and r["exercise"] == "97.1"][0].startswith("wrong on a matrix")
    status = {(r["exercise"], r["item"]): int(r["students"]) for r in rows if r["kind"] == "status"}
    assert status == {("97.1", "passed"): 5, ("97.1", "failed"): 5, ("97.2", "passed"): 6, ("97.2", "failed"): 3,
                      ("97.2", "not implemented"): 1}
    points = {(r["exercise"], r["item"]): int(r["students"]) for r in rows if r["kind"] == "points"}
    assert points == {("97.1", "0/2"): 5, ("97.1", "1/2"): 0, ("97.1", "2/2"): 5, ("97.2", "0/1"): 4, ("97.2", "1/1"): 6}
    mean = {r["exercise"]: float(r["item"]) for r in rows if r["kind"] == "mean points"}
    assert mean == {"97.1": 1.0, "97.2": 0.6}


@pytest.mark.slow
def test_gradebook_records_each_failed_check_and_hint(graded_class):
    out, _ = graded_class
    rows = {(r["student"], r["exercise"]): r for r in grading.read_gradebook(str(out / "gradebook.csv"))}
    assert json.loads(rows[("s0", "97.1")]["failed_checks"]) == [
        {"check": "scale of [1, 2]", "hidden": False, "hint": "the 1/(2 pi) factor is missing"},
        {"check": "scale of a 3 x 3 matrix", "hidden": True, "hint": "wrong on a matrix: got # at …"}]
    assert rows[("s9", "97.1")]["failed_checks"] == "" and rows[("s8", "97.2")]["failed_checks"] == ""


@pytest.mark.slow
def test_report_html_is_self_contained_and_says_the_shares(graded_class):
    out, _ = graded_class
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "40% (4 of 10)" in page and "the 1/(2 pi) factor is missing" in page and "30% (3 of 10)" in page
    assert page.count("<svg") == 3  # the class's total score and one per exercise
    assert "<style>" in page
    for remote in ("http:", "https:", "<script", "<link", "src=", "@import", "url("):
        assert remote not in page, remote


def test_summary_counts_students_once_and_leaves_grader_errors_out():
    def row(student, ex, points, status, failed=()):
        return {"student": student, "exercise": ex, "points": str(points), "max_points": "2", "status": status,
                "reason": "", "failed_checks": json.dumps(list(failed)) if failed else ""}

    same = {"check": "c1", "hidden": False, "hint": "h"}
    rows = [row("a", "1.1", 0, "failed", [same, {"check": "c2", "hidden": False, "hint": "h"}]),
            row("b", "1.1", 1, "partial", [same]), row("c", "1.1", 2, "passed"), row("d", "1.1", 0, grading.GRADER_ERROR)]
    s = grade_report.summarize(rows, ["1.1"])
    e = s["exercises"][0]
    assert e["class_size"] == 3 and e["points"] == {0: 1, 1: 1, 2: 1} and s["grader_errors"] == 1
    assert [(g["check"], g["students"], round(g["share"], 4)) for g in e["failing"]] == [("c1", 2, 0.6667), ("c2", 1, 0.3333)]
    page = grade_report.render_html(s, "1")
    assert "67% (2 of 3)" in page and "1 students have rows the grader failed on" in page
    assert "<script" not in grade_report.render_html(grade_report.summarize(
        [row("<script>x</script>", "1.1", 0, "failed", [{"check": "<script>", "hint": "<b>"}])]), "1")


@pytest.mark.slow
def test_real_lesson_class_report_shares(tmp_path):
    """10 submissions of lesson 1 made from its solution, 4 of them planted with 1.1 missing the 1/(2 pi) factor."""
    solution, exercises = grading.lesson_spec("1")
    fname = exercises["1.1"]
    subs = tmp_path / "subs"
    subs.mkdir()
    for i in range(10):
        nb = nbformat.read(solution, as_version=4)
        if i < 4:
            nb.cells.append(nbformat.v4.new_code_cell(
                f"_right = {fname}\ndef {fname}(*args, **kwargs):\n    return _right(*args, **kwargs) * (2 * np.pi)"))
        nbformat.write(nb, subs / f"student{i}.ipynb")
    out = tmp_path / "grades"
    grading.grade_class(str(subs), "1", str(out), jobs=2, progress=lambda s: None)
    public, _ = grading.load_checks()
    first = grading._check_name(public["1.1"][0])
    groups = [r for r in _report_rows(out) if r["kind"] == "failed check" and r["exercise"] == "1.1" and r["item"] == first]
    assert [(int(g["students"]), int(g["class_size"]), g["share"]) for g in groups] == [(4, 10, "0.4000")]
    other = [r for r in _report_rows(out) if r["kind"] == "status" and r["exercise"] != "1.1"]
    assert all(r["item"] == "passed" and r["students"] == "10" for r in other)
    assert re.search(r"40% \(4 of 10\)", (out / "report.html").read_text())
