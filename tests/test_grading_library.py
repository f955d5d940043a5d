"""While exercise N.k is graded, the library functions that ARE its answer (course_lib.checks.answered_by()) are
unavailable to the submission: however the notebook reaches them (module attribute, from-import, alias, default
argument, closure, partial, a copy of the function, a reload, the source), the call fails with a clear message,
the exercise earns nothing and the row's reason says why. Other exercises may still use them.

The mechanism is tested on a sample lesson (98) with an injected registry, and on the real registry where
the lessons declare ANSWERED_BY."""
import json
import os

import nbformat
import pytest
import torch

from course_lib import _grade_worker as W
from course_lib import grading, kernels

from .test_grading import notebook

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANSWER = "course_lib.kernels.relu_h_inf"
REGISTRY = {"98.1": (ANSWER,)}


# ----------------------------------------------------------------------------------------------
# the worker's Hider, in this process (fast)
# ----------------------------------------------------------------------------------------------
def test_hider_reaches_every_reference_and_restores_them():
    X = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = kernels.relu_h_inf(X)
    ns: dict = {}
    exec(  # noqa: S102 - the shapes of reference a notebook can hold
        "import functools, types\n"
        "import course_lib.kernels as K\n"
        "from course_lib.kernels import relu_h_inf as r\n"
        "L = [K.relu_h_inf]\n"
        "P = functools.partial(K.relu_h_inf)\n"
        "COPY = types.FunctionType(K.relu_h_inf.__code__, K.relu_h_inf.__globals__)\n"
        "def d(X, f=K.relu_h_inf):\n    return f(X)\n"
        "def make():\n    g = K.relu_h_inf\n    return lambda X: g(X)\n"
        "c = make()\n", ns)
    calls = {"module": lambda: kernels.relu_h_inf(X), "from-import": lambda: ns["r"](X), "list": lambda: ns["L"][0](X),
             "partial": lambda: ns["P"](X), "copy": lambda: ns["COPY"](X), "default": lambda: ns["d"](X),
             "closure": lambda: ns["c"](X), "alias": lambda: ns["K"].relu_h_inf(X)}
    hider = W.Hider()
    assert hider.prepare([ANSWER, "course_lib.kernels.no_such_function"]) == [
        "course_lib.kernels.no_such_function (AttributeError: module 'course_lib.kernels' has no attribute 'no_such_function')"]
    hider.hide("1.1", [ANSWER], ns)
    try:
        for how, call in calls.items():
            with pytest.raises(W.AnswerHidden, match=r"course_lib.kernels.relu_h_inf is the library's answer to exercise 1.1"):
                call()
        assert set(hider.hits) == {ANSWER}
        assert kernels.arccos1 is not None and torch.isfinite(kernels.arccos1(X)).all()  # the rest of the library works
    finally:
        hider.restore()
    for how, call in calls.items():
        assert torch.equal(call(), ref), how
    assert "__course_hidden_answer__" not in vars(kernels)


# ----------------------------------------------------------------------------------------------
# through the grader: sample lesson 98
# ----------------------------------------------------------------------------------------------
def _pub_h(fn):
    """h on 4 points in R^3"""
    X = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got = torch.as_tensor(fn(X), dtype=torch.float64)
    assert torch.allclose(got, kernels.relu_h_inf(X), atol=1e-9, rtol=0), "wrong H; hint: <x_i, x_j> (pi - theta) / (2 pi)"


def _hid_h(fn):
    """h on 6 points in R^2"""
    X = torch.randn(6, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.allclose(torch.as_tensor(fn(X), dtype=torch.float64), kernels.relu_h_inf(X), atol=1e-9, rtol=0)


def _pub_twice(fn):
    """twice on 3 points in R^2"""
    X = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=torch.float64)
    assert torch.allclose(torch.as_tensor(fn(X), dtype=torch.float64), 2 * kernels.relu_h_inf(X)), "expected 2 H"


