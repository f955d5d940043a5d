"""One module per lesson: its science (data, experiment, figure, claims), declared as
:class:`course_lib.experiment.Experiment` s in the module's ``EXPERIMENTS``.

The notebooks in ``lessons/`` call these; the dashboards, ``python -m course_lib reproduce``, the static
site and the tests drive the same experiments, so what the learner sees is what is tested.
"""
from __future__ import annotations

import importlib

# lesson number -> (module, title)
LESSONS: dict[str, tuple[str, str]] = {
    "0": ("course_lib.lessons.tour", "Tour: a first teacher-student run"),
    "1": ("course_lib.lessons.kernel_regime", "Gradient descent in the kernel regime (Du et al. 2019)"),
    "2": ("course_lib.lessons.identity_mapping", "Identity mapping and the two phases of SGD (Li & Yuan 2017)"),
    "3": ("course_lib.lessons.teacher_student", "Recovering the teacher: mild over-parameterization (Zhou, Ge & Jin 2021)"),
    "4": ("course_lib.lessons.activation_gram", "Activation and the Gram eigenvalue (Panigrahi, Shetty & Goyal 2020)"),
    "5": ("course_lib.lessons.deep_widths", "How wide must a deep ReLU network be (Nguyen 2021)"),
    "6": ("course_lib.lessons.momentum", "Momentum: heavy ball vs Nesterov (Liu et al. 2024)"),
}


def module(lesson) -> object:
    """The module of lesson ``lesson`` ("0" .. "6")."""
    lesson = str(lesson)
    if lesson not in LESSONS:
        raise ValueError(f"lesson must be one of {sorted(LESSONS)}; got {lesson!r}")
    return importlib.import_module(LESSONS[lesson][0])


def experiments(lesson) -> tuple:
    """The experiments of lesson ``lesson`` (empty for a lesson not yet on the protocol)."""
    from ..experiment import Experiment

    found = getattr(module(lesson), "EXPERIMENTS", ())
    return tuple(e for e in (found.values() if isinstance(found, dict) else found) if isinstance(e, Experiment))


def all_experiments() -> tuple:
    return tuple(e for k in LESSONS for e in experiments(k))
