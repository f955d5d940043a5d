"""Instructor grading: a folder of submitted notebooks -> a CSV gradebook, feedback per student and a class report.

    python -m course_lib grade SUBMISSIONS --lesson 1 --out grades/ [--jobs 2] [--timeout 120] [--memory-mb 3000]

Submissions: ``SUBMISSIONS/<student>.ipynb`` or ``SUBMISSIONS/<student>/<notebook>.ipynb``.
Writes ``OUT/gradebook.csv``, ``OUT/feedback/<student>.md``, ``OUT/report.html`` and ``OUT/report.csv``
(:mod:`course_lib.grade_report`: per exercise, the score distribution and the most frequent failing checks).

Trust model (why the score cannot be forged from inside a notebook): each submission runs in its own
fresh, locked-down process (:mod:`course_lib._grade_worker`: memory, CPU and file-size limits, an
unprivileged user when grading as root, file access restricted to the Python installation, the
course package and a scratch folder). The checks, public and hidden, and the expected values run
in THIS process: the learner's function is a proxy that ships inputs to the worker and gets plain
data back (:mod:`course_lib.codec`, no pickle). Monkeypatching numpy/torch/builtins, redefining
``check`` or editing files from the notebook changes nothing here; hidden tests and solutions are
never sent to the worker and are outside what it may open. While exercise N.k is graded, the library
functions that ARE its answer (``course_lib.checks.answered_by()``) are unavailable in the worker.

Faults cost what they touch: a check whose call never returns or ends the worker's process costs
that exercise (the checks it had passed still count); the next exercise is graded in a fresh worker.
A failure of the grader itself (the worker cannot start, a check cannot be sent) is recorded as
"grader error", never as the student's, and a rerun grades those rows again.

Gradebook columns: student, exercise, points, max_points, status, reason, failed_checks (JSON: the
failed checks with their hints). Rows are appended one student at a time (flushed and fsynced); an
interrupted run (Ctrl-C, SIGTERM, SIGHUP) stops promptly, writes nothing for unfinished students, and is
resumed by running the same command: complete students are kept, the others graded again, no row lost or
duplicated. Checks use fixed seeds, so grading the same submission twice gives the same score.
"""
from __future__ import annotations

import argparse
import builtins
import codecs
import csv
import glob
import io
import json
import math
import os
import queue
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from dataclasses import dataclass

from . import codec
from .exercises import check, exercise_ids

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIELDS = ["student", "exercise", "points", "max_points", "status", "reason", "failed_checks"]
GRADER_ERROR = "grader error"
CHECK_CALL = re.compile(r"""^\s*check\(\s*["'](\d+\.\d+)["']\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$""", re.M)
MAX_NOTEBOOK_BYTES = 50 << 20
HEADROOM_MB = 128  # address space for the learner's own work on top of what the worker maps by itself
STARTUP_TIMEOUT_S = 180.0  # the worker's own start (imports); not the student's time
MAX_SKIPPED_CELLS = 3  # cells that never finish or end the process, skipped before a notebook counts as not running
INTERRUPT_GRACE_S = 10.0  # a worker killed by the terminal's Ctrl-C: how long to wait for the run to stop
WORKER_COMMAND = (sys.executable, "-m", "course_lib._grade_worker")  # + the socket's fd


class GraderBug(BaseException):
    """A check sent the learner's function something the codec cannot carry: fix the check."""


class GraderFailure(Exception):
    """The grading machinery failed (the worker could not start, ...): never the student's fault."""


class SetupError(ValueError):
    """Grading cannot start with these settings on this host (nothing was graded)."""


class InvalidNotebook(ValueError):
    """The submitted file is not a notebook the grader can run; the message says why, for the student."""


class Interrupted(KeyboardInterrupt):
    """Grading was interrupted; finished students are in the gradebook, the others are graded on resume."""


class _Stopped(BaseException):
    """Raised in grading threads once the run is interrupted: nothing more is recorded."""


