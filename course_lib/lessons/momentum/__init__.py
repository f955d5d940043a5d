"""Lesson 6 (momentum): heavy ball vs Nesterov on a wide two-layer ReLU net, against the Gram spectrum.

Setting (the course's own, sized so a widget change answers in about a second): n unit-norm inputs (32 points
on the sphere in R^10 with labels from a 3-neuron ReLU teacher, or 40 images of two classes of
scikit-learn's 8x8 digits, centered, unit-normalized, labels +-1), the two-layer net
f(x) = (1/sqrt m) sum_r a_r relu(w_r . x) with a_r = +-1 fixed, the first layer trained full batch on
(1/2)||u - y||^2 by GD, heavy ball (HB) and Nesterov (NAG) with the same step eta and momentum beta.

Prediction (kernel regime): linearized on the Gram matrix H, each eigen-direction's coefficient follows a
two-term recursion whose characteristic polynomial is z^2 - (1 + beta - eta lambda) z + beta (HB) or
z^2 - (1 + beta)(1 - eta lambda) z + beta (1 - eta lambda) (NAG) (:mod:`.core`); the dashed curves evolve
this network's own start through it on its own H(0). Liu et al. (IJCAI 2024) analyse high-resolution ODEs
of HB and NAG and compare upper bounds; the lesson computes the discrete iteration's exact rates instead.

The package: :mod:`.core` (data, the linearized dynamics, rates, tunings, the 2-D quadratic, the
minimum-norm move), :mod:`.network` (experiments 6.1 and 6.5), :mod:`.maps` (6.2), :mod:`.quadratic`
(6.3), :mod:`.width` (6.4). ``EXPERIMENTS`` lists them in notebook order.
"""
from __future__ import annotations

from ...experiment import Experiment, dropdown, real, select
from . import maps, network, quadratic, width
from .core import (
    DATASETS,
    FIT_HI,
    FIT_LO,
    LABELS,
    MAP_BETA,
    MAP_LR,
    METHODS,
    TOLERANCE,
    WIDTHS,
    best_tuning,
    classical_parameters,
    high_resolution_beta,
    linearized_residuals,
    measured_rate,
    min_norm_move,
    mode_coefficients,
    problem,
    quadratic_paths,
    rate_maps,
    stability_limit,
    steps_to_tolerance,
)
from .maps import experiment_map
from .network import DEFAULTS, experiment
from .quadratic import experiment_quadratic
from .width import experiment_width

__all__ = ["DATASETS", "DEFAULTS", "EXPERIMENTS", "FIT_HI", "FIT_LO", "LABELS", "MAP_BETA", "MAP_LR", "METHODS",
           "TOLERANCE", "WIDTHS", "best_tuning", "classical_parameters", "dashboard", "digits_dashboard", "experiment",
           "experiment_map", "experiment_quadratic", "experiment_width", "high_resolution_beta", "linearized_residuals",
           "map_dashboard", "measured_rate", "min_norm_move", "mode_coefficients", "problem", "quadratic_dashboard",
           "quadratic_paths", "rate_maps", "stability_limit", "steps_to_tolerance", "width_dashboard"]


def _network_controls(dataset: str, width_m: int = DEFAULTS["width"]) -> dict:
    return {"lr_fraction": real("step η × λmax(H∞)", DEFAULTS["lr_fraction"], 0.1, 2.0, 0.1),
            "beta": real("momentum β", DEFAULTS["beta"], 0.0, 0.95, 0.05),
            "width": select("width m", width_m, WIDTHS),
            "dataset": dropdown("data", dataset, DATASETS)}


COMPARE = Experiment(
    id="6.1", title="GD, heavy ball and Nesterov on the same network", run=network.experiment, draw=network.draw,
    claims=network.claims_61, controls=_network_controls("sphere"),
    fixed={"steps": DEFAULTS["steps"], "seed": DEFAULTS["seed"]}, numbers=network.numbers, headline=network.headline,
    state=network.state, frames=network.frames, key_steps=network.key_steps, alt=network.alt,
    reproduce={"default": {}, "width64": {"width": 64}, "step1.5": {"lr_fraction": 1.5}},
)

