"""Lesson 4: how the activation sets the Gram eigenvalue (Panigrahi, Shetty & Goyal, ICLR 2020).

* :mod:`.core`: the closed forms (the G-matrix, exact Hermite coefficients of the kinked activations, the
  course's lower and upper bounds, the dual activation and deep kernels);
* :mod:`.spectra`: experiments 4.1 (Hermite coefficients) and 4.2 (separation);
* :mod:`.dimension`: experiments 4.3 (dimension and n) and 4.5 (polynomial activations);
* :mod:`.training`: experiment 4.4 (training, each net against its own linearized dynamics; time control);
* :mod:`.depth`: experiment 4.6 (depth and the dual activation's slope).

``EXPERIMENTS`` lists them in notebook order; ``dashboard(which)`` opens one (default: training).
"""
from __future__ import annotations

from .core import (ACTIVATIONS, COEFF_FLOOR, DEFAULT_ACTS, FLOOR_REL, KINKED, NUM_COEFFS, SMOOTH_ACTS,  # noqa: F401
                   THEORY_SLOPE, correlation, deep_gram, deep_grams, dual_correlation, dual_slope,
                   empirical_deep_grams, fit_power, floor_of, gram_batch, gram_from_correlation, gram_matrix,
                   kinked_coeffs, lower_bound, parity_slopes, phi_hermite, poly_space_dim, resolved, spectrum,
                   style, upper_bound)
from .depth import DEPTH, depth_experiment, dual_slope_table  # noqa: F401
from .dimension import (DIMENSION, POLYNOMIAL, RANK_TOL, dimension_experiment, polynomial_experiment,  # noqa: F401
                        predicted_poly_rank)
from .spectra import COEFFICIENTS, SEPARATION, coefficients_experiment, separation_experiment  # noqa: F401
from .training import TRAINING, training_experiment  # noqa: F401

EXPERIMENTS = (COEFFICIENTS, SEPARATION, DIMENSION, TRAINING, POLYNOMIAL, DEPTH)
BY_NAME = {"coefficients": COEFFICIENTS, "separation": SEPARATION, "dimension": DIMENSION, "training": TRAINING,
           "polynomial": POLYNOMIAL, "depth": DEPTH}


def _which(which: str):
    if which not in BY_NAME:
        raise ValueError(f"which must be one of {sorted(BY_NAME)}; got {which!r}")
    return BY_NAME[which]


def experiment(which: str = "training", **settings):
    """Run one experiment at its defaults with ``settings`` changed; returns its result dict."""
    return _which(which).execute(**settings).result


def dashboard(which: str = "training", **overrides):
    """The dashboard of one experiment: 'coefficients', 'separation', 'dimension', 'training' (default),
    'polynomial' or 'depth', its controls starting at the defaults with ``overrides``."""
    return _which(which).dashboard(**overrides)
