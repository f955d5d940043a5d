"""Lesson 1: gradient descent in the kernel regime (Du, Zhai, Poczos & Singh, ICLR 2019, arXiv 1810.02054).

* :mod:`.core`: data, the infinite-width Gram matrix G, metrics, rate fits above the float32 floor;
* :mod:`.gd`: experiment 1.1, GD against each network's own linearization (three widths), the kernel drift
  against lambda_0 / 4, the residual's eigen-directions (time control: the modes as bars);
* :mod:`.widths`: experiment 1.2, movement, drift and ||H(0) - H^inf|| against width and lambda_0 / 4;
* :mod:`.edge`: experiment 1.3, past the stability edge (catapult or divergence).
"""
from .core import (ACTIVATIONS, FIT_FLOOR, LAYERS, MIN_WIDTH, _residual_metric, activation_table, comparison_widths,  # noqa: F401,E501
                   fit_window, gram_metric, late_rate, loglog_slope, mode_groups, neuron_movement, output_kernel,
                   predicted_gram, problem, rate_over, residual)
from .gd import DEFAULTS, EXPERIMENT, claims, dashboard, draw, experiment, numbers, state  # noqa: F401

EXPERIMENTS = (EXPERIMENT,)
from . import widths as _widths  # noqa: E402
from .widths import SWEEP_DEFAULTS, crossing_width, seeds_for, sweep_widths, width_dashboard, width_experiment  # noqa: E402,F401

EXPERIMENTS = (EXPERIMENT, _widths.EXPERIMENT)
from . import edge as _edge  # noqa: E402
from .edge import EDGE_DEFAULTS, edge_dashboard, edge_experiment  # noqa: E402,F401

EXPERIMENTS = (EXPERIMENT, _widths.EXPERIMENT, _edge.EXPERIMENT)
