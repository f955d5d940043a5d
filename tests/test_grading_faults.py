"""Grading isolates faults and respects the host.

* A fault in one exercise's function (an endless loop, the process ending itself or killed) costs that
  exercise only: the checks it had passed still count, the rest are graded in a fresh worker.
* Resource limits the host refuses (macOS has no settable RLIMIT_AS; a shared host may have a lower hard
  limit) are capped or left unset and the instructor is told; the worker's own failure to start is a
  "grader error", never the student's, and a rerun grades those rows again.
* Settings that would fail every correct notebook (--memory-mb below what the worker itself maps,
  --timeout 0, a solution that does not pass) are refused before anything is graded.
* Ctrl-C (or SIGTERM) stops promptly, writes no row for an unfinished student, and the same command resumes.
"""
import csv
import os
import resource
import signal
import subprocess
import sys
import time

import nbformat
import pytest

from course_lib import _grade_worker as W
from course_lib import grading

from .test_grading import CHECKS, solution_nb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    (root / "solutions").mkdir()
    nbformat.write(solution_nb(), root / "solutions" / "99_sample.ipynb")
    return root


def _grade(subs, out, course, **kw):
    kw.setdefault("limits", grading.Limits(timeout_s=60, call_timeout_s=4))
    kw.setdefault("progress", lambda s: None)
    return grading.grade_class(str(subs), "99", str(out), jobs=2, root=str(course), checks=CHECKS, answered={}, **kw)


# ----------------------------------------------------------------------------------------------
# one exercise's fault costs that exercise only
# ----------------------------------------------------------------------------------------------
FAULTS = {  # double's public check sends 2 numbers, its hidden checks 7 and 6: the fault hits the hidden ones
    "loops_in_hidden": ("def double(x):\n    while x.numel() > 2:\n        pass\n    return 2 * x", None,
                        {"99.1": (1, "timeout"), "99.2": (2, "passed")}),
    "exits_in_hidden": ("import os\ndef double(x):\n    if x.numel() > 2:\n        os._exit(3)\n    return 2 * x", None,
                        {"99.1": (1, "crashed"), "99.2": (2, "passed")}),
    "killed_in_public": ("import os, signal\ndef double(x):\n    os.kill(os.getpid(), signal.SIGKILL)", None,
                         {"99.1": (0, "crashed"), "99.2": (2, "passed")}),
    "loops_in_last": (None, "def gram(X):\n    while True:\n        pass",
                      {"99.1": (3, "passed"), "99.2": (0, "timeout")}),
}


@pytest.mark.slow
def test_a_fault_costs_the_exercise_it_happens_in_and_nothing_else(tmp_path, course):
    subs = tmp_path / "subs"
    subs.mkdir()
    for name, (double, gram, _) in FAULTS.items():
        kw = {k: v for k, v in (("double", double), ("gram", gram)) if v}
        nbformat.write(solution_nb(**kw), subs / f"{name}.ipynb")
    nbformat.write(solution_nb(), subs / "zz_classmate.ipynb")
    out = tmp_path / "grades"
    t0 = time.monotonic()
    path = _grade(subs, out, course, check_setup=False)
    rows = {(r["student"], r["exercise"]): r for r in grading.read_gradebook(path)}
    got = {(s, e): (int(r["points"]), r["status"]) for (s, e), r in rows.items()}
    want = {(s, e): v for s, (_, _, exp) in FAULTS.items() for e, v in exp.items()}
    want.update({("zz_classmate", "99.1"): (3, "passed"), ("zz_classmate", "99.2"): (2, "passed")})
    assert got == want
    r = rows[("exits_in_hidden", "99.1")]
    assert "hidden check 1 of 99.1" in r["reason"] and "exit code 3" in r["reason"] and "1 of 3 checks had passed" in r["reason"]
    assert "graded in a fresh process" in r["reason"]
    assert "no answer within 4 s" in rows[("loops_in_hidden", "99.1")]["reason"]
    assert "SIGKILL" in rows[("killed_in_public", "99.1")]["reason"]
    # a timeout costs one call's limit, not the submission's
    assert time.monotonic() - t0 < 4 * 60


