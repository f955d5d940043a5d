"""The sandboxed process that runs ONE student submission during grading (never the checks).

Started by :mod:`course_lib.grading` as ``python -m course_lib._grade_worker FD``. It
1. imports the heavy libraries, measures its own address space (what the sandbox itself needs), then
   locks itself down: resource limits (memory, CPU time, file size), each capped at what the host
   allows (:func:`apply_limits`; what could not be set is reported, never fatal), an unprivileged user
   when started as root, and an audit hook that allows file access only under the Python installation,
   the course package (which holds only public checks) and its own scratch folder, and forbids
   subprocesses, ctypes and signals to others;
2. says ``ready`` (its measured baseline and the limits in force). Until then no line of the student's
   code has run, so a worker that dies before ``ready`` is the grader's failure, never the student's;
3. executes the submitted notebook's code cells (the ``check(...)`` calls are skipped);
4. answers ``exercise`` requests (hide the library functions that ARE that exercise's answer, see
   :class:`Hider`) and ``call`` requests: runs a student function on inputs sent by the grader and
   sends back the result as plain data (:mod:`course_lib.codec`, no pickle).
The grader compares results with expected values in its own process, so nothing the submission
does here (monkeypatching numpy, torch, builtins or the checker) can change a score.
"""
from __future__ import annotations

import gc
import importlib
import os
import resource
import signal
import site
import struct
import sys
import sysconfig
import types

# Heavy imports happen before the lock-down (torch loads shared libraries through ctypes).
import numpy  # noqa: F401
import torch

import course_lib  # noqa: F401
from course_lib import codec

_BLOCKED_EVENTS = {
    "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
    "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "ctypes.call_function", "ctypes.addressof",
    "ctypes.string_at", "ctypes.wstring_at", "sys._current_frames", "socket.connect", "socket.bind",
    "os.putenv", "os.unsetenv", "sys.settrace", "sys.setprofile", "code.__new__",
}
FSIZE_BYTES = 16 << 20  # files the submission writes: 16 MiB at most
HIDDEN_SOURCE = "a copy or reload of the library module that holds the answer"


def _send(fd: int, obj) -> None:
    data = codec.dumps(obj)
    os.write(fd, struct.pack(">Q", len(data)))
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _recv(fd: int):
    head = _read_exact(fd, 8)
    if head is None:
        return None
    return codec.loads(_read_exact(fd, struct.unpack(">Q", head)[0]))


def _read_exact(fd: int, n: int):
    chunks, got = [], 0
    while got < n:
        b = os.read(fd, n - got)
        if not b:
            return None
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


# ----------------------------------------------------------------------------------------------
# resource limits, capped at what the host allows
# ----------------------------------------------------------------------------------------------
_LABELS = {"RLIMIT_AS": "memory (address space)", "RLIMIT_DATA": "memory (data segment)", "RLIMIT_CPU": "CPU time",
           "RLIMIT_FSIZE": "file size", "RLIMIT_CORE": "core dumps"}