class Abort(BaseException):
    """The worker is gone or out of time: stops the current check, whatever it catches."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass
class Limits:
    timeout_s: float = 120.0  # one worker: running the notebook + the exercises it grades
    call_timeout_s: float = 30.0  # one call of the learner's function
    memory_mb: int = 3000

    def validate(self) -> None:
        for name, value, option in (("timeout_s", self.timeout_s, "--timeout"), ("call_timeout_s", self.call_timeout_s, None),
                                    ("memory_mb", self.memory_mb, "--memory-mb")):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
                what = option or name
                raise SetupError(f"{what} must be a positive number ({'seconds' if 'timeout' in name else 'MB'}); got {value!r}")


class Session:
    """What one grading run shares between its threads: the stop flag and the live workers."""

    def __init__(self):
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.workers: set = set()
        self.scratch: set = set()  # every live worker's scratch folder, from its creation to its removal

    def add(self, worker) -> None:
        with self.lock:
            self.workers.add(worker)
        if self.stop.is_set():
            worker.kill()
            raise _Stopped()

    def discard(self, worker) -> None:
        with self.lock:
            self.workers.discard(worker)

    def interrupt(self) -> None:
        self.stop.set()
        with self.lock:
            workers = list(self.workers)
        for w in workers:
            w.kill()

    def sweep(self) -> None:
        """After an interrupt: kill what is left and remove every scratch folder a thread has not removed yet."""
        with self.lock:
            workers, folders = list(self.workers), list(self.scratch)
        for w in workers:
            w.kill()
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


class Worker:
    """One sandboxed process running one submission (started fresh after a fault)."""

    def __init__(self, limits: Limits, session: Session | None = None, startup_timeout: float = STARTUP_TIMEOUT_S,
                 answers=()):
        self.limits, self.session = limits, session
        self.scratch = tempfile.mkdtemp(prefix="grade-")
        if session is not None:
            with session.lock:
                session.scratch.add(self.scratch)
            if session.stop.is_set():
                shutil.rmtree(self.scratch, ignore_errors=True)
                raise _Stopped()
        os.chmod(self.scratch, 0o777)  # the worker may run as an unprivileged user
        self.errfile = tempfile.TemporaryFile()  # the worker's start-up errors (it silences itself once ready)
        parent, child = socket.socketpair()
        self.sock = parent
        env = {"PATH": "/usr/bin:/bin", "HOME": self.scratch, "MPLCONFIGDIR": self.scratch, "OMP_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "COURSE_DEVICE": "cpu",
               "COURSE_GRADE_MEMORY_MB": str(int(limits.memory_mb)),
               "COURSE_GRADE_CPU_S": str(int(math.ceil(limits.timeout_s)) + 10),
               "COURSE_GRADE_ANSWERS": ",".join(answers),  # looked up before the lock-down (see Hider.prepare)
               "PYTHONPATH": os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))}
        try:
            self.proc = subprocess.Popen(
                [*WORKER_COMMAND, str(child.fileno())],
                pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=self.errfile, cwd=self.scratch, env=env, start_new_session=True)
        except OSError as exc:
            child.close()
            self._cleanup()
            raise GraderFailure(f"the grading worker could not be started: {exc}") from None
        child.close()
        try:
            if session is not None:
                session.add(self)
            self.ready = self._handshake(startup_timeout)
        except BaseException:
            self.close()
            raise
        self.deadline = time.monotonic() + limits.timeout_s  # the student's time starts now
        self.cell = None  # the notebook cell the worker last said it started

    def _handshake(self, timeout: float) -> dict:
        """Wait for "ready": until then none of the student's code has run, so any failure is the grader's."""
        end = time.monotonic() + timeout
        try:
            head = self._recv(8, end, None)
            msg = codec.loads(self._recv(struct.unpack(">Q", head)[0], end, None))
        except (EOFError, OSError, codec.CodecError, ValueError, struct.error, _HandshakeTimeout) as exc:
            self.kill()
            if self.session is not None and self.session.stop.is_set():
                raise _Stopped() from None
            try:
                code = self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                code = None
            if self.session is not None and code is not None and -code in _STOP_SIGNALS:
                # forked just as the terminal's Ctrl-C reached our process group (before the worker left it):
                # the interrupt, not a failure; the main thread is about to stop the run
                if self.session.stop.wait(INTERRUPT_GRACE_S):
                    raise _Stopped() from None
            if isinstance(exc, _HandshakeTimeout):
                raise GraderFailure(f"the grading worker did not start within {timeout:.0f} s (is the host overloaded?)") from None
            raise GraderFailure("the grading worker died while starting, before running any of the notebook: "
                                f"{self._exit_text()}{self._stderr_tail()}") from None
        if msg.get("op") == "setup_failed":
            self.kill()
            raise GraderFailure(f"the grading worker could not lock itself down on this host: {msg.get('error')}")
        if msg.get("op") != "ready":
            self.kill()
            raise GraderFailure(f"the grading worker sent {str(msg)[:100]} instead of 'ready'")
        return msg

    def _exit_text(self) -> str:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "it stopped answering"
        return f"exit code {code}" if code >= 0 else f"signal {signal.Signals(-code).name}"

    def _stderr_tail(self) -> str:
        try:
            self.errfile.seek(0)
            text = self.errfile.read()[-1500:].decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""
        return f"; its error output:\n{text}" if text else ""

    def request(self, message: dict, timeout: float) -> dict:
        """Send ``message`` and return the answer; progress messages on the way ({"op": "cell"}) set :attr:`cell`."""
        if timeout > self.deadline - time.monotonic():
            timeout, what = self.deadline - time.monotonic(), f"the time limit of {self.limits.timeout_s:.0f} s for the submission"
        else:
            what = f"{timeout:.0f} s"
        if timeout <= 0:
            self.kill()
            raise Abort("timeout", f"time limit of {self.limits.timeout_s:.0f} s for the submission exceeded")
        try:
            data = codec.dumps(message)
        except codec.CodecError as exc:
            raise GraderBug(f"a check passed an argument the grader cannot send: {exc}") from exc
        end = time.monotonic() + timeout
        try:
            self.sock.sendall(struct.pack(">Q", len(data)) + data)
            while True:
                head = self._recv(8, end, what)
                reply = codec.loads(self._recv(struct.unpack(">Q", head)[0], end, what))
                if reply.get("op") != "cell":
                    return reply
                self.cell = reply.get("label")
        except (BrokenPipeError, ConnectionResetError, EOFError):
            if self.session is not None and self.session.stop.is_set():
                raise _Stopped() from None
            raise Abort("crashed", self._death_reason()) from None
        except (codec.CodecError, ValueError) as exc:
            self.kill()
            raise Abort("error", f"the notebook sent back malformed data ({exc})") from None

    def _recv(self, n: int, end: float, what: str | None) -> bytes:
        """n bytes before time ``end``; past it, Abort("timeout", no answer within ``what``), or (None) _HandshakeTimeout."""
        chunks, got = [], 0
        while got < n:
            if self.session is not None and self.session.stop.is_set():
                self.kill()
                raise _Stopped()
            left = end - time.monotonic()
            if left <= 0:
                self.kill()
                if what is None:
                    raise _HandshakeTimeout()
                raise Abort("timeout", f"no answer within {what} (an endless loop, or too slow)")
            if not select.select([self.sock], [], [], min(left, 0.25))[0]:
                continue
            b = self.sock.recv(min(n - got, 1 << 20))
            if not b:
                raise EOFError
            chunks.append(b)
            got += len(b)
        return b"".join(chunks)

    def _death_reason(self) -> str:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "the notebook's process stopped answering"
        if code < 0:
            sig = signal.Signals(-code).name
            if sig == "SIGKILL":
                return "the notebook's process was killed (SIGKILL: it killed itself, or ran out of memory)"
            if sig == "SIGXCPU":
                return "the notebook's process exceeded its CPU time limit"
            return f"the notebook's process died with {sig}"
        return f"the notebook ended its own process (exit code {code}: sys.exit/os._exit?)"

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, AttributeError):
            pass

    def close(self) -> None:
        self.kill()
        if self.session is not None:
            self.session.discard(self)
        try:
            self.proc.wait(timeout=10)
        except (subprocess.TimeoutExpired, AttributeError):
            pass
        self._cleanup()

    def _cleanup(self) -> None:
        self.sock.close()
        self.errfile.close()
        shutil.rmtree(self.scratch, ignore_errors=True)
        if self.session is not None:
            with self.session.lock:
                self.session.scratch.discard(self.scratch)


class _HandshakeTimeout(Exception):
    pass


_STOP_SIGNALS = {int(signal.SIGINT), int(signal.SIGTERM), int(getattr(signal, "SIGHUP", signal.SIGTERM))}


class RemoteFunction:
    """Stands for the learner's function inside the checks: calls go to the worker."""

    def __init__(self, worker: Worker, name: str):
        self.worker, self.name, self.__name__ = worker, name, name
        self.hits: set[str] = set()  # library answers the function called (hidden while grading this exercise)

    def __call__(self, *args, **kwargs):
        reply = self.worker.request({"op": "call", "name": self.name, "args": list(args), "kwargs": kwargs},
                                    self.worker.limits.call_timeout_s)
        self.hits.update(reply.get("hidden_hits") or [])
        if reply.get("ok"):
            return reply.get("value")
        if reply.get("kind") == "not_implemented":
            raise NotImplementedError(reply.get("error", ""))
        if reply.get("kind") == "answer_hidden":
            raise LibraryAnswerError(reply.get("error", "error"))
        raise _REMOTE_TYPES.get(reply.get("exc_type"), StudentError)(reply.get("error", "error"))