# ----------------------------------------------------------------------------------------------
# limits capped at what the host allows
# ----------------------------------------------------------------------------------------------
class FakeResource:
    """resource as a host that refuses some limits: ``refuse`` raise ValueError; ``hard`` are lower hard limits."""

    RLIM_INFINITY = resource.RLIM_INFINITY
    RLIMIT_AS, RLIMIT_DATA, RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_CORE = 1, 2, 3, 4, 5

    def __init__(self, refuse=(), hard=None, missing=()):
        self.refuse, self.hard, self.set = set(refuse), dict(hard or {}), {}
        for name in missing:
            setattr(self, name, None)

    def getrlimit(self, kind):
        h = self.hard.get(kind, self.RLIM_INFINITY)
        return h, h

    def setrlimit(self, kind, limits):
        soft, hard = limits
        if kind in self.refuse:
            raise ValueError("current limit exceeds maximum limit")
        if self.hard.get(kind, self.RLIM_INFINITY) != self.RLIM_INFINITY and hard > self.hard[kind]:
            raise ValueError("not allowed to raise maximum limit")
        self.set[kind] = (soft, hard)


WANTED = {"RLIMIT_AS": (3000 << 20, 3000 << 20), "RLIMIT_CPU": (130, 135), "RLIMIT_FSIZE": (16 << 20, 16 << 20),
          "RLIMIT_CORE": (0, 0)}


def test_limits_are_capped_at_the_hosts_hard_limits():
    res = FakeResource(hard={FakeResource.RLIMIT_CPU: 100, FakeResource.RLIMIT_AS: 2000 << 20})
    applied, notes = W.apply_limits(WANTED, res)
    assert applied["RLIMIT_CPU"] == (100, 100) and res.set[res.RLIMIT_CPU] == (100, 100)
    assert applied["RLIMIT_AS"] == (2000 << 20, 2000 << 20)
    assert applied["RLIMIT_FSIZE"] == (16 << 20, 16 << 20) and applied["RLIMIT_CORE"] == (0, 0)
    assert sorted(notes) == sorted([
        "the CPU time limit is capped at the host's hard limit of 100 s (asked for 130 s)",
        "the memory (address space) limit is capped at the host's hard limit of 2000 MB (asked for 3000 MB)"])


def test_a_refused_memory_limit_falls_back_to_the_data_segment_or_is_said_unenforced():
    res = FakeResource(refuse={FakeResource.RLIMIT_AS})  # macOS
    applied, notes = W.apply_limits(WANTED, res)
    assert applied["RLIMIT_AS"] is None and applied["RLIMIT_DATA"] == (3000 << 20, 3000 << 20)
    assert applied["RLIMIT_CPU"] == (130, 135)
    assert len(notes) == 1 and "RLIMIT_DATA" in notes[0] and "current limit exceeds maximum limit" in notes[0]
    res = FakeResource(refuse={FakeResource.RLIMIT_AS, FakeResource.RLIMIT_DATA})
    applied, notes = W.apply_limits(WANTED, res)
    assert applied["RLIMIT_AS"] is None and applied["RLIMIT_DATA"] is None and applied["RLIMIT_CPU"] == (130, 135)
    assert any("memory (address space) limit" in n and "not enforced" in n for n in notes)
    res = FakeResource(missing=("RLIMIT_CORE",))
    applied, notes = W.apply_limits(WANTED, res)
    assert applied["RLIMIT_CORE"] is None and notes == ["the core dumps limit does not exist on this host: not enforced"]


_RUNNER = """
import sys
sys.path.insert(0, {root!r})
from course_lib import grading
from tests.test_grading import CHECKS
limits = grading.Limits(timeout_s={timeout}, call_timeout_s=20, memory_mb={memory})
sys.exit(grading.run_interruptibly(lambda: grading.grade_class({subs!r}, "99", {out!r}, jobs=2, root={course!r},
                                                               checks=CHECKS, answered={{}}, limits=limits)))
"""


