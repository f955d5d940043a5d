"""Lesson 5: how wide must a deep ReLU network be (Nguyen, ICML 2021, arXiv 2101.09612).

* :mod:`.core`: data, the network (gradient in closed form), lambda_F = sigma_min(F_{L-1}), its large-width
  limit M = s^2 k(F_{L-2}) (per width), degenerate lower layers, the NTK block by block, the guarantee,
  networks of several widths trained as one padded ensemble;
* :mod:`.spectrum`: experiment 5.1, lambda_F at initialization against the last hidden width (inits, depths);
* :mod:`.training`: experiment 5.2, GD on all layers: sigma_min(F_{L-1}(k)) against lambda_F / 2, the kernel
  regime's prediction and the guarantee (time control: the singular values of F_{L-1} at step k);
* :mod:`.step`: experiment 5.3, why a wider last layer can train slower: beta = lambda_max(NTK) grows with the
  width in standard parameterization, the lower layers freeze, lambda_F^2 / beta levels off (time control: the
  loss left at step k against the width);
* :mod:`.search`: experiment 5.4, the paper's widths (N, N^2, N^3, each with its setting) against the smallest
  widths that train, every width tried (time control: the loss left at step k per N).
"""
from . import search, spectrum, step, training
from .core import (  # noqa: F401
                   DATASETS,
                   DEFAULTS,
                   EPS64,
                   INIT_LABELS,
                   INITS,
                   LR_FRACTION,
                   OTHER_OPTIONS,
                   PAPER_ORDERS,
                   SPECTRUM_WIDTHS,
                   WIDE_OPTIONS,
                   ReluNet,
                   correlation,
                   dead_units,
                   degenerate_inputs,
                   guarantee,
                   key_condition_width,
                   lambda_F,
                   layer_std,
                   limit_kernel,
                   make_model,
                   ntk_blocks,
                   ntk_extremes,
                   pad_width,
                   paper_order,
                   predicted_correlation,
                   predicted_lambda_F,
                   problem,
                   sigma_min,
                   silenced_inputs,
                   silenced_text,
                   singular_values,
                   stacked_widths,
                   train_widths,
                   width_groups,
)
from .search import experiment_widths, widths_dashboard  # noqa: F401
from .spectrum import draw_spectrum, experiment_spectrum, spectrum_dashboard  # noqa: F401
from .step import experiment_step, step_dashboard  # noqa: F401
from .training import claims, dashboard, draw, experiment, numbers, state  # noqa: F401

SPECTRUM, TRAINING, STEP, SEARCH = spectrum.EXPERIMENT, training.EXPERIMENT, step.EXPERIMENT, search.EXPERIMENT
EXPERIMENTS = (SPECTRUM, TRAINING, STEP, SEARCH)