class StudentError(Exception):
    """An exception raised by the learner's function in the worker (its text: "Type: message")."""

    remote = True


class LibraryAnswerError(StudentError):
    """The learner's function called a library function that is the answer to the exercise being graded."""


# Built-in exception types keep their type across the sandbox, so a check that expects, say, a
# ValueError for bad input behaves the same in the learner's kernel and in grading.
_KEPT = ("ValueError", "TypeError", "IndexError", "KeyError", "LookupError", "ZeroDivisionError", "ArithmeticError",
         "OverflowError", "FloatingPointError", "RuntimeError", "AttributeError", "NameError", "AssertionError")
_REMOTE_TYPES = {name: type(f"Remote{name}", (StudentError, getattr(builtins, name)), {"remote": True}) for name in _KEPT}


# ----------------------------------------------------------------------------------------------
# the lesson's exercises and checks (instructor side)
# ----------------------------------------------------------------------------------------------
def lesson_spec(lesson: str, root: str = ROOT) -> tuple[str, dict[str, str]]:
    """(solution notebook path, {exercise id: function name}) for lesson number ``lesson``."""
    import nbformat

    try:
        number = int(lesson)
    except (TypeError, ValueError):
        number = None
    matches = sorted(glob.glob(os.path.join(root, "solutions", f"{number:02d}_*.ipynb"))) if number is not None else []
    if not matches:
        known = sorted(os.path.basename(p)[:2] for p in glob.glob(os.path.join(root, "solutions", "*.ipynb")))
        raise ValueError(f"lesson must be one with exercises in solutions/ ({', '.join(known) or 'none yet'}); got {lesson!r}")
    nb = nbformat.read(matches[0], as_version=4)
    calls = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            calls.update(dict(CHECK_CALL.findall(cell.source)))
    ids = exercise_ids(nb)
    missing = [e for e in ids if e not in calls]
    if missing:
        raise ValueError(f"{matches[0]}: exercises {missing} have no check(...) cell naming their function")
    return matches[0], {e: calls[e] for e in ids}


