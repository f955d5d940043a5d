"""Mutation tests of the exercises' checks (issue 15): for every exercise, the public checks plus the hidden tests
accept the solution and reject every plausible wrong answer in tests/hidden/mutants/lessonN.py; the common mistakes
are rejected by a public check whose hint names that mistake. Prints the per-exercise mutation score (the same table
as `python -m course_lib.exercises mutants`). The mutants never ship: the release has no tests/, and its leak check
treats their names and literals as secrets."""
import glob
import math
import os

import numpy as np
import pytest

from course_lib import exercises, release

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LESSONS = sorted(os.path.basename(p)[:2].lstrip("0") for p in glob.glob(os.path.join(ROOT, "solutions", "*.ipynb")))


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_mutant_is_rejected_and_every_solution_accepted(lesson, capsys):
    scores = exercises.mutation_scores(ROOT, [lesson])
    table = exercises.format_scores(scores)
    with capsys.disabled():
        print(f"\nmutation score, lesson {lesson}:\n{table}")
    assert scores, f"lesson {lesson} has no exercises"
    for s in scores:
        assert s.solution_ok, f"{s.exercise}: the solution fails {s.solution_failures}"
        assert len(s.mutants) >= 5, f"{s.exercise}: only {len(s.mutants)} mutants"
        survivors = [m.name for m in s.mutants if not m.killed]
        assert not survivors, f"{s.exercise}: mutants not rejected: {survivors}\n{table}"
        assert any(m.common_hint for m in s.mutants), f"{s.exercise}: no common mistake marked (@common)"
        bad = [(m.name, m.common_hint, m.by) for m in s.mutants if not m.hint_ok]
        assert not bad, f"{s.exercise}: common mistakes without a public check and its hint: {bad}"
        assert s.score == 1.0


def test_the_command_prints_the_scores(capsys):
    code = exercises.main(["mutants", "--lesson", "6"])
    out = capsys.readouterr().out
    assert code == 0 and "6.3" in out and "100%" in out and "all: " in out


def test_mutants_never_ship_and_the_leak_check_covers_them(tmp_path):
    assert "tests" not in release.INCLUDE
    names, values = release.hidden_secrets(ROOT)
    mutant_names = set(exercises.instructor_registry(ROOT, "MUTANTS"))
    all_mutants = {fn.__name__ for fns in exercises.instructor_registry(ROOT, "MUTANTS").values() for fn in fns}
    assert mutant_names and all_mutants <= names
    folder = tmp_path / "rel"
    (folder / "exercises").mkdir(parents=True)
    planted = sorted(all_mutants)[0]
    (folder / "exercises" / "planted.py").write_text(f"{planted}(X)\n")
    assert any("hidden-test name" in leak and planted in leak for leak in release.find_leaks(str(folder), ROOT))


def test_the_cases_keep_their_stated_margins():
    """The allowances of 1.2 and 5.3 rely on margins the cases must keep (stated next to them)."""
    import torch  # noqa: F401  (course_lib's checks import it)

    from course_lib.checks import lesson1, lesson5

    for seed, n, frac, k in ((0, 8, 0.5, 37), (1, 8, 0.5, 1), (3, 12, 0.15, 60), (4, 12, 0.45, 60), (6, 10, 0.5, 25)):
        H, r0, lr = lesson1.spectral_case(seed, n, frac)
        loss = lesson1.linearized_losses(H, r0, lr, k)
        assert loss[k - 1] / loss[k] >= 1.0001 ** 2, (seed, k)  # the target sits a factor >= 1.0001 from both
    for args in ((16, 8, 0, (32, 64), 0.5, 80), (16, 8, 1, (16, 32), 0.5, 100), (16, 8, 2, (24, 24), 0.5, 120),
                 (16, 8, 3, (32, 8), 0.5, 60)):
        run = lesson5.deep_run(*args)
        lam = lesson5.expected_lambda(run["F"])
        if lam > 0:
            ratio = math.log(0.01) / math.log(1 - run["lr"] * lam * lam / 4)
            assert abs(ratio - round(ratio)) > 1e-6, args
        rel = run["loss"] / (run["loss"][0] / 100)
        assert np.all(np.abs(rel - 1) > 1e-6), args
