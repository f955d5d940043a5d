"""Exercises: one source (``solutions/``), generated student notebooks (``exercises/``), and ``check``.

Format of a solution notebook ``solutions/NN_name.ipynb``: each exercise N.k is a markdown cell
``### Exercise N.k: title``, one code cell defining the learner's function(s) with the solution lines
between ``# BEGIN SOLUTION`` and ``# END SOLUTION``, and a code cell ``check("N.k", function)``.

* ``python -m course_lib.exercises build`` writes ``exercises/NN_name.ipynb`` for every solution
  notebook: each BEGIN/END block becomes ``raise NotImplementedError("Exercise N.k: ...")`` at the
  block's indentation, outputs are cleared. ``--check`` only verifies that ``exercises/`` is up to date.
* ``check("N.k", fn)`` runs exercise N.k's public checks (``course_lib.checks``) on ``fn`` and says
  plainly what passed and what is wrong (which case, the worst entry with both values, the hint aimed at the mistake
  seen). It also says when ``fn`` uses a library function that IS the answer (``course_lib.checks.answered_by()``):
  grading hides those, so such an answer earns nothing.
* ``python -m course_lib.exercises mutants [--lesson N] [-v]`` (instructor only) proves the checks work: every
  exercise's solution passes the public checks and the hidden tests (``tests/hidden/lessonN.py``), and every
  plausible wrong answer in ``tests/hidden/mutants/lessonN.py`` is rejected; it prints the mutation score per
  exercise (exit 1 if any mutant survives or any solution fails).
"""
from __future__ import annotations

import argparse
import glob
import os
import re
import sys
import time
import traceback
from dataclasses import dataclass, field

BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
_EXERCISE_RE = re.compile(r"^###\s*Exercise\s+(\d+\.\d+)", re.M)
_CHECK_RE = re.compile(r"""check\(\s*["'](\d+\.\d+)["']""")


# ----------------------------------------------------------------------------------------------
# check
# ----------------------------------------------------------------------------------------------
@dataclass
class CheckResult:
    exercise: str
    passed: int = 0
    total: int = 0
    failures: list[str] = field(default_factory=list)
    not_implemented: bool = False
    seconds: float = 0.0
    library: list[str] = field(default_factory=list)  # library answers the function called (it would earn nothing)

    @property
    def ok(self) -> bool:
        return self.total > 0 and self.passed == self.total and not self.library

    def __str__(self) -> str:
        if self.not_implemented:
            return (f"Exercise {self.exercise}: not implemented yet. Replace the line "
                    "`raise NotImplementedError(...)` with your code, run the cell, then this check again.")
        head = f"Exercise {self.exercise}: {self.passed}/{self.total} checks passed"
        lines = []
        if self.library:
            names = ", ".join(self.library)
            lines.append(f"  ! your function uses {names}, the library's answer to {self.exercise}: when graded it is "
                         f"unavailable and {self.exercise} earns nothing. Compute it yourself.")
        if self.total > 0 and self.passed == self.total and not self.library:
            return head + ". Well done."
        for f in self.failures:
            first, *rest = f.splitlines() or [""]
            lines.append(f"  - {first}" + "".join(f"\n    {r}" for r in rest))
        return head + ("\n" + "\n".join(lines) if lines else "")

    def _repr_html_(self) -> str:
        import html

        color = "green" if self.ok else ("grey" if self.not_implemented else "crimson")
        body = html.escape(str(self)).replace("\n", "<br>").replace("  ", "&nbsp;&nbsp;")
        return f"<div style='color:{color}; font-family:monospace'>{body}</div>"

    def __repr__(self) -> str:
        return str(self)


class _FromLearner:
    """Marks the exceptions raised while the learner's function runs (every other exception is the check's own:
    it could not use what the function returned)."""

    MARK = "_course_raised_by_learner"

    def __init__(self, fn):
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", "your function")
        self.__doc__ = getattr(fn, "__doc__", None)

    def __call__(self, *args, **kwargs):
        try:
            return self.fn(*args, **kwargs)
        except Exception as exc:
            try:
                setattr(exc, self.MARK, True)
            except Exception:  # noqa: BLE001 - an exception type that takes no attributes
                pass
            raise