def load_checks(root: str = ROOT) -> tuple[dict, dict]:
    """Public checks (course_lib.checks) and hidden ones (tests/hidden, instructor only)."""
    import importlib.util

    from .checks import public_checks

    hidden = {}
    for path in sorted(glob.glob(os.path.join(root, "tests", "hidden", "lesson*.py"))):
        spec = importlib.util.spec_from_file_location(f"_hidden_{os.path.basename(path)[:-3]}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        hidden.update(getattr(module, "HIDDEN", {}))
    return public_checks(), hidden


def load_answered() -> dict[str, tuple[str, ...]]:
    """{exercise id: dotted names of the library functions that are its answer} (course_lib.checks.answered_by)."""
    from . import checks

    registry = getattr(checks, "answered_by", None)
    return {k: tuple(v) for k, v in registry().items()} if registry else {}


def resolve_answers(answered: dict, exercises) -> None:
    """Every dotted name the lesson's exercises hide must exist (a typo would hide nothing, silently)."""
    import importlib

    bad = []
    for ex in exercises:
        for dotted in answered.get(ex, ()):
            parts, found = dotted.split("."), False
            for i in range(len(parts) - 1, 0, -1):
                try:
                    obj = importlib.import_module(".".join(parts[:i]))
                except ImportError:
                    continue
                try:
                    for attr in parts[i:]:
                        obj = getattr(obj, attr)
                    found = True
                except AttributeError:
                    pass
                break
            if not found:
                bad.append(f"{ex}: {dotted}")
    if bad:
        raise SetupError("ANSWERED_BY (course_lib/checks) names library functions that do not exist: " + ", ".join(bad))


# ----------------------------------------------------------------------------------------------
# reading a submitted notebook as Jupyter would run it
# ----------------------------------------------------------------------------------------------
_ID_RE = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")


def read_notebook(path: str) -> tuple[list[str], list[str]]:
    """(the code cells' sources in order, notes on what was repaired) for a submitted notebook (see
    :func:`read_notebook_cells`)."""
    cells, notes = read_notebook_cells(path)
    return [src for _, src in cells], notes


def read_notebook_cells(path: str) -> tuple[list[tuple[int, str]], list[str]]:
    """([(cell number counting every cell from the top, source) of each code cell], notes on what was repaired).

    Jupyter opens notebooks that do not follow the nbformat schema to the letter: so does the grader.
    Details that do not change the code are repaired and said (a UTF-8 byte-order mark, UTF-16 text,
    cell ids on a notebook that declares nbformat < 4.5, missing/null/duplicate ids, other schema
    departures); a file whose code cannot be read raises :class:`InvalidNotebook` with the reason.
    """
    import nbformat

    notes: list[str] = []
    if os.path.getsize(path) > MAX_NOTEBOOK_BYTES:
        raise InvalidNotebook(f"the file is larger than {MAX_NOTEBOOK_BYTES >> 20} MB")
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
        notes.append("the file starts with a UTF-8 byte-order mark (some Windows editors add one): ignored")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise InvalidNotebook(f"not a valid notebook: the file claims to be UTF-16 text but is not ({exc.reason})") from None
        notes.append("the file is UTF-16 text (saved by a Windows tool), not UTF-8: read as UTF-16")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidNotebook(f"not a valid notebook: the file is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                                  f"{exc.start}); open it in Jupyter and save it again") from None
    if not text.strip():
        raise InvalidNotebook("not a valid notebook: the file is empty")
    try:
        nb = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidNotebook(f"not a valid notebook: the file is not JSON ({exc.msg} at line {exc.lineno}, column "
                              f"{exc.colno}); was it saved from Jupyter, or renamed from another format?") from None
    if not isinstance(nb, dict) or not ("cells" in nb or "worksheets" in nb):
        raise InvalidNotebook("not a valid notebook: the file is JSON but has no cells")
    major = nb.get("nbformat")
    if major is None:
        nb["nbformat"], nb["nbformat_minor"] = 4, 5 if any(isinstance(c, dict) and "id" in c for c in nb.get("cells", [])) else 4
        notes.append(f"the file does not say its nbformat version: read as {nb['nbformat']}.{nb['nbformat_minor']}")
    elif major != 4:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                nb = json.loads(json.dumps(nbformat.reads(text, as_version=4)))
        except Exception as exc:  # noqa: BLE001 - any converter failure is the reason
            raise InvalidNotebook(f"not a valid notebook: nbformat {major} could not be converted to 4 ({type(exc).__name__}: "
                                  f"{str(exc)[:150]})") from None
        notes.append(f"the notebook is in nbformat {major}: converted to nbformat 4")
    cells = nb.get("cells")
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise InvalidNotebook("not a valid notebook: 'cells' is not a list of cells")
    notes += _repair_ids(nb)
    problem = _schema_problem(nb)
    if problem:
        notes.append(f"the file departs from the nbformat schema ({problem}); Jupyter opens it anyway, and so does the "
                     "grader: its code cells were graded as they are")
    sources = []
    for i, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        if isinstance(src, list) and all(isinstance(s, str) for s in src):
            src = "".join(src)
        if not isinstance(src, str):
            raise InvalidNotebook(f"not a valid notebook: cell {i + 1}'s source is not text")
        sources.append((i + 1, src))
    return sources, notes


def _repair_ids(nb: dict) -> list[str]:
    """Cell ids as nbformat 4.5 wants them; they never change the code, so any departure is repaired."""
    cells, notes = nb["cells"], []
    minor = nb.get("nbformat_minor")
    has_ids = any("id" in c for c in cells)
    if not isinstance(minor, int) or minor < 5:
        if not has_ids:
            return notes
        nb["nbformat_minor"] = 5
        notes.append(f"the notebook declares nbformat 4.{minor} but its cells carry ids (an nbformat 4.5 feature, as VS Code "
                     "and newer Jupyter write them): read as nbformat 4.5")
    seen, fixed = set(), {"missing": 0, "invalid": 0, "duplicate": 0}
    for c in cells:
        cid = c.get("id", None)
        kind = None
        if "id" not in c:
            kind = "missing"
        elif not isinstance(cid, str) or not _ID_RE.match(cid):
            kind = "invalid"
        elif cid in seen:
            kind = "duplicate"
        if kind:
            fixed[kind] += 1
            cid = uuid.uuid4().hex[:8]
            while cid in seen:
                cid = uuid.uuid4().hex[:8]
            c["id"] = cid
        seen.add(cid)
    words = {"missing": "had no id", "invalid": "had an invalid id (such as null)", "duplicate": "shared an id with another cell"}
    for kind, n in fixed.items():
        if n:
            notes.append(f"{n} cell{'s' if n > 1 else ''} {words[kind]}: given a fresh id (ids do not change the code)")
    return notes


def _schema_problem(nb: dict) -> str:
    from nbformat.validator import iter_validate

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            errors = list(iter_validate(nb, version=4, version_minor=nb.get("nbformat_minor", 5)))
    except Exception as exc:  # noqa: BLE001 - a validator crash is itself the departure
        return f"{type(exc).__name__}: {str(exc)[:120]}"
    if not errors:
        return ""
    e = errors[0]
    where = "/".join(str(p) for p in getattr(e, "absolute_path", []) or [])
    msg = getattr(e, "message", str(e)).splitlines()[0][:140]
    more = f", and {len(errors) - 1} more" if len(errors) > 1 else ""
    return f"{msg}{' at ' + where if where else ''}{more}"


def _code_cells(sources: list[tuple[int, str]]) -> list[tuple[int, str]]:
    cells = []
    for number, src in sources:
        if CHECK_CALL.search(src) and all(not line.strip() or CHECK_CALL.match(line) for line in src.splitlines()):
            continue  # self-check calls: the grader runs its own checks
        # IPython syntax (magics, shell escapes) is not Python: comment it out rather than fail the cell
        cells.append((number, "\n".join(("# " + l) if l.lstrip().startswith(("%", "!")) else l for l in src.splitlines())))
    return cells


# ----------------------------------------------------------------------------------------------
# grading one submission
# ----------------------------------------------------------------------------------------------
def _check_name(chk) -> str:
    return (chk.__doc__ or chk.__name__).strip().splitlines()[0]


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_BRACKETS = re.compile(r"\[[^\[\]]*\]|\([^()]*\)|tensor\([^)]*\)")


def _hint(message: str) -> str:
    """What a failure message tells the learner to fix, without the learner's own values (groups the class)."""
    m = re.search(r"\bhint:\s*(.+)$", message, re.I | re.M)  # to the end of its line
    if m:
        return " ".join(m.group(1).split())[:300]
    gist = message.strip().splitlines()[0] if message.strip() else ""
    for _ in range(3):
        gist = _BRACKETS.sub("…", gist)
    return " ".join(_NUMBER.sub("#", gist).split())[:200]


_FAULT_HINTS = {"timeout": "timed out: an endless loop, or far too slow",
                "crashed": "the process died: os._exit/sys.exit in a call, a kill, or out of memory",
                "error": "the answer could not be read back"}


def _blank(ex: str, max_points: int, status: str, reason: str) -> dict:
    return {"exercise": ex, "points": 0, "max_points": max_points, "status": status, "reason": reason,
            "details": [], "failed": []}


def grade_submission(path: str, exercises: dict[str, str], public: dict, hidden: dict, limits: Limits, *,
                     answered: dict | None = None, session: Session | None = None, worker: Worker | None = None) -> list[dict]:
    """Rows (one per exercise) for one submitted notebook.

    ``answered``: {exercise id: dotted names of library functions that are its answer}, hidden in the
    worker while that exercise is graded (default: ``course_lib.checks.answered_by()``). ``worker``: a
    fresh worker to start with (closed when done); further ones are started as needed.
    """
    answered = load_answered() if answered is None else answered
    maxp = {ex: len(public.get(ex, [])) + len(hidden.get(ex, [])) for ex in exercises}
    try:
        sources, notes = read_notebook_cells(path)
    except (InvalidNotebook, OSError) as exc:
        if worker is not None:
            worker.close()
        reason = str(exc) if isinstance(exc, InvalidNotebook) else f"the file cannot be read ({exc.strerror or exc})"
        return [_blank(ex, maxp[ex], "invalid", reason) for ex in exercises]
    cells = _code_cells(sources)
    answers = sorted({n for ex in exercises for n in answered.get(ex, ())})
    order = list(exercises)
    rows: list[dict] = []
    load, skipped = {}, {}  # skipped: {cell number: why} for cells that never finished or ended the process

    def run_notebook():
        """A worker that has run the notebook; a cell that faults is skipped in a fresh worker (as a cell that
        raises is), at most MAX_SKIPPED_CELLS of them."""
        nonlocal worker
        while True:
            worker = worker or Worker(limits, session, answers=answers)
            try:
                reply = worker.request({"op": "load", "cells": [src for n, src in cells if n not in skipped],
                                        "labels": [n for n, _ in cells if n not in skipped], "answers": answers},
                                       limits.timeout_s)
            except Abort as exc:
                cell, worker = worker.cell, worker.close()
                if cell is None or cell in skipped or len(skipped) >= MAX_SKIPPED_CELLS:
                    exc.reason += (f" in cell {cell}" if cell else "") + (
                        f" (cells {', '.join(map(str, sorted(skipped)))} were skipped already)" if skipped else "")
                    raise
                skipped[cell] = (f"{'did not finish' if exc.status == 'timeout' else 'stopped the notebook'} ({exc.reason}); "
                                 "skipped, and the notebook run again without it")
                continue
            unresolved = [*worker.ready.get("unresolved", []), *reply.get("unresolved", [])]
            if unresolved:
                raise GraderFailure("library answers that cannot be found in the sandbox: " + ", ".join(unresolved))
            errors = [*reply.get("cell_errors", []), *({"cell": n, "error": why} for n, why in skipped.items())]
            return {**reply, "cell_errors": sorted(errors, key=lambda e: e["cell"])}

    try:
        for i, ex in enumerate(order):
            if worker is None or not load:
                try:
                    load = run_notebook()
                except Abort as exc:
                    again = " again (after a fault in an earlier exercise)" if i else ""
                    rows += [_blank(e, maxp[e], exc.status, f"while running the notebook{again}: {exc.reason}")
                             for e in order[i:]]
                    break
                except GraderFailure as exc:
                    rows += [_blank(e, maxp[e], GRADER_ERROR, f"the grader failed, not the notebook (graded again on the next run): {exc}")
                             for e in order[i:]]
                    break
            row, fault = _grade_exercise(worker, load, ex, exercises[ex], public.get(ex, []), hidden.get(ex, []),
                                         answered.get(ex, ()), more_after=i < len(order) - 1)
            rows.append(row)
            if fault:
                worker.close()
                worker, load = None, {}
    finally:
        if worker is not None:
            worker.close()
    for r in rows:
        r["notes"] = notes
    return rows


def _grade_exercise(worker: Worker, load: dict, ex: str, fname: str, pub: list, hid: list, hide, more_after: bool):
    """(row, fault) for one exercise; a fault (the worker timed out, died, or garbled its answer) ends the exercise."""
    row = _blank(ex, len(pub) + len(hid), "", "")
    errors = "; ".join(f"cell {e['cell']}: {e['error']}" for e in load.get("cell_errors", []))
    note = f" [notebook errors: {errors}]" if errors else ""
    if fname not in set(load.get("functions", [])):
        row.update(status="missing", reason=f"function {fname} is not defined" + (f" ({errors})" if errors else ""))
        return row, None
    try:
        reply = worker.request({"op": "exercise", "id": ex, "hide": list(hide)}, worker.limits.call_timeout_s)
    except Abort as exc:
        row.update(status=exc.status, reason=f"before the checks of {ex}: {exc.reason}")
        return row, exc
    if not reply.get("ok"):
        row.update(status=GRADER_ERROR, reason="the grader could not hide the library's answer (graded again on the next "
                   f"run): {', '.join(reply.get('missing', []))}")
        return row, None
    fn = RemoteFunction(worker, fname)
    checks = [(False, i, c) for i, c in enumerate(pub)] + [(True, i, c) for i, c in enumerate(hid)]
    passed, failed_pub, failed_hid, not_impl, fault = 0, 0, 0, False, None
    for n, (is_hidden, i, chk) in enumerate(checks):
        name, label = _check_name(chk), f"{'hidden' if is_hidden else 'public'} check {i + 1}"
        try:
            res = check(ex, fn, checks=[chk])
        except Abort as exc:
            fault = exc
            left = len(checks) - n - 1
            row["failed"].append({"check": name, "hidden": is_hidden, "hint": _FAULT_HINTS.get(exc.status, exc.status),
                                  "fault": exc.status})
            row["details"].append(f"{label if is_hidden else name}: {exc.reason}")
            row["reason"] = (f"stopped at {label} of {ex}: {exc.reason}; {passed} of {len(checks)} checks had passed"
                             + (f", the {left} after it {'was' if left == 1 else 'were'} not run" if left else "")
                             + ("; the other exercises were graded in a fresh process" if more_after else ""))
            break
        except GraderBug as exc:
            row.update(status=GRADER_ERROR, points=0, failed=[], details=[],
                       reason=f"the grader failed on {label} of {ex}, not the notebook (graded again on the next run): {exc}")
            return row, None
        if res.not_implemented and passed == 0 and n == 0:
            not_impl = True
            break
        if res.passed:
            passed += 1
            continue
        failure = res.failures[0] if res.failures else f"{name}: failed"
        message = failure[len(name) + 2:] if failure.startswith(name + ": ") else failure
        if res.not_implemented:
            message = "your function raised NotImplementedError for this case"
        if is_hidden:
            failed_hid += 1
            row["details"].append(f"hidden check {i + 1} failed")  # its message could reveal expected values
        else:
            failed_pub += 1
            row["details"].append(f"{name}: {message}")
        row["failed"].append({"check": name, "hidden": is_hidden, "hint": _hint(message)})
    row["points"] = passed
    if fn.hits:
        names = ", ".join(sorted(fn.hits))
        row["points"] = 0
        row["failed"].insert(0, {"check": "calls the library's answer", "hidden": False, "hint": names, "library": True})
        lib = (f"calls {names}, the library's answer to {ex}: it is unavailable while {ex} is graded, so {ex} earns no "
               "credit; compute it yourself")
        row["details"].insert(0, lib)
        row.update(status=fault.status if fault else "failed", reason=lib + (f"; also {row['reason']}" if fault else "") + note)
        return row, fault
    if fault:
        row.update(status=fault.status, reason=row["reason"] + note)
    elif not_impl:
        row.update(status="not implemented", reason="the function still raises NotImplementedError" + note)
    elif passed == len(checks):
        row.update(status="passed", reason=note.strip())
    else:
        row.update(status="partial" if passed else "failed",
                   reason=f"{failed_pub} public and {failed_hid} hidden checks failed{note}")
    return row, fault


# ----------------------------------------------------------------------------------------------
# before grading a class: are the limits possible on this host, and does the solution pass?
# ----------------------------------------------------------------------------------------------
def preflight(limits: Limits, solution: str, exercises: dict, public: dict, hidden: dict, answered: dict,
              session: Session | None = None) -> list[str]:
    """Refuse settings that would record correct notebooks as failed; returns notes for the instructor.

    1. A worker starts with the limits: what the host capped or refused comes back as notes, and its own
       address space once torch and numpy are loaded is measured: ``memory_mb`` must exceed it by
       :data:`HEADROOM_MB`.
    2. The lesson's own solution is graded with these limits (and the library answers hidden): it must get
       full marks, or nothing is graded (a time limit too short for this host, a check that is wrong...).
    """
    limits.validate()
    answers = sorted({n for ex in exercises for n in answered.get(ex, ())})
    try:
        probe = Worker(limits, session, answers=answers)
    except GraderFailure as exc:
        raise SetupError(f"the grading worker cannot start on this host: {exc}") from None
    ready = probe.ready
    notes = list(ready.get("notes", []))
    base, mem = ready.get("baseline_mb"), (ready.get("limits") or {}).get("RLIMIT_AS")
    if base:
        need = int(math.ceil((base + HEADROOM_MB) / 50.0) * 50)
        if limits.memory_mb < need:
            probe.close()
            raise SetupError(f"--memory-mb {limits.memory_mb} is below what the grading worker itself needs on this host: "
                             f"{base:.0f} MB of address space once Python, numpy and torch are loaded (measured just now), "
                             f"plus {HEADROOM_MB} MB for the learner's code. Use --memory-mb {need} or more (default 3000).")
    if mem is None and (ready.get("limits") or {}).get("RLIMIT_DATA") is None:
        notes.append(f"--memory-mb {limits.memory_mb} is not enforced on this host (no settable memory limit)")
    t0 = time.perf_counter()
    rows = grade_submission(solution, exercises, public, hidden, limits, answered=answered, session=session, worker=probe)
    took = time.perf_counter() - t0
    bad = [r for r in rows if r["status"] != "passed"]
    if bad:
        why = "; ".join(f"{r['exercise']}: {r['points']}/{r['max_points']} {r['status']} ({r['reason'][:200]}"
                        + "".join(f"; {d[:200]}" for d in r.get("details", [])[:2]) + ")" for r in bad)
        raise SetupError(f"the lesson's own solution ({os.path.basename(solution)}) does not get full marks with --timeout "
                         f"{limits.timeout_s:g} --memory-mb {limits.memory_mb} on this host, so correct notebooks would be "
                         f"recorded as failed; nothing was graded. {why}. If a limit is the cause, raise it; otherwise "
                         "the checks or the solution need fixing.")
    if took > 0.5 * limits.timeout_s:
        notes.append(f"the lesson's solution took {took:.0f} s of the {limits.timeout_s:g} s allowed per submission on "
                     "this host: slower notebooks may time out (consider a larger --timeout)")
    return notes


# ----------------------------------------------------------------------------------------------
# grading a class
# ----------------------------------------------------------------------------------------------
def find_submissions(folder: str, solution_name: str) -> dict[str, str]:
    """{student: notebook path} for ``folder/<student>.ipynb`` and ``folder/<student>/*.ipynb``."""
    subs = {}
    for entry in sorted(os.listdir(folder)):
        full = os.path.join(folder, entry)
        if os.path.isfile(full) and entry.endswith(".ipynb"):
            subs[entry[: -len(".ipynb")]] = full
        elif os.path.isdir(full) and not entry.startswith("."):
            nbs = sorted(glob.glob(os.path.join(full, "*.ipynb")))
            named = [p for p in nbs if os.path.basename(p) == solution_name]
            if named or nbs:
                subs[entry] = (named or nbs)[0]
            else:
                subs[entry] = os.path.join(full, solution_name)  # graded as "invalid: not found"
    return subs


def read_gradebook(csv_path: str) -> list[dict]:
    """The gradebook's rows, without a torn last line (a run killed while writing it)."""
    if not os.path.exists(csv_path):
        return []
    with open(csv_path, newline="", encoding="utf-8") as f:
        text = f.read()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return [r for r in csv.DictReader(io.StringIO(text)) if r.get("student")]


def _complete(rows: list[dict], exercises) -> bool:
    if sorted(r.get("exercise") or "" for r in rows) != sorted(exercises):
        return False
    for r in rows:
        if r.get("status") in (None, "", GRADER_ERROR):
            return False
        try:
            int(r["points"]), int(r["max_points"])
            json.loads(r["failed_checks"]) if r.get("failed_checks") else None
        except (TypeError, ValueError, KeyError):
            return False
    return True


def _read_complete(csv_path: str, exercises) -> dict[str, list[dict]]:
    """{student: rows} of the students whose grading finished (every exercise once, no grader error)."""
    by_student: dict[str, list[dict]] = {}
    for row in read_gradebook(csv_path):
        by_student.setdefault(row["student"], []).append(row)
    return {s: rows for s, rows in by_student.items() if _complete(rows, exercises)}


def _csv_row(student: str, r: dict) -> dict:
    failed = r.get("failed") or []
    return {"student": student, "exercise": r["exercise"], "points": r["points"], "max_points": r["max_points"],
            "status": r["status"], "reason": r["reason"],
            "failed_checks": json.dumps(failed, ensure_ascii=False, separators=(",", ":")) if failed else ""}


def grade_class(folder: str, lesson: str, outdir: str, *, jobs: int = 2, limits: Limits | None = None,
                root: str = ROOT, checks: tuple[dict, dict] | None = None, answered: dict | None = None,
                progress=print, check_setup: bool = True, report: bool = True) -> str:
    """Grade every submission in ``folder``; returns the gradebook path (outdir/gradebook.csv).

    Also writes outdir/feedback/<student>.md and (``report``) outdir/report.html and report.csv. With
    ``check_setup`` the limits are checked on this host and the lesson's solution graded first
    (:func:`preflight`). Interrupted (KeyboardInterrupt): stops promptly, keeps finished students only,
    and raises :class:`Interrupted`; the same call resumes.
    """
    if not os.path.isdir(folder):
        raise ValueError(f"submissions must be a folder of notebooks; got {folder!r}")
    if not isinstance(jobs, int) or jobs < 1:
        raise SetupError(f"--jobs must be a whole number >= 1; got {jobs!r}")
    limits = limits or Limits()
    limits.validate()
    solution, exercises = lesson_spec(lesson, root)
    public, hidden = checks if checks is not None else load_checks(root)
    answered = load_answered() if answered is None else answered
    resolve_answers(answered, exercises)
    os.makedirs(os.path.join(outdir, "feedback"), exist_ok=True)
    csv_path = os.path.join(outdir, "gradebook.csv")
    done = _read_complete(csv_path, exercises)
    # rewrite the gradebook with complete students only (drops a student half-written by an interrupted run,
    # and rows the grader itself failed on: those students are graded again)
    tmp = csv_path + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        for rows in done.values():
            w.writerows({k: (r.get(k) or "") for k in FIELDS} for r in rows)
    os.replace(tmp, csv_path)
    todo = {s: p for s, p in find_submissions(folder, os.path.basename(solution)).items() if s not in done}
    session = Session()
    if todo and check_setup:
        for note in preflight(limits, solution, exercises, public, hidden, answered, session):
            progress(f"note: {note}")
    counts = {"graded": 0, "grader_errors": 0}
    maxp = {ex: len(public.get(ex, [])) + len(hidden.get(ex, [])) for ex in exercises}

    def one(student: str, path: str):
        t0 = time.perf_counter()
        try:
            if not os.path.exists(path):
                rows = [_blank(ex, maxp[ex], "invalid", "no notebook submitted") for ex in exercises]
            else:
                rows = grade_submission(path, exercises, public, hidden, limits, answered=answered, session=session)
        except _Stopped:
            return
        except Exception as exc:  # noqa: BLE001 - the grader's own bug: never the student's
            rows = [_blank(ex, maxp[ex], GRADER_ERROR, f"the grader failed, not the notebook (graded again on the next run): "
                           f"{type(exc).__name__}: {exc}"[:500]) for ex in exercises]
        with session.lock:
            if session.stop.is_set():
                return  # interrupted: an unfinished student leaves no row
            with open(csv_path, "a", newline="", encoding="utf-8") as f:
                csv.DictWriter(f, FIELDS).writerows(_csv_row(student, r) for r in rows)
                f.flush()
                os.fsync(f.fileno())
            _write_feedback(os.path.join(outdir, "feedback", f"{student}.md"), student, lesson, rows)
            counts["graded"] += 1
            counts["grader_errors"] += any(r["status"] == GRADER_ERROR for r in rows)
            total, best = sum(r["points"] for r in rows), sum(r["max_points"] for r in rows)
            progress(f"graded {student}: {total}/{best} ({time.perf_counter() - t0:.1f} s)")

    q: queue.Queue = queue.Queue()
    for item in todo.items():
        q.put(item)

    def runner():
        while not session.stop.is_set():
            try:
                student, path = q.get_nowait()
            except queue.Empty:
                return
            one(student, path)

    threads = [threading.Thread(target=runner, name=f"grade-{i}", daemon=True) for i in range(min(jobs, max(1, len(todo))))]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(0.1)
    except KeyboardInterrupt:
        main_thread = threading.current_thread() is threading.main_thread()
        old = signal.signal(signal.SIGINT, signal.SIG_IGN) if main_thread else None  # a second Ctrl-C: cleanup is short
        try:
            session.interrupt()
            with session.lock:
                pass  # a student being written finishes; none starts after this
            deadline = time.monotonic() + 10
            for t in threads:
                t.join(max(0.0, deadline - time.monotonic()))
            session.sweep()
        finally:
            if main_thread:
                signal.signal(signal.SIGINT, old)
        left = len(todo) - counts["graded"]
        raise Interrupted(f"interrupted: {counts['graded']} students finished in this run, {left} not finished (no row "
                          "written for them); run the same command again to grade them") from None
    if counts["grader_errors"]:
        progress(f"warning: {counts['grader_errors']} students have rows marked '{GRADER_ERROR}' (a failure of the grader, "
                 "not of their notebooks): fix the cause and run the same command again to grade them")
    if report:
        from .grade_report import write_report

        html_path, _ = write_report(csv_path, outdir, lesson=str(lesson), exercises=list(exercises))
        progress(f"report: {html_path}")
    return csv_path


def _write_feedback(path: str, student: str, lesson: str, rows: list[dict]) -> None:
    total, best = sum(r["points"] for r in rows), sum(r["max_points"] for r in rows)
    lines = [f"# Lesson {lesson}: feedback for {student}", "", f"Score: {total} / {best}", ""]
    notes = rows[0].get("notes") if rows else None
    if notes:
        lines += ["Your notebook file was read as Jupyter reads it; repaired (your code is unchanged):"]
        lines += [f"- {n}" for n in notes] + [""]
    for r in rows:
        lines.append(f"## Exercise {r['exercise']}: {r['points']} / {r['max_points']} ({r['status']})")
        if r["reason"]:
            lines.append(f"{r['reason']}")
        lines += [f"- {d}" for d in r.get("details", [])]
        lines.append("")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    os.replace(tmp, path)


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m course_lib grade", description="Grade a folder of submitted notebooks.")
    ap.add_argument("submissions", help="folder: <student>.ipynb or <student>/<notebook>.ipynb")
    ap.add_argument("--lesson", required=True, help="lesson number (its exercises are in solutions/NN_*.ipynb)")
    ap.add_argument("--out", default="grades", help="output folder: gradebook.csv, feedback/, report.html, report.csv (default: grades/)")
    ap.add_argument("--jobs", type=_positive(int), default=2, help="submissions graded at once (default 2)")
    ap.add_argument("--timeout", type=_positive(float), default=120.0,
                    help="seconds a submission may run: the notebook plus its exercises' checks (default 120)")
    ap.add_argument("--memory-mb", type=_positive(int), default=3000,
                    help="address-space limit per submission in MB, including the ~700 MB that torch and numpy map "
                         "(default 3000; refused if below what the worker needs on this host)")
    args = ap.parse_args(argv)
    return run_interruptibly(lambda: grade_class(args.submissions, args.lesson, args.out, jobs=args.jobs,
                                                 limits=Limits(timeout_s=args.timeout, memory_mb=args.memory_mb)))


def run_interruptibly(grade) -> int:
    """Run ``grade()`` (returns the gradebook path) as the command line does: exit 0, 2 on a refused setting,
    130 when interrupted (Ctrl-C, SIGTERM, SIGHUP: finished students are kept; the same command resumes)."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        def stop(signum, frame):
            raise KeyboardInterrupt

        for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):  # a closed terminal or a stopped job
            if sig is not None:
                previous[sig] = signal.signal(sig, stop)
    try:
        path = grade()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # more Ctrl-C while exiting: nothing left to stop
        print(str(exc) or "interrupted: run the same command again to resume", file=sys.stderr, flush=True)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(f"gradebook: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
