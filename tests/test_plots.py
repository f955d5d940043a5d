import numpy as np

from course_lib import plots


def test_pow10_labels_are_plain_unicode():
    # powers of ten outside 0.01..9000 in unicode; 2 and 5 x 10^k too (the ticks of axes spanning < 2 decades)
    vals = (1e-4, 1.0, 10.0, 1e2, 0.5, 0.0, 2e-5, 5e6, 0.02, 3000.0)
    assert [plots._pow10_label(v) for v in vals] == ["10⁻⁴", "1", "10", "100", "0.5", "", "2×10⁻⁵", "5×10⁶", "0.02",
                                                     "3000"]
    # ticks placed at counts (widths 16 .. 16384) read as the numbers themselves, not "1.02e+03"
    assert [plots._pow10_label(v) for v in (16.0, 1024.0, 16384.0, 1500.0, 0.15)] == ["16", "1024", "16384", "1500",
                                                                                       "0.15"]


def test_short_log_axes_keep_labelled_ticks():
    """An axis spanning under two decades gets 1, 2, 5 x 10^k ticks, each labelled (COURSE_DESIGN.md section 8)."""
    fig, (ax,) = plots.new_figure(1)
    ax.plot([1, 2], [0.03, 0.4])
    ax.set_yscale("log")
    ax.set_ylim(0.03, 0.4)
    plots.to_png(fig)
    ticks = [t for t in ax.yaxis.get_majorticklocs() if 0.03 <= t <= 0.4]
    labels = [ax.yaxis.get_major_formatter()(t) for t in ticks]
    assert len(ticks) >= 3 and all(labels), (ticks, labels)


def test_fast_log_axes_drops_minor_ticks_and_renders():
    fig, (ax,) = plots.new_figure(1)
    plots.plot_curves(ax, np.arange(50), np.exp(-np.arange(50.0))[:, None])
    png = plots.to_png(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(ax.yaxis.get_minor_locator()()) == 0
    assert ax.yaxis.get_major_formatter()(1e-3) == "10⁻³"