def _fmt_limit(name: str, value: int, res) -> str:
    if value == res.RLIM_INFINITY:
        return "unlimited"
    if name in ("RLIMIT_AS", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_CORE"):
        return f"{value / 2**20:.0f} MB"
    return f"{value} s"


def apply_limits(wanted: dict[str, tuple[int, int]], res=resource) -> tuple[dict, list[str]]:
    """Set each ``{"RLIMIT_X": (soft, hard)}``, capped at the host's hard limit; never raises.

    Returns ({name: (soft, hard) in force, or None where it could not be set}, notes for the instructor).
    A host may refuse a limit outright (macOS: no settable RLIMIT_AS) or have a lower hard limit than asked
    (a shared login node's ``ulimit -Ht``): the limit is then capped at the hard limit, or left unset, and
    said. Memory falls back to RLIMIT_DATA where RLIMIT_AS cannot be set.
    """
    applied: dict = {}
    notes: list[str] = []
    inf = res.RLIM_INFINITY
    for name, (soft, hard) in wanted.items():
        label = _LABELS.get(name, name)
        kind = getattr(res, name, None)
        if kind is None:
            applied[name] = None
            notes.append(f"the {label} limit does not exist on this host: not enforced")
            continue
        try:
            _, host_hard = res.getrlimit(kind)
        except (ValueError, OSError) as exc:
            applied[name] = None
            notes.append(f"the {label} limit cannot be read on this host ({exc}): not enforced")
            continue
        if host_hard != inf and (hard == inf or hard > host_hard):
            notes.append(f"the {label} limit is capped at the host's hard limit of {_fmt_limit(name, host_hard, res)} "
                         f"(asked for {_fmt_limit(name, soft, res)})")
            hard = host_hard
            soft = min(soft, hard) if soft != inf else hard
        try:
            res.setrlimit(kind, (soft, hard))
            applied[name] = (soft, hard)
        except (ValueError, OSError) as exc:
            applied[name] = None
            if name == "RLIMIT_AS" and hasattr(res, "RLIMIT_DATA") and "RLIMIT_DATA" not in wanted:
                more, extra = apply_limits({"RLIMIT_DATA": (soft, hard)}, res)
                applied.update(more)
                if more.get("RLIMIT_DATA"):
                    notes.append(f"the host refuses a {label} limit ({exc}); the memory limit is set on the data "
                                 "segment instead (RLIMIT_DATA; memory mapped by libraries is not counted)")
                    continue
                notes += extra
            notes.append(f"the host refuses a {label} limit ({exc}): not enforced")
    return applied, notes


def address_space_mb() -> float | None:
    """This process's mapped address space in MB (what RLIMIT_AS counts); None where not measurable."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _lock_down(scratch: str, memory_mb: int, cpu_s: int) -> tuple[dict, list[str]]:
    mem = memory_mb * 1024 * 1024
    applied, notes = apply_limits({"RLIMIT_AS": (mem, mem), "RLIMIT_CPU": (cpu_s, cpu_s + 5),
                                   "RLIMIT_FSIZE": (FSIZE_BYTES, FSIZE_BYTES), "RLIMIT_CORE": (0, 0)})
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write raises OSError instead of killing
    if os.geteuid() == 0:  # never run student code as root: kernel-enforced, not only the audit hook
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    allowed = tuple(os.path.realpath(p) + os.sep for p in {
        sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.__file__),
        os.path.dirname(course_lib.__file__), scratch, "/usr/lib", "/usr/share", "/usr/local/lib", "/proc/self",
        "/sys/devices/system/cpu", "/etc/ssl", "/etc/localtime", "/dev/null", "/dev/urandom",
    })
    exact = {"/dev/null", "/dev/urandom", "/etc/localtime"}
    # what the host says about itself (memory, CPUs, the container's limits): read-only, secret to no one
    host_info = tuple(os.path.realpath(p) for p in ("/proc/meminfo", "/proc/cpuinfo", "/proc/stat", "/proc/loadavg",
                                                    "/proc/uptime", "/proc/version"))
    host_prefixes = tuple(os.path.realpath(p) + os.sep for p in ("/sys/fs/cgroup", "/sys/devices/system/node"))
    writes = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    me = os.getpid()
    realpath = os.path.realpath
    scratch_prefix = os.path.realpath(scratch) + os.sep

    def hook(event, args, _allowed=allowed, _blocked=frozenset(_BLOCKED_EVENTS), _exact=frozenset(exact)):
        if event == "open":
            path = args[0]
            if isinstance(path, int):  # an already-open file descriptor
                return
            p = realpath(os.fsdecode(path))
            if HIDER.files and _is_hidden_source(p):
                HIDER.hits.append(HIDDEN_SOURCE)
                raise PermissionError(f"grading sandbox: {p} defines a function that is this exercise's answer")
            if p in _exact or (p + os.sep).startswith(_allowed):
                return
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else writes
            if not flags & writes and (p in host_info or (p + os.sep).startswith(host_prefixes)):
                return
            raise PermissionError(f"grading sandbox: no access to {p}")
        if event == "function.__new__" and HIDER.codes:
            c = args[0]
            if (getattr(c, "co_filename", None), getattr(c, "co_firstlineno", None), getattr(c, "co_name", None)) in HIDER.codes:
                HIDER.hits.append(HIDDEN_SOURCE)
                raise PermissionError("grading sandbox: a copy of this exercise's answer is not allowed")
            return
        if event in ("exec", "compile") and HIDER.files:
            code = args[0] if event == "exec" else None
            filename = getattr(code, "co_filename", None) if code is not None else (args[1] if len(args) > 1 else None)
            if isinstance(filename, (str, bytes)) and _is_hidden_source(realpath(os.fsdecode(filename))):
                HIDER.hits.append(HIDDEN_SOURCE)
                raise PermissionError("grading sandbox: reloading a module that defines this exercise's answer")
            return
        if event in ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.link",
                     "os.symlink", "os.truncate", "shutil.rmtree", "os.utime"):
            for a in args:
                if isinstance(a, (str, bytes, os.PathLike)):
                    p = realpath(os.fsdecode(a))
                    if not (p + os.sep).startswith(scratch_prefix):
                        raise PermissionError(f"grading sandbox: {event} outside the scratch folder")
            return
        if event == "os.kill" and args and args[0] not in (me, 0):
            raise PermissionError("grading sandbox: signals to other processes are not allowed")
        if event in _blocked or event.startswith("ctypes."):
            raise PermissionError(f"grading sandbox: {event} is not allowed")

    sys.addaudithook(hook)
    return applied, notes


# imported before the lock-down, so that a notebook (or the library, lazily) can use them wherever the submission's
# user cannot read the installation (graded as root with Python under /root); cheap: most are loaded already
PRELOAD = ("matplotlib.pyplot", *"""secrets statistics fractions decimal random typing dataclasses json csv copy itertools
    functools collections heapq bisect string textwrap pprint uuid hashlib hmac base64 datetime calendar enum inspect
    warnings contextlib operator numbers cmath timeit tempfile pathlib glob shutil io struct array queue threading
    weakref abc tokenize ast traceback linecache difflib unicodedata zlib gzip math re time""".split())


def _unreadable_installation() -> list[str]:
    """After dropping root: the folders of the installation the submission's user cannot read (imports of
    modules not loaded before the lock-down then fail), said to the instructor."""
    if os.geteuid() == 0:
        return []
    folders = {os.path.dirname(os.__file__), os.path.dirname(course_lib.__file__), sysconfig.get_paths()["purelib"],
               *site.getsitepackages()}
    bad = sorted(p for p in folders if not os.access(p, os.R_OK | os.X_OK))
    if not bad:
        return []
    return [f"submissions run as an unprivileged user (uid {os.getuid()}) who cannot read {', '.join(bad)} (a parent folder "
            "is not searchable by others, e.g. /root): a notebook can import only the modules loaded before the sandbox "
            "locked down (numpy, torch, matplotlib, pyplot, course_lib's core). Install Python where others can read it, "
            "make the folders searchable (chmod o+x), or grade as a user other than root"]


def _is_hidden_source(path: str) -> bool:
    """The source (or cached bytecode) of a module that defines a currently hidden answer."""
    if path in HIDER.files:
        return True
    head, tail = os.path.split(path)
    if os.path.basename(head) == "__pycache__":
        stem = tail.split(".", 1)[0]
        return os.path.join(os.path.dirname(head), stem + ".py") in HIDER.files
    return False


# ----------------------------------------------------------------------------------------------
# hiding the library functions that are an exercise's answer
# ----------------------------------------------------------------------------------------------
class AnswerHidden(Exception):
    """Raised by a library function that is the answer to the exercise being graded."""


def resolve(dotted: str):
    """(object, owner, attribute) for a dotted name such as ``course_lib.kernels.relu_h_inf``."""
    parts = dotted.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:-1]:
            owner = getattr(owner, attr)
        return getattr(owner, parts[-1]), owner, parts[-1]
    raise ImportError(f"no module in {dotted!r}")


def _innermost(obj):
    seen = set()
    while hasattr(obj, "__wrapped__") and id(obj) not in seen:
        seen.add(id(obj))
        obj = obj.__wrapped__
    return obj


_GLOBAL = "__course_hidden_answer__"


def _stub_code(fn: types.FunctionType, key: str):
    """A code object with ``fn``'s name and free variables whose body raises AnswerHidden for ``key``
    (built from a template: creating code objects directly is forbidden in the sandbox)."""
    free = fn.__code__.co_freevars
    name = fn.__code__.co_name if fn.__code__.co_name.isidentifier() else "hidden_answer"
    lines = ["def _outer():"] + [f"    {v} = None" for v in free] + [f"    def {name}(*args, **kwargs):"]
    if free:
        lines.append("        (" + ", ".join(free) + ",)")
    lines += [f"        raise {_GLOBAL}({key!r})", f"    return {name}"]
    ns: dict = {}
    exec(compile("\n".join(lines), f"<hidden answer {key}>", "exec"), ns)  # noqa: S102 - our own template
    code = ns["_outer"]().__code__
    return code if code.co_freevars == fn.__code__.co_freevars else None


class Hider:
    """Makes the library functions that are one exercise's answer unavailable, and undoes it.

    The functions are looked up (:meth:`prepare`) before the notebook runs, so a submission that
    deletes or rebinds a library name keeps nothing it could use. While exercise N.k is graded, for
    each of its dotted names: every reference to the function in the course package's modules, the
    defining module and the notebook's namespace is replaced by a stub that raises
    :class:`AnswerHidden`; every function object with the same code location (the original, copies,
    aliases held in lists, defaults or closures, versions from before an ``importlib.reload``) has
    its code swapped for the stub's; and the defining module's source and bytecode cannot be opened,
    compiled or executed, nor a function made from its code (no reload, no ``inspect.getsource``).
    A call is recorded in :attr:`hits`, whether or not the submission catches the exception.
    """

    def __init__(self):
        self.exercise = ""
        self.files: frozenset = frozenset()
        self.codes: frozenset = frozenset()
        self.hits: list[str] = []
        self.found: dict = {}
        self._undo: list = []

    def prepare(self, names) -> list[str]:
        """Look up every dotted name now (before the submission runs); returns those that do not resolve."""
        missing = []
        for dotted in names:
            try:
                obj, owner, attr = resolve(dotted)
            except (ImportError, AttributeError) as exc:
                missing.append(f"{dotted} ({type(exc).__name__}: {exc})")
                continue
            inner = _innermost(obj)
            where = None
            if isinstance(inner, types.FunctionType):
                c = inner.__code__
                where = (c.co_filename, c.co_firstlineno, c.co_name)
            self.found[dotted] = (obj, owner, attr, where)
        return missing

    def hide(self, exercise: str, names, namespace: dict) -> list[str]:
        self.restore()
        missing = self.prepare([n for n in names if n not in self.found])
        self.exercise, files, wheres, messages = exercise, set(), set(), {}
        for dotted in names:
            if dotted not in self.found:
                continue
            obj, owner, attr, where = self.found[dotted]
            messages[dotted] = (f"{dotted} is the library's answer to exercise {exercise}: it is unavailable while "
                                f"{exercise} is graded, and calling it earns no credit for {exercise}. Compute it yourself.")
            self._replace_references(obj, self._stub(dotted, messages[dotted]), owner, attr, namespace)
            if where is not None:
                files.add(os.path.realpath(where[0]))
                wheres.add(where)
        if wheres:
            self._swap_code(wheres, {w: d for d, (_, _, _, w) in self.found.items() if d in messages and w}, messages)
        self.files, self.codes = frozenset(files), frozenset(wheres)
        return missing

    def _stub(self, dotted: str, message: str):
        hits = self.hits

        def hidden_answer(*args, **kwargs):
            hits.append(dotted)
            raise AnswerHidden(message)

        hidden_answer.__name__ = hidden_answer.__qualname__ = dotted.rsplit(".", 1)[-1]
        return hidden_answer

    def _replace_references(self, obj, stub, owner, attr, namespace):
        containers = [namespace]
        if type(owner) is types.ModuleType:
            containers.append(owner.__dict__)
        else:
            try:
                setattr(owner, attr, stub)
                self._undo.append(("attr", owner, attr, getattr(owner, "__dict__", {}).get(attr, obj)))
            except (AttributeError, TypeError):
                pass
        for name, mod in list(sys.modules.items()):
            if type(mod) is types.ModuleType and mod is not owner and (name == "course_lib" or name.startswith("course_lib.")):
                containers.append(mod.__dict__)
        for d in containers:
            try:
                for k, v in list(d.items()):
                    if v is obj:
                        d[k] = stub
                        self._undo.append(("item", d, k, obj))
            except Exception:  # noqa: BLE001 - a container the submission broke: the code swap still applies
                continue

    def _swap_code(self, wheres: set, key_of: dict, messages: dict):
        hits = self.hits

        def make(key):
            hits.append(key)
            return AnswerHidden(messages[key])

        function = types.FunctionType
        for obj in gc.get_objects():
            if type(obj) is not function:  # type(), not isinstance(): never runs a __class__ the submission defined
                continue
            c = obj.__code__
            where = (c.co_filename, c.co_firstlineno, c.co_name)
            if where not in wheres:
                continue
            stub = _stub_code(obj, key_of[where])
            if stub is None:
                continue
            g = obj.__globals__
            if g.get(_GLOBAL) is not make:
                self._undo.append(("item", g, _GLOBAL, g.get(_GLOBAL, _MISSING)))
                g[_GLOBAL] = make
            self._undo.append(("code", obj, "__code__", c))
            obj.__code__ = stub

    def restore(self) -> None:
        for kind, target, key, value in reversed(self._undo):
            if kind == "attr":
                setattr(target, key, value)
            elif kind == "code":
                target.__code__ = value
            elif value is _MISSING:
                target.pop(key, None)
            else:
                target[key] = value
        self._undo.clear()
        self.files = self.codes = frozenset()
        self.exercise = ""


_MISSING = object()
HIDER = Hider()


# ----------------------------------------------------------------------------------------------
# the worker
# ----------------------------------------------------------------------------------------------
def main() -> None:
    fd = int(sys.argv[1])
    scratch = os.getcwd()
    memory_mb, cpu_s = int(os.environ.get("COURSE_GRADE_MEMORY_MB", "3000")), int(os.environ.get("COURSE_GRADE_CPU_S", "120"))
    answers = [n for n in os.environ.get("COURSE_GRADE_ANSWERS", "").split(",") if n]
    try:
        torch.set_num_threads(1)  # several workers share the cores; oversubscribed OpenMP threads crawl
        import matplotlib

        matplotlib.use("Agg")
        for name in PRELOAD:  # what notebooks commonly import, while the whole installation is readable
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - a missing optional module is the notebook's concern
                pass
        unresolved = HIDER.prepare(answers)  # imports the modules holding the answers, before the lock-down
        baseline = address_space_mb()
        applied, notes = _lock_down(scratch, memory_mb, cpu_s)
        notes += _unreadable_installation()
    except BaseException as exc:  # noqa: BLE001 - the grader's own failure: say it, never blame the student
        _send(fd, {"op": "setup_failed", "error": f"{type(exc).__name__}: {exc}"[:500]})
        os._exit(70)
    _send(fd, {"op": "ready", "baseline_mb": baseline, "limits": {k: (list(v) if v else None) for k, v in applied.items()},
               "notes": notes, "unresolved": unresolved})
    # from here on the student's code runs: its output goes nowhere (the grader read our start-up errors)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    ns: dict = {"__name__": "__main__"}
    while True:
        msg = _recv(fd)
        if msg is None or msg.get("op") == "exit":
            os._exit(0)
        if msg["op"] == "load":
            late = HIDER.prepare([n for n in msg.get("answers", []) if n not in HIDER.found and n not in answers])
            errors = []
            labels = msg.get("labels") or list(range(1, len(msg["cells"]) + 1))
            for label, src in zip(labels, msg["cells"]):
                _send(fd, {"op": "cell", "label": label})  # which cell a fault happens in
                try:
                    exec(compile(src, f"<cell {label}>", "exec"), ns)  # noqa: S102 - sandboxed student code
                except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt included
                    errors.append({"cell": label, "error": f"{type(exc).__name__}: {exc}"[:300]})
            _send(fd, {"op": "cell", "label": None})
            names = [k for k, v in ns.items() if callable(v) and not k.startswith("__")]
            _send(fd, {"ok": True, "cell_errors": errors, "functions": names, "unresolved": late})
        elif msg["op"] == "exercise":
            HIDER.restore()
            try:
                missing = HIDER.hide(msg.get("id", ""), msg.get("hide", []), ns)
            except BaseException as exc:  # noqa: BLE001 - the submission may have broken the library itself
                HIDER.restore()
                missing = [f"{type(exc).__name__}: {exc}"[:300]]
            _send(fd, {"ok": not missing, "missing": missing})
        elif msg["op"] == "call":
            fn = ns.get(msg["name"])
            del HIDER.hits[:]
            try:
                if not callable(fn):
                    raise NameError(f"function {msg['name']!r} is not defined in the notebook")
                value = fn(*msg["args"], **msg["kwargs"])
                _send(fd, {"ok": True, "value": value, "hidden_hits": sorted(set(HIDER.hits))})
            except codec.CodecError as exc:
                _send(fd, {"ok": False, "kind": "error", "error": f"the returned value cannot be graded: {exc}",
                           "hidden_hits": sorted(set(HIDER.hits))})
            except NotImplementedError as exc:
                _send(fd, {"ok": False, "kind": "not_implemented", "error": str(exc)[:300]})
            except BaseException as exc:  # noqa: BLE001
                hits = sorted(set(HIDER.hits))
                _send(fd, {"ok": False, "kind": "answer_hidden" if hits else "error", "exc_type": type(exc).__name__,
                           "error": f"{type(exc).__name__}: {exc}"[:500], "hidden_hits": hits})


if __name__ == "__main__":
    main()