def _runner(tmp_path, subs, out, course, timeout=120, memory=3000):
    script = tmp_path / "run_grading.py"
    script.write_text(_RUNNER.format(root=ROOT, timeout=timeout, memory=memory, subs=str(subs), out=str(out), course=str(course)))
    return [sys.executable, str(script)]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sets a hard rlimit on a child process (Linux)")
def test_a_lower_hard_limit_on_the_host_is_capped_said_and_never_blamed_on_students(tmp_path, course):
    subs, out = tmp_path / "subs", tmp_path / "grades"
    subs.mkdir()
    nbformat.write(solution_nb(), subs / "alice.ipynb")

    def host_limits():  # a shared login node: ulimit -Ht 100 -Hv 2600000 (below the 130 s and 3000 MB asked for)
        resource.setrlimit(resource.RLIMIT_CPU, (100, 100))
        resource.setrlimit(resource.RLIMIT_AS, (2600 << 20, 2600 << 20))

    p = subprocess.run(_runner(tmp_path, subs, out, course), capture_output=True, text=True, preexec_fn=host_limits,
                       timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "note: the CPU time limit is capped at the host's hard limit of 100 s (asked for 130 s)" in p.stdout
    assert "note: the memory (address space) limit is capped at the host's hard limit of 2600 MB" in p.stdout
    rows = grading.read_gradebook(str(out / "gradebook.csv"))
    assert [(r["exercise"], r["status"]) for r in rows] == [("99.1", "passed"), ("99.2", "passed")]
    assert "sys.exit" not in (out / "feedback" / "alice.md").read_text()


def test_a_worker_that_cannot_start_is_the_graders_failure_and_a_rerun_grades_again(tmp_path, course, monkeypatch):
    subs, out = tmp_path / "subs", tmp_path / "grades"
    subs.mkdir()
    nbformat.write(solution_nb(), subs / "alice.ipynb")
    broken = (sys.executable, "-c", "import sys; sys.exit('ImportError: libtorch_cpu.so: failed to map segment')")
    monkeypatch.setattr(grading, "WORKER_COMMAND", broken)
    # with the setup check (the default), nothing is graded and the instructor is told why
    with pytest.raises(grading.SetupError, match="(?s)cannot start on this host.*exit code 1.*failed to map segment"):
        _grade(subs, out, course)
    assert grading.read_gradebook(str(out / "gradebook.csv")) == []
    # without it, every row is a grader error, and the feedback does not blame the notebook
    path = _grade(subs, out, course, check_setup=False)
    rows = grading.read_gradebook(path)
    assert [r["status"] for r in rows] == [grading.GRADER_ERROR] * 2
    assert all(r["reason"].startswith("the grader failed, not the notebook") for r in rows)
    assert "sys.exit" not in (out / "feedback" / "alice.md").read_text()
    # fixed: the same command grades those rows again
    monkeypatch.setattr(grading, "WORKER_COMMAND", (sys.executable, "-m", "course_lib._grade_worker"))
    rows = grading.read_gradebook(_grade(subs, out, course, check_setup=False))
    assert [(r["student"], r["exercise"], r["status"]) for r in rows] == [("alice", "99.1", "passed"), ("alice", "99.2", "passed")]


def test_a_worker_killed_by_the_terminals_ctrl_c_while_starting_is_the_interrupt_not_a_failure(monkeypatch):
    """Ctrl-C reaches the whole process group; a worker forked at that instant dies with SIGINT before it leaves
    the group. That is the interrupt (no row), not a crash nor a grader error, once the run stops."""
    monkeypatch.setattr(grading, "WORKER_COMMAND", (sys.executable, "-c", (
        "import os, signal; signal.signal(signal.SIGINT, signal.SIG_DFL); os.kill(os.getpid(), signal.SIGINT)")))
    monkeypatch.setattr(grading, "INTERRUPT_GRACE_S", 20.0)
    session = grading.Session()
    import threading

    threading.Timer(1.0, session.interrupt).start()  # the main thread handles the signal a moment later
    with pytest.raises(grading._Stopped):
        grading.Worker(grading.Limits(), session)
    assert session.scratch == set() and session.workers == set()
    # the same death with no interrupt following is the grader's failure, said as such
    monkeypatch.setattr(grading, "INTERRUPT_GRACE_S", 0.5)
    with pytest.raises(grading.GraderFailure, match="died while starting.*signal SIGINT"):
        grading.Worker(grading.Limits(), grading.Session())


def test_an_installation_the_submissions_user_cannot_read_is_said(monkeypatch):
    """Graded as root, submissions run as nobody; Python under /root (mode 700) is then unreadable to them."""
    stdlib = os.path.dirname(os.__file__)
    monkeypatch.setattr(W.os, "geteuid", lambda: 65534)
    monkeypatch.setattr(W.os, "access", lambda p, mode: p != stdlib)
    notes = W._unreadable_installation()
    assert len(notes) == 1 and f"cannot read {stdlib}" in notes[0] and "grade as a user other than root" in notes[0]
    monkeypatch.setattr(W.os, "access", lambda p, mode: True)
    assert W._unreadable_installation() == []


@pytest.mark.slow
def test_the_sandbox_lets_the_library_read_what_the_host_says_about_itself_and_nothing_more():
    w = grading.Worker(grading.Limits())
    try:
        load = w.request({"op": "load", "answers": [], "cells": [
            "from course_lib import runtime\n"
            "def memory():\n    return runtime.available_memory()\n"
            "def write_meminfo():\n    open('/proc/meminfo', 'a')\n"
            "def read_passwd():\n    return open('/etc/passwd').read()\n"]}, 60)
        assert load["cell_errors"] == []
        call = lambda name: w.request({"op": "call", "name": name, "args": [], "kwargs": {}}, 60)  # noqa: E731
        mem = call("memory")
        assert mem["ok"] and (mem["value"] is None or mem["value"] > 0)
        for name, path in (("write_meminfo", "/proc/meminfo"), ("read_passwd", "/etc/passwd")):
            r = call(name)
            assert not r["ok"] and r["error"] == f"PermissionError: grading sandbox: no access to {path}"
    finally:
        w.close()


# ----------------------------------------------------------------------------------------------
# settings refused up front
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, option", [({"timeout_s": 0}, "--timeout"), ({"timeout_s": -5}, "--timeout"),
                                        ({"memory_mb": 0}, "--memory-mb"), ({"timeout_s": float("nan")}, "--timeout"),
                                        ({"call_timeout_s": 0}, "call_timeout_s")])