class LibrarySpy:
    """Records calls to the library functions that are an exercise's answer (course_lib.checks.answered_by) while
    the learner's function runs: ``with spy: fn(...)``; ``spy.hits`` holds their dotted names. A profile hook sees
    every Python call however it is reached (an alias, ``from ... import ... as``, a call from another function);
    functions of modules not yet imported are recognised when first called (by name, then by code)."""

    def __init__(self, names):
        self.names = tuple(names)
        self.hits: set[str] = set()
        self._codes: dict = {}
        self._objects: dict = {}
        self._pending: dict[str, list[str]] = {}
        self._seen: set = set()
        for dotted in self.names:
            if not self._resolve(dotted):
                self._pending.setdefault(dotted.rsplit(".", 1)[-1], []).append(dotted)
        self._old = None

    def _resolve(self, dotted: str) -> bool:
        import importlib

        parts = dotted.split(".")
        for i in range(len(parts) - 1, 0, -1):
            modname = ".".join(parts[:i])
            if modname not in sys.modules:
                if not modname.startswith("course_lib.lessons"):
                    try:
                        importlib.import_module(modname)
                    except ImportError:
                        continue
                else:
                    continue
            try:
                obj = sys.modules[modname]
                for attr in parts[i:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                return False
            self._objects[id(obj)] = (obj, dotted)
            inner = obj
            while hasattr(inner, "__wrapped__"):
                inner = inner.__wrapped__
            code = getattr(inner, "__code__", None)
            if code is not None:
                self._codes[code] = dotted
            return True
        return False

    def _hook(self, frame, event, arg):
        if event == "call":
            code = frame.f_code
            dotted = self._codes.get(code)
            if dotted is None and code.co_name in self._pending and code not in self._seen:
                self._seen.add(code)
                for name in self._pending[code.co_name]:
                    self._resolve(name)
                dotted = self._codes.get(code)
            if dotted is not None:
                self.hits.add(dotted)
        elif event == "c_call":
            found = self._objects.get(id(arg))
            if found is not None and found[0] is arg:
                self.hits.add(found[1])

    def __enter__(self):
        self._old = sys.getprofile()
        sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc):
        sys.setprofile(self._old)
        return False


class _Spied(_FromLearner):
    def __init__(self, fn, spy: LibrarySpy):
        super().__init__(fn)
        self.spy = spy

    def __call__(self, *args, **kwargs):
        with self.spy:
            return super().__call__(*args, **kwargs)


def _learner_line(exc) -> str:
    """' (line N)' of the deepest frame that is the learner's own code (not the course's, numpy's or torch's)."""
    here = os.path.dirname(os.path.abspath(__file__))
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        f = os.path.abspath(frame.filename) if not frame.filename.startswith("<") else frame.filename
        if f.startswith(here) or f.startswith(sys.prefix) or f.startswith(getattr(sys, "base_prefix", sys.prefix)):
            continue
        return f" (line {frame.lineno})"
    return ""


def check(exercise: str, fn, *, checks=None, library: bool | None = None) -> CheckResult:
    """Run the public checks of ``exercise`` (e.g. "1.2") on the learner's function ``fn``.

    ``checks``: the check functions to run instead (grading, the mutation tests). ``library``: watch for calls to
    the library functions that are the exercise's answer (default: when the public checks are run, i.e. in the
    notebook); a function that uses one is told that it would earn nothing when graded.
    """
    notebook = checks is None
    if checks is None:
        from .checks import public_checks

        registry = public_checks()
        if exercise not in registry:
            raise ValueError(f"exercise must be one of {sorted(registry)}; got {exercise!r}")
        checks = registry[exercise]
    if not callable(fn):
        raise TypeError(f"check({exercise!r}, fn): fn must be the function you wrote; got {type(fn).__name__}")
    spy = None
    if library if library is not None else notebook:
        from .checks import answered_by

        names = answered_by().get(exercise, ())
        spy = LibrarySpy(names) if names else None
    learner = _Spied(fn, spy) if spy is not None else _FromLearner(fn)
    res = CheckResult(exercise, total=len(checks))
    t0 = time.perf_counter()
    from .runtime import torch_threads

    with torch_threads():  # small problems: extra threads only contend for shared cores
        for chk in checks:
            name = (chk.__doc__ or chk.__name__).strip().splitlines()[0]
            try:
                chk(learner)
                res.passed += 1
            except NotImplementedError:
                res.not_implemented = True
                res.failures.append(f"{name}: not implemented yet")
                break
            except AssertionError as exc:
                if getattr(exc, _FromLearner.MARK, False):
                    res.failures.append(f"{name}: your function raised AssertionError: {exc}{_learner_line(exc)}")
                else:
                    res.failures.append(f"{name}: {exc}")
            except Exception as exc:  # noqa: BLE001 - a learner's error is reported, not raised
                if getattr(exc, "remote", False):  # raised in the grading sandbox: its own text says what
                    res.failures.append(f"{name}: your function raised {exc}")
                elif getattr(exc, _FromLearner.MARK, False):
                    res.failures.append(f"{name}: your function raised {type(exc).__name__}: {exc}{_learner_line(exc)}")
                else:  # the check's own code failed on what the function returned
                    res.failures.append(f"{name}: the check could not use what your function returned "
                                        f"({type(exc).__name__}: {exc})\nhint: return what the exercise asks for "
                                        "(its type and shape are in the exercise's text)")
    res.seconds = time.perf_counter() - t0
    if spy is not None and spy.hits:
        res.library = sorted(spy.hits)
    return res