CHECKS98 = ({"98.1": [_pub_h], "98.2": [_pub_twice]}, {"98.1": [_hid_h], "98.2": []})
OWN = ("def h(X):\n    X = np.asarray(X, dtype=np.float64)\n    inner = X @ X.T\n    n = np.linalg.norm(X, axis=1)\n"
       "    theta = np.arccos(np.clip(inner / np.outer(n, n), -1, 1))\n    np.fill_diagonal(theta, 0.0)\n"
       "    return inner * (np.pi - theta) / (2 * np.pi)")
TWICE = ("def twice(X):\n    from course_lib import kernels\n"
         "    return 2 * kernels.relu_h_inf(torch.as_tensor(X, dtype=torch.float64))")  # legitimate use in 98.2


def lesson98(h=OWN):
    return notebook(("code", "import numpy as np\nimport torch\nfrom course_lib.exercises import check"),
                    ("md", "### Exercise 98.1: h"), ("code", h), ("code", 'check("98.1", h)'),
                    ("md", "### Exercise 98.2: twice"), ("code", TWICE), ("code", 'check("98.2", twice)'))


T = "torch.as_tensor(X, dtype=torch.float64)"
CHEATS = {
    "module_attribute": f"import course_lib.kernels as K\ndef h(X):\n    return K.relu_h_inf({T})",
    "package_path": f"import course_lib.kernels\ndef h(X):\n    return course_lib.kernels.relu_h_inf({T})",
    "from_import_alias": f"from course_lib.kernels import relu_h_inf as mine\ndef h(X):\n    return mine({T})",
    "default_argument": f"from course_lib import kernels\ndef h(X, f=kernels.relu_h_inf):\n    return f({T})",
    "partial": f"import functools\nfrom course_lib import kernels\nF = functools.partial(kernels.relu_h_inf)\ndef h(X):\n    return F({T})",
    "catches_and_falls_back": (f"from course_lib import kernels\n{OWN.replace('def h(', 'def own(')}\n"
                               f"def h(X):\n    try:\n        return kernels.relu_h_inf({T})\n    except Exception:\n        return own(X)"),
    "copy_of_function": ("import types\nfrom course_lib import kernels\n"
                         "COPY = types.FunctionType(kernels.relu_h_inf.__code__, kernels.relu_h_inf.__globals__)\n"
                         f"def h(X):\n    return COPY({T})"),
    "captured_then_deleted": ("import course_lib.kernels as K\nORIG = K.relu_h_inf\ndel K.relu_h_inf\n"
                              f"def h(X):\n    return ORIG({T})"),
    "reload_in_call": (f"import importlib\nimport course_lib.kernels as K\n"
                       f"def h(X):\n    return importlib.reload(K).relu_h_inf({T})"),
    "source_in_call": ("import inspect\nimport course_lib.kernels as K\n"
                       "def h(X):\n    ns = dict(vars(K))\n    exec(inspect.getsource(K), ns)\n"
                       f"    return ns['relu_h_inf']({T})"),
}


@pytest.fixture(scope="module")
def course98(tmp_path_factory):
    root = tmp_path_factory.mktemp("course98")
    (root / "solutions").mkdir()
    nbformat.write(lesson98(h="def h(X):\n    # BEGIN SOLUTION\n" + "\n".join("    " + l for l in OWN.splitlines()[1:])
                            + "\n    # END SOLUTION"), root / "solutions" / "98_sample.ipynb")
    return root


