"""Lesson 2: identity mapping and the two phases of SGD (Li & Yuan, NeurIPS 2017, arXiv 1705.09886).

* :mod:`.core`: the network and its closed forms (the population loss through :mod:`course_lib.theory`, the Hessian
  at the teacher), the course's linearized SGD (stable step, noise floor), the training engine :func:`experiment`,
  the measured stages (g fixed, linear regime, the one-point rule) and each run's own linearized prediction;
* :mod:`.views`: what the figures share (the rows' state panel, the distance panel, stage shading);
* :mod:`.seeds`: experiment 2.1, SGD from small random starts (batch size, stable step, label noise);
* :mod:`.phases`: experiment 2.2, the stages of one run and the one-point rule's threshold;
* :mod:`.compare`: experiments 2.3 (identity vs vanilla) and 2.4 (dimension and init scale).
"""
from .compare import COMPARE, SWEEP, compare_dashboard, sweep_dashboard
from .core import (DEFAULTS, DIMS, INITS, LINEAR_TOL, METHODS, PHASE_DEFAULTS, PHASE_RATIO, PopulationObjective,
                   experiment, g_fixed_step, hessian_at_teacher, hessian_modes, initial_weights, kernel_matrix,
                   linear_start, noise_floor, phase_boundary, rates, rotated_start, rows, sgd_stable_step,
                   worst_case_rate)
from .phases import EXPERIMENT as PHASES
from .phases import phase_dashboard
from .seeds import EXPERIMENT as SEEDS
from .seeds import dashboard

EXPERIMENTS = (SEEDS, PHASES, COMPARE, SWEEP)

__all__ = ["COMPARE", "DEFAULTS", "DIMS", "EXPERIMENTS", "INITS", "LINEAR_TOL", "METHODS", "PHASES", "PHASE_DEFAULTS",
           "PHASE_RATIO", "PopulationObjective", "SEEDS", "SWEEP", "compare_dashboard", "dashboard", "experiment",
           "g_fixed_step", "hessian_at_teacher", "hessian_modes", "initial_weights", "kernel_matrix", "linear_start",
           "noise_floor", "phase_boundary", "phase_dashboard", "rates", "rotated_start", "rows", "sgd_stable_step",
           "sweep_dashboard", "worst_case_rate"]