def test_non_positive_limits_are_refused(kw, option, tmp_path, course):
    with pytest.raises(grading.SetupError, match=f"{option} must be a positive number"):
        grading.Limits(**kw).validate()
    with pytest.raises(grading.SetupError, match=option):
        _grade(tmp_path, tmp_path / "o", course, limits=grading.Limits(**kw))


@pytest.mark.parametrize("args, message", [(["--timeout", "0"], "--timeout: must be positive, got 0"),
                                           (["--memory-mb", "0"], "--memory-mb: must be positive, got 0"),
                                           (["--jobs", "0"], "--jobs: must be positive, got 0"),
                                           (["--memory-mb", "lots"], "--memory-mb: expected a number, got 'lots'")])
def test_command_line_refuses_non_positive_options(args, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        grading.main([str(tmp_path), "--lesson", "1", *args])
    assert info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.slow
def test_memory_below_what_the_worker_needs_is_refused_with_the_measured_need(tmp_path, course):
    subs = tmp_path / "subs"
    subs.mkdir()
    nbformat.write(solution_nb(), subs / "alice.ipynb")
    with pytest.raises(grading.SetupError) as info:
        _grade(subs, tmp_path / "out", course, limits=grading.Limits(memory_mb=400))
    msg = str(info.value)
    assert msg.startswith("--memory-mb 400 is below what the grading worker itself needs on this host")
    import re

    base, need = re.search(r"needs on this host: (\d+) MB", msg), re.search(r"Use --memory-mb (\d+) or more", msg)
    assert base and need and 400 < int(base.group(1)) < int(need.group(1)) <= int(base.group(1)) + grading.HEADROOM_MB + 50
    assert grading.read_gradebook(str(tmp_path / "out" / "gradebook.csv")) == []


@pytest.mark.slow
def test_a_solution_that_does_not_pass_stops_grading_before_any_student(tmp_path, course):
    subs = tmp_path / "subs"
    subs.mkdir()
    nbformat.write(solution_nb(), subs / "alice.ipynb")

    def wrong(fn):
        """a check that expects 3 x"""
        assert float(fn(__import__("torch").tensor([1.0]))[0]) == 3.0, "expected 3"

    checks = ({**CHECKS[0], "99.1": [wrong]}, CHECKS[1])
    with pytest.raises(grading.SetupError, match=r"the lesson's own solution \(99_sample.ipynb\) does not get full marks"
                                                 r".*99.1: 2/3 partial .*a check that expects 3 x: expected 3"):
        grading.grade_class(str(subs), "99", str(tmp_path / "out"), root=str(course), checks=checks, answered={},
                            progress=lambda s: None)
    assert grading.read_gradebook(str(tmp_path / "out" / "gradebook.csv")) == []


# ----------------------------------------------------------------------------------------------
# interrupted and resumed
# ----------------------------------------------------------------------------------------------
def test_torn_or_incomplete_students_are_graded_again(tmp_path):
    path = tmp_path / "gradebook.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, grading.FIELDS)
        w.writeheader()
        for s, status in (("ann", "passed"), ("ben", "passed"), ("cat", grading.GRADER_ERROR)):
            for ex in ("99.1", "99.2"):
                w.writerow({"student": s, "exercise": ex, "points": 1, "max_points": 1, "status": status, "reason": ""})
        w.writerow({"student": "dan", "exercise": "99.1", "points": 1, "max_points": 1, "status": "passed", "reason": ""})
        f.write('dan,99.2,1,1,passed,"a reason cut sho')  # killed while writing
    assert sorted(grading._read_complete(str(path), ["99.1", "99.2"])) == ["ann", "ben"]
    assert sorted(grading._read_complete(str(path), ["99.1", "99.2", "99.3"])) == []  # a new exercise: grade again


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_stops_promptly_keeps_finished_students_only_and_resumes(tmp_path, course, sig):
    subs, out = tmp_path / "subs", tmp_path / "grades"
    subs.mkdir()
    nbformat.write(solution_nb(extra_top="import time\ntime.sleep(40)"), subs / "a_slow.ipynb")  # in flight at the interrupt
    for i in range(5):
        nbformat.write(solution_nb(), subs / f"s{i}.ipynb")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    cmd = _runner(tmp_path, subs, out, course, timeout=90)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                         env=env, cwd=ROOT)
    lines = []
    for line in p.stdout:
        lines.append(line)
        if line.startswith("graded "):
            break
    t0 = time.monotonic()
    os.killpg(p.pid, sig)  # Ctrl-C reaches the whole foreground process group
    rest = p.communicate(timeout=60)[0]
    took = time.monotonic() - t0
    assert p.returncode == 130, "".join(lines) + rest
    assert took < 15, took
    assert "interrupted:" in rest and "run the same command again" in rest
    rows = grading.read_gradebook(str(out / "gradebook.csv"))
    students = [r["student"] for r in rows]
    assert "a_slow" not in students  # unfinished: no row
    assert all(students.count(s) == 2 for s in set(students)) and len(rows) == 2 * len(set(students)) >= 2
    assert all(r["status"] == "passed" for r in rows)
    assert os.listdir(scratch) == []  # every worker's scratch folder removed
    # the same command again: every student once, all passed
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = grading.read_gradebook(str(out / "gradebook.csv"))
    assert sorted((r["student"], r["exercise"]) for r in rows) == sorted(
        (s, e) for s in ["a_slow", *(f"s{i}" for i in range(5))] for e in ("99.1", "99.2"))
    assert all(r["status"] == "passed" for r in rows)
