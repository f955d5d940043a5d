"""Lesson 3: recovering the teacher under mild over-parameterization (Zhou, Ge & Jin, COLT 2021, arXiv 2102.02410).

Layout (one module per concern; ``from course_lib.lessons import teacher_student as ts`` and
``from course_lib.lessons.teacher_student import f`` give every public name):

* :mod:`.core` -- the science: closed-form population loss and gradient, teachers, local and random starts,
  population GD (with the per-step drift of a_j^2 - ||w_j||^2), the stability limit, settling/oscillation,
  measurements (cosines, angles via :func:`course_lib.kernels.angles`, masses, slopes, the Hessian) and the two
  predictions for a run: GD linearized at its limit from its own error, and the t^-3 law from its own late state;
* :mod:`.rates` -- experiment 3.1, linear (n = m) vs polynomial (n > m) convergence;
* :mod:`.alignment` -- experiment 3.2, the students in the plane (d = 2): those that keep weight align;
* :mod:`.masses` -- experiment 3.3, cluster masses and the conserved a_j^2 - ||w_j||^2;
* :mod:`.random_start` -- experiment 3.4, beyond the theorem: a random small start.

``EXPERIMENTS`` lists them in notebook order; each is a :class:`course_lib.experiment.Experiment` (run, figure,
claims, numbers, state panel for the time control).
"""
from __future__ import annotations

import numpy as np

from . import alignment, core, masses, random_start, rates  # noqa: F401
from .core import (  # noqa: F401
    FLOOR,
    KEEP,
    MAX_LOSS,
    angle_matrix,
    balance,
    cluster_mass,
    cosine_matrix,
    flatten,
    gradient_descent,
    group_of,
    hessian,
    linear_window,
    linearized_prediction,
    local_init,
    loglog_slope,
    loss_and_grad,
    make_teacher,
    nonzero_modes,
    power_law_prediction,
    predicted_linear_rate,
    random_init,
    reference_loss,
    semilog_rate,
    settling,
    stability_limit,
    teacher_mass,
)
from .core import masses as neuron_masses  # noqa: F401
from .rates import DEFAULTS, experiment  # noqa: F401

RATES = rates.EXPERIMENT
ALIGNMENT = alignment.EXPERIMENT
MASSES = masses.EXPERIMENT
RANDOM_START = random_start.EXPERIMENT
EXPERIMENTS = (RATES, ALIGNMENT, MASSES, RANDOM_START)

alignment_experiment = alignment.experiment
random_start_experiment = random_start.experiment
key_numbers = rates.numbers


def mass_experiment(m: int = masses.FIXED["m"], factor: int = masses.DEFAULTS["factor"], d: int = masses.FIXED["d"],
                    *, noise: float = masses.FIXED["noise"], lr: float | None = None,
                    lr_fraction: float = masses.DEFAULTS["lr_fraction"], steps: int = masses.DEFAULTS["steps"],
                    seed: int = masses.DEFAULTS["seed"], norm_noise: float = masses.FIXED["norm_noise"], device=None,
                    live=None) -> dict:
    """Experiment 3.3 with the argument order of the earlier lesson module (m, factor, d)."""
    return masses.experiment(factor, m=m, d=d, noise=noise, norm_noise=norm_noise, lr_fraction=lr_fraction, lr=lr,
                             steps=steps, seed=seed, device=device, live=live)


def mass_numbers(res: dict) -> dict:
    """Masses at the start and end, the teacher's, and the drift of a_j^2 - ||w_j||^2 (plain numbers)."""
    return masses.mass_numbers_raw(res)


def alignment_numbers(res: dict) -> dict:
    """Final cosine matrix, assignment, cluster masses and the classification of experiment 3.2's students."""
    W = res["run"]["W"][0]
    cos = cosine_matrix(W, res["W_star"])
    return {"m": res["m"], "n": res["n"], "d": res["d"], "init": res["init"],
            "final_loss": float(res["run"]["loss"][-1, 0]), "final_cosine_matrix": np.round(cos, 6).tolist(),
            "assignment": np.argmax(cos, axis=1).tolist(),
            "cluster_mass": cluster_mass(res["run"]["a"][0], W, res["W_star"]).tolist(),
            "teacher_mass": teacher_mass(res["a_star"], res["W_star"]).tolist(),
            "keeps_weight": res["kept"].tolist(), "negative": res["wrong"].tolist()}


def random_numbers(res: dict) -> dict:
    """Success fraction per n / m of experiment 3.4 (plain numbers)."""
    return {"m": res["m"], "ratios": list(res["ratios"]), "seeds": res["seeds"], "steps": res["steps"],
            "threshold_rel_loss": res["threshold"], "success_fraction": res["success"],
            "teacher_signs": res["teacher_signs"], "sign_changes": res["flips"]}


def dashboard(**overrides):
    """Experiment 3.1: teacher m, overlap, start noise, step (x stability limit), steps, seed."""
    return RATES.dashboard(**overrides)


def alignment_dashboard(**overrides):
    """Experiment 3.2: teacher m, student n, start (random/local), noise, scale, steps, seed."""
    return ALIGNMENT.dashboard(**overrides)


def mass_dashboard(**overrides):
    """Experiment 3.3: n / m, step (x stability limit), steps, seed."""
    return MASSES.dashboard(**overrides)


def random_dashboard(**overrides):
    """Experiment 3.4: teacher m, teacher output signs, start scale, steps, seed."""
    return RANDOM_START.dashboard(**overrides)
