"""Public checks of the exercises, one module per lesson (``lessonN.py`` with ``CHECKS``).

``CHECKS = {"N.k": [check_fn, ...]}`` and ``ANSWERED_BY = {"N.k": ("course_lib.kernels.relu_h_inf", ...)}``: each ``check_fn(fn)`` calls the learner's function on a small
case and raises AssertionError with a plain message (which case, expected vs got, a hint); its
docstring's first line names the case. Hidden tests live outside the package (tests/hidden/) and
never ship to students.
"""
from __future__ import annotations

import importlib
import pkgutil


def public_checks() -> dict:
    """All public checks, {exercise id: [check functions]}, gathered from the lesson modules."""
    registry: dict = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("lesson"):
            module = importlib.import_module(f"{__name__}.{info.name}")
            for key, checks in getattr(module, "CHECKS", {}).items():
                if key in registry:
                    raise RuntimeError(f"exercise {key} has checks in two modules")
                registry[key] = list(checks)
    return registry


def answered_by() -> dict:
    """{exercise id: (dotted names of library functions that ARE the answer)}, from each lesson module's
    ``ANSWERED_BY``. Grading makes these unavailable to a submission while it grades that exercise, and the
    notebook's ``check`` warns a learner whose function is one of them (it would earn nothing when graded)."""
    registry: dict = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("lesson"):
            module = importlib.import_module(f"{__name__}.{info.name}")
            for key, names in getattr(module, "ANSWERED_BY", {}).items():
                registry[key] = tuple(names)
    return registry