MAP = Experiment(
    id="6.2", title="The predicted rate over (η, β): where Nesterov wins", run=maps.experiment_map, draw=maps.draw,
    claims=maps.claims,
    controls={"lr_fraction": real("step η × λmax(H(0))", maps.DEFAULTS["lr_fraction"], 0.1, 3.0, 0.1),
              "beta": real("momentum β", maps.DEFAULTS["beta"], 0.0, 0.95, 0.05),
              "dataset": dropdown("data", maps.DEFAULTS["dataset"], DATASETS)},
    fixed={"width": maps.DEFAULTS["width"], "steps": maps.DEFAULTS["steps"], "seed": maps.DEFAULTS["seed"]},
    numbers=maps.numbers, headline=maps.headline, state=maps.state, frames=maps.frames, key_steps=maps.key_steps,
    alt=maps.alt,
)

QUADRATIC = Experiment(
    id="6.3", title="The gradient correction on a 2-D quadratic", run=quadratic.experiment_quadratic,
    draw=quadratic.draw, claims=quadratic.claims,
    controls={"lr_fraction": real("step η (λ_stiff = 1)", quadratic.DEFAULTS["lr_fraction"], 0.05, 2.0, 0.05),
              "beta": real("momentum β", quadratic.DEFAULTS["beta"], 0.0, 0.95, 0.05),
              "kappa": real("condition number κ", quadratic.DEFAULTS["kappa"], 2.0, 200.0, 1.0)},
    fixed={"steps": quadratic.DEFAULTS["steps"]}, numbers=quadratic.numbers, headline=quadratic.headline,
    state=quadratic.state, frames=quadratic.frames, key_steps=quadratic.key_steps, alt=quadratic.alt,
    reproduce={"default": {}, "step1.5": {"lr_fraction": 1.5}},
)

WIDTH = Experiment(
    id="6.4", title="Wider networks move their weights less", run=width.experiment_width, draw=width.draw,
    claims=width.claims,
    controls={"beta": real("momentum β", width.DEFAULTS["beta"], 0.0, 0.9, 0.1),
              "dataset": dropdown("data", width.DEFAULTS["dataset"], DATASETS)},
    fixed={"lr_fraction": width.DEFAULTS["lr_fraction"], "steps": width.DEFAULTS["steps"], "seed": width.DEFAULTS["seed"]},
    numbers=width.numbers, headline=width.headline, state=width.state, frames=width.frames, key_steps=width.key_steps,
    alt=width.alt,
)

DIGITS = Experiment(
    id="6.5", title="Real data: two classes of handwritten digits", run=network.experiment, draw=network.draw,
    claims=network.claims_65, controls=_network_controls("digits 3 vs 8", 512),  # 64-dim inputs: width 512 keeps ~1 s
    fixed={"steps": DEFAULTS["steps"], "seed": DEFAULTS["seed"]}, numbers=network.numbers, headline=network.headline,
    state=network.state, frames=network.frames, key_steps=network.key_steps, alt=network.alt,
    reproduce={"default": {}, "digits01": {"dataset": "digits 0 vs 1"}},
    paper={"digits-3v8-wide": {"dataset": "digits 3 vs 8", "width": 2048, "steps": 400},
           "digits-0v1-wide": {"dataset": "digits 0 vs 1", "width": 2048, "steps": 400}},
    paper_note=("the course's closest analogue of Liu et al. (2024)'s validation on benchmark data (the abstract "
                "names three benchmark data sets): a wide two-layer ReLU network on two-class subsets of "
                "scikit-learn's bundled 8x8 digits (offline), GD, heavy ball and Nesterov from the same initialization "
                "at the same (η, β), each against its linearized prediction, for 400 steps"),
)

EXPERIMENTS = (COMPARE, MAP, QUADRATIC, WIDTH, DIGITS)


def dashboard(dataset: str = "sphere", width: int = DEFAULTS["width"], **overrides):
    """Experiment 6.1's dashboard: step (fraction of 1/lambda_max), momentum, width, data set."""
    return COMPARE.dashboard(dataset=dataset, width=width, **overrides)


def digits_dashboard(**overrides):
    """Experiment 6.5's dashboard (the same controls, on the digits)."""
    return DIGITS.dashboard(**overrides)


def map_dashboard(**overrides):
    """Experiment 6.2's dashboard: the chosen (eta, beta) and the data set."""
    return MAP.dashboard(**overrides)


def quadratic_dashboard(**overrides):
    """Experiment 6.3's dashboard: step, momentum, condition number."""
    return QUADRATIC.dashboard(**overrides)


def width_dashboard(**overrides):
    """Experiment 6.4's dashboard: momentum and data set."""
    return WIDTH.dashboard(**overrides)