@pytest.mark.slow
def test_calling_the_library_answer_earns_nothing_for_that_exercise_only(tmp_path, course98):
    subs = tmp_path / "subs"
    subs.mkdir()
    nbformat.write(lesson98(), subs / "honest.ipynb")
    for name, src in CHEATS.items():
        nbformat.write(lesson98(h=src), subs / f"{name}.ipynb")
    out = tmp_path / "grades"
    path = grading.grade_class(str(subs), "98", str(out), jobs=2, root=str(course98), checks=CHECKS98, answered=REGISTRY,
                               limits=grading.Limits(timeout_s=60, call_timeout_s=20), progress=lambda s: None)
    rows = {(r["student"], r["exercise"]): r for r in grading.read_gradebook(path)}
    assert (rows[("honest", "98.1")]["points"], rows[("honest", "98.1")]["status"]) == ("2", "passed")
    for name in ["honest", *CHEATS]:  # restored for 98.2 (but for the notebook that deleted the library's name itself)
        assert (rows[(name, "98.2")]["points"], rows[(name, "98.2")]["status"]) == (
            ("0", "failed") if name == "captured_then_deleted" else ("1", "passed")), name
    for name in CHEATS:
        r = rows[(name, "98.1")]
        assert (r["points"], r["status"]) == ("0", "failed"), (name, r)
        assert r["reason"].startswith("calls ") and "the library's answer to 98.1" in r["reason"], (name, r["reason"])
        assert ANSWER in r["reason"] or W.HIDDEN_SOURCE in r["reason"], (name, r["reason"])
        assert json.loads(r["failed_checks"])[0]["check"] == "calls the library's answer"
        fb = (out / "feedback" / f"{name}.md").read_text()
        assert "earns no credit" in fb and "compute it yourself" in fb
    report = (out / "report.csv").read_text()
    assert f"98.1,failed check,calls the library's answer,{ANSWER}" in report


def test_a_registry_naming_a_missing_function_is_refused(tmp_path, course98):
    (tmp_path / "subs").mkdir()
    with pytest.raises(grading.SetupError, match=r"98.1: course_lib.kernels.relu_h_infinity"):
        grading.grade_class(str(tmp_path / "subs"), "98", str(tmp_path / "o"), root=str(course98), checks=CHECKS98,
                            answered={"98.1": ("course_lib.kernels.relu_h_infinity",)}, progress=lambda s: None)


# ----------------------------------------------------------------------------------------------
# the real registry (course_lib.checks: each lesson's ANSWERED_BY)
# ----------------------------------------------------------------------------------------------
def _real_registry() -> dict:
    return grading.load_answered()


def _lessons_with_answers() -> list[str]:
    return sorted({ex.split(".")[0] for ex in _real_registry()}, key=int)


def test_real_registry_names_exist():
    registry = _real_registry()
    if not registry:
        pytest.skip("no lesson declares ANSWERED_BY yet")
    grading.resolve_answers(registry, list(registry))


@pytest.mark.slow
@pytest.mark.parametrize("lesson", _lessons_with_answers() or ["none"])
def test_real_lesson_submission_calling_the_library_gets_no_credit_for_those_exercises(lesson, tmp_path):
    if lesson == "none":
        pytest.skip("no lesson declares ANSWERED_BY yet")
    registry = _real_registry()
    solution, exercises = grading.lesson_spec(lesson)
    nb = nbformat.read(solution, as_version=4)
    answered = {ex: names for ex, names in registry.items() if ex in exercises and names}
    for ex, names in answered.items():  # each answered exercise's function just calls the library's answer
        mod, _, attr = names[0].rpartition(".")
        nb.cells.append(nbformat.v4.new_code_cell(
            f"def {exercises[ex]}(*args, **kwargs):\n    import importlib\n"
            f"    return getattr(importlib.import_module({mod!r}), {attr!r})(*args, **kwargs)"))
    subs = tmp_path / "subs"
    subs.mkdir()
    nbformat.write(nb, subs / "cheat.ipynb")
    path = grading.grade_class(str(subs), lesson, str(tmp_path / "out"), jobs=1, progress=lambda s: None, check_setup=False)
    for r in grading.read_gradebook(path):
        if r["exercise"] in answered:
            assert (r["points"], r["status"]) == ("0", "failed") and answered[r["exercise"]][0] in r["reason"], r
        else:
            assert r["status"] == "passed", r