# ----------------------------------------------------------------------------------------------
# build: solutions -> exercises
# ----------------------------------------------------------------------------------------------
def strip_solutions(source: str, exercise: str) -> str:
    """Replace every BEGIN/END SOLUTION block by ``raise NotImplementedError`` at its indentation."""
    out, inside, indent = [], False, ""
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"exercise {exercise}: nested {BEGIN}")
            inside, indent = True, line[: len(line) - len(line.lstrip())]
            out.append(f'{indent}raise NotImplementedError("Exercise {exercise}: replace this line with your code")')
        elif stripped == END:
            if not inside:
                raise ValueError(f"exercise {exercise}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"exercise {exercise}: {BEGIN} without {END}")
    return "\n".join(out)


def student_notebook(nb):
    """The student version of a solution notebook (a copy; outputs cleared)."""
    import copy

    nb = copy.deepcopy(nb)
    current = None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = _EXERCISE_RE.search(cell.source)
            if m:
                current = m.group(1)
            continue
        if cell.cell_type != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        if BEGIN in cell.source:
            if current is None:
                raise ValueError(f"a solution block appears before any '### Exercise N.k' heading:\n{cell.source[:200]}")
            cell.source = strip_solutions(cell.source, current)
    nb.metadata.pop("widgets", None)
    return nb


def exercise_ids(nb) -> list[str]:
    return [m.group(1) for c in nb.cells if c.cell_type == "markdown" for m in _EXERCISE_RE.finditer(c.source)]


def build(root: str, *, check_only: bool = False) -> list[str]:
    """Generate exercises/ from solutions/; returns the paths that are (or were) out of date."""
    import nbformat

    stale = []
    for src in sorted(glob.glob(os.path.join(root, "solutions", "*.ipynb"))):
        nb = nbformat.read(src, as_version=4)
        text = nbformat.writes(student_notebook(nb)) + "\n"
        dst = os.path.join(root, "exercises", os.path.basename(src))
        old = open(dst, encoding="utf-8").read() if os.path.exists(dst) else None
        if old != text:
            stale.append(dst)
            if not check_only:
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                with open(dst, "w", encoding="utf-8") as f:
                    f.write(text)
    return stale


# ----------------------------------------------------------------------------------------------
# mutants: the checks reject every plausible wrong answer and accept the solution (instructor only)
# ----------------------------------------------------------------------------------------------
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MUTANT_TIME_LIMIT_S = 30.0  # one call of a learner's function may take 30 s when graded; a slower mutant fails there


@dataclass
class MutantResult:
    exercise: str
    name: str
    mistake: str  # the mutant's docstring: the mistake it makes
    killed: bool
    by: str = ""  # the check that rejected it ("public: ...", "hidden: ...", "library answer: ...", "too slow")
    public: bool = False
    message: str = ""
    common_hint: str | None = None  # words a public check's message must contain (a common mistake)

    @property
    def hint_ok(self) -> bool:
        return self.common_hint is None or (self.public and self.common_hint.lower() in self.message.lower())


@dataclass
class ExerciseScore:
    exercise: str
    solution_ok: bool
    solution_failures: list[str]
    mutants: list[MutantResult]
    seconds: float = 0.0

    @property
    def killed(self) -> int:
        return sum(m.killed for m in self.mutants)

    @property
    def score(self) -> float:
        return self.killed / len(self.mutants) if self.mutants else 0.0

    @property
    def by_public(self) -> int:
        return sum(m.killed and m.public for m in self.mutants)

    @property
    def ok(self) -> bool:
        return self.solution_ok and bool(self.mutants) and self.killed == len(self.mutants) and all(
            m.hint_ok for m in self.mutants)


def _load_module(path: str, name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def instructor_registry(root: str = ROOT, kind: str = "HIDDEN") -> dict:
    """{exercise: [functions]} from tests/hidden/lesson*.py (kind "HIDDEN") or tests/hidden/mutants/lesson*.py
    ("MUTANTS"). Only an instructor's copy has them (the student release ships no tests/)."""
    if root not in sys.path:
        sys.path.insert(0, root)  # the mutants import tests.hidden.mutants
    folder = os.path.join(root, "tests", "hidden") if kind == "HIDDEN" else os.path.join(root, "tests", "hidden", "mutants")
    registry: dict = {}
    for path in sorted(glob.glob(os.path.join(folder, "lesson*.py"))):
        module = _load_module(path, f"_{kind.lower()}_{os.path.basename(path)[:-3]}")
        registry.update(getattr(module, kind, {}))
    return registry


def solution_functions(path: str) -> tuple[dict, dict]:
    """(namespace, {exercise: function name}) of a solution notebook: its set-up cells (before the first exercise)
    and its solution cells are run; demonstrations and check(...) cells are not."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    ns: dict = {"__name__": "__solutions__"}
    calls: dict = {}
    seen_exercise = False
    for cell in nb.cells:
        if cell.cell_type == "markdown" and _EXERCISE_RE.search(cell.source):
            seen_exercise = True
        if cell.cell_type != "code":
            continue
        found = _CHECK_CALL_LINE.findall(cell.source)
        if found:
            calls.update(dict(found))
            continue
        if not seen_exercise or BEGIN in cell.source:
            exec(compile(cell.source, f"<{os.path.basename(path)}>", "exec"), ns)  # noqa: S102 - our own notebooks
    return ns, calls


_CHECK_CALL_LINE = re.compile(r"""^\s*check\(\s*["'](\d+\.\d+)["']\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$""", re.M)


class _TooSlow(Exception):
    pass


def _run_checks(exercise: str, fn, checks: list, *, stop_at_first: bool) -> list[tuple[int, str]]:
    """[(index of the failing check, its failure text)], with each check limited to MUTANT_TIME_LIMIT_S."""
    import signal

    failures = []
    use_alarm = hasattr(signal, "SIGALRM") and threading_is_main()
    for i, chk in enumerate(checks):
        old = None
        if use_alarm:
            def _alarm(signum, frame):
                raise _TooSlow()

            old = signal.signal(signal.SIGALRM, _alarm)
            signal.setitimer(signal.ITIMER_REAL, MUTANT_TIME_LIMIT_S)
        try:
            res = check(exercise, fn, checks=[chk], library=True)
        except _TooSlow:
            res = None
        finally:
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old)
        if res is None:
            failures.append((i, f"too slow (over {MUTANT_TIME_LIMIT_S:.0f} s in one check)"))
        elif res.library:
            failures.append((i, "library answer: calls " + ", ".join(res.library) + " (hidden when graded: no credit)"))
        elif not res.ok:
            failures.append((i, res.failures[0] if res.failures else "failed"))
        if failures and stop_at_first:
            break
    return failures


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def mutation_scores(root: str = ROOT, lessons=None, progress=None) -> list[ExerciseScore]:
    """For every exercise (of ``lessons``, default all): does the solution pass the public checks and the hidden
    tests, and which check rejects each of its mutants? See :class:`ExerciseScore`."""
    from .checks import public_checks

    public = public_checks()
    hidden = instructor_registry(root, "HIDDEN")
    mutants = instructor_registry(root, "MUTANTS")
    want = None if lessons is None else {str(int(x)) for x in lessons}
    scores = []
    for path in sorted(glob.glob(os.path.join(root, "solutions", "*.ipynb"))):
        lesson = str(int(os.path.basename(path)[:2]))
        if want is not None and lesson not in want:
            continue
        ns, calls = solution_functions(path)
        for ex, fname in calls.items():
            t0 = time.perf_counter()
            pub, hid = public.get(ex, []), hidden.get(ex, [])
            checks = [("public", c) for c in pub] + [("hidden", c) for c in hid]
            fn = ns.get(fname)
            sol_fail = [f"{checks[i][0]}: {msg}" for i, msg in _run_checks(ex, fn, [c for _, c in checks],
                                                                          stop_at_first=False)] if fn else ["missing"]
            results = []
            for mutant in mutants.get(ex, []):
                mistake = (mutant.__doc__ or mutant.__name__).strip().splitlines()[0]
                failed = _run_checks(ex, mutant, [c for _, c in checks], stop_at_first=True)
                if failed:
                    i, msg = failed[0]
                    kind, chk = checks[i]
                    by = f"{kind}: {(chk.__doc__ or chk.__name__).strip().splitlines()[0]}"
                    if msg.startswith(("library answer", "too slow")):
                        by = msg.split(":", 1)[0] if msg.startswith("too slow") else "library answer"
                    results.append(MutantResult(ex, mutant.__name__, mistake, True, by, kind == "public", msg,
                                                getattr(mutant, "common_hint", None)))
                else:
                    results.append(MutantResult(ex, mutant.__name__, mistake, False,
                                                common_hint=getattr(mutant, "common_hint", None)))
            scores.append(ExerciseScore(ex, not sol_fail, sol_fail, results, time.perf_counter() - t0))
            if progress:
                progress(scores[-1])
    return scores


def format_scores(scores: list[ExerciseScore], verbose: bool = False) -> str:
    """The per-exercise mutation score table (and, verbose, which check rejected each mutant)."""
    lines = [f"{'exercise':<9}{'solution':<10}{'mutants':>8}{'rejected':>9}{'by public':>10}{'score':>7}   seconds"]
    for s in scores:
        lines.append(f"{s.exercise:<9}{'accepted' if s.solution_ok else 'REJECTED':<10}{len(s.mutants):>8}"
                     f"{s.killed:>9}{s.by_public:>10}{s.score:>7.0%}   {s.seconds:.1f}")
        for f in s.solution_failures:
            lines.append(f"    solution fails {f.splitlines()[0]}")
        for m in s.mutants:
            if not m.killed:
                lines.append(f"    SURVIVES {m.name}: {m.mistake}")
            elif not m.hint_ok:
                lines.append(f"    {m.name}: a common mistake, but no public check says '{m.common_hint}' ({m.by})")
            elif verbose:
                hint = next((ln[len('hint: '):] for ln in m.message.splitlines() if ln.startswith("hint: ")), "")
                lines.append(f"    {m.name}: {m.mistake}\n        rejected by {m.by}" + (f"\n        hint: {hint}" if hint else ""))
    total = sum(len(s.mutants) for s in scores)
    killed = sum(s.killed for s in scores)
    lines.append(f"all: {killed}/{total} mutants rejected ({killed / total if total else 0:.0%}), "
                 f"{sum(s.solution_ok for s in scores)}/{len(scores)} solutions accepted")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m course_lib.exercises",
                                 description="Generate exercises/ from solutions/ (build), or print the mutation score "
                                             "of every exercise's checks (mutants; instructor only).")
    ap.add_argument("verb", choices=["build", "mutants"])
    ap.add_argument("--check", action="store_true", help="build: only report whether exercises/ is up to date (exit 1 if not)")
    ap.add_argument("--lesson", action="append", help="mutants: only this lesson (repeatable)")
    ap.add_argument("--verbose", "-v", action="store_true", help="mutants: say which check rejected each mutant")
    ap.add_argument("--root", default=ROOT)
    args = ap.parse_args(argv)
    if args.verb == "mutants":
        if not os.path.isdir(os.path.join(args.root, "tests", "hidden", "mutants")):
            print("the mutants live with the hidden tests (tests/hidden/mutants/): an instructor's copy only")
            return 2
        scores = mutation_scores(args.root, args.lesson)
        print(format_scores(scores, verbose=args.verbose))
        return 0 if scores and all(s.ok for s in scores) else 1
    stale = build(args.root, check_only=args.check)
    if args.check:
        if stale:
            print("out of date (run: python -m course_lib.exercises build):\n  " + "\n  ".join(stale))
            return 1
        print("exercises/ is up to date")
        return 0
    print("\n".join(f"wrote {p}" for p in stale) or "exercises/ already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
