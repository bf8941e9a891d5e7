"""The figures' fixed layout, in inches: margins and gaps placed without ``tight_layout``.

:func:`fixed_layout` places a figure's panels at margins and gaps measured once with
``tight_layout`` for these figures (the ``*_IN`` constants), grown only by what varies: the lines
of the suptitle and of the axis labels, y tick labels wider than "0.0", and the legend. Only
those texts are measured (by their font, not drawn), so a figure is laid out without a drawing
pass of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import numpy as np

if TYPE_CHECKING:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

# The fixed layout of the figures, in inches (what tight_layout found for them, measured once).
LEFT_IN, BOTTOM_IN = 0.7, 0.62  # tick labels and axis label
GAP_IN = 0.23  # between panels that share their axes
HEATMAP_GAP_IN = 0.42  # between heatmap panels, which each have tick labels
MARGIN_IN = 0.2  # right of the last panel, or of its legend
COLORBAR_MARGIN_IN = 0.4  # right of a heatmap's color bar: its tick labels and label
SUPTITLE_Y_IN = 0.02  # matplotlib's suptitle is at 0.98 of the figure's height
TITLE_LINE_IN = 0.22  # a line of the suptitle (12.7 pt x 1.2)
TITLE_PAD_IN = 0.16  # between the suptitle and the panels
PANEL_TITLE_IN = 0.24  # a panel's title and its pad
EDGE_PAD_IN = 0.05  # the least space between a legend or the suptitle and the canvas's edge
AXIS_LABEL_LINE_IN = 0.18  # a line of an axis label after its first (10.6 pt x 1.2)
TICK_LABEL_IN = 0.2  # the width of y tick labels that LEFT_IN leaves room for: "0.0" to "1.0"


def fixed_layout(
    fig: Figure,
    axes: np.ndarray,
    *,
    title,
    legend=None,
    gap=GAP_IN,
    margin=MARGIN_IN,
    panel_titles=True,
) -> None:
    """Place the panels ``axes`` (rows x columns) at fixed margins and gaps, in inches.

    Used instead of ``tight_layout``, which measures every label of the figure in a pass of its
    own, and of saving with ``bbox_inches="tight"``, which draws the figure twice: the margins are
    those tight_layout found for these figures. The saved file is the canvas, not cropped, so
    the margins follow what varies: the top one grows with the lines of the suptitle ``title``,
    and the figure widens (equally on both sides) for a line of it wider than the figure; the
    left and bottom ones grow with the lines of the axis labels, and the left one with y tick
    labels wider than "0.0"; the right one is the width of the legend, and a legend that hangs
    below the figure makes it taller. Only these texts are measured (by their font, not drawn).
    """
    # figures are drawn on the Agg canvas (cli and plot_results choose it), which measures text
    renderer = cast("FigureCanvasAgg", fig.canvas).get_renderer()
    width, height = fig.get_size_inches()
    side = max(_inches(title, renderer).width + 2 * EDGE_PAD_IN - width, 0) / 2
    if side:
        fig.set_size_inches(width + 2 * side, height)
    left = LEFT_IN + side + _extra_lines([ax.get_ylabel() for ax in axes[:, 0]])
    bottom = BOTTOM_IN + _extra_lines([ax.get_xlabel() for ax in axes[-1]])
    right = margin + side + (_inches(legend, renderer).width if legend is not None else 0)
    lines = title.get_text().count("\n") + 1
    top = lines * TITLE_LINE_IN + TITLE_PAD_IN + (PANEL_TITLE_IN if panel_titles else 0)
    _place(fig, axes.shape, gap, left=left, bottom=bottom, right=right, top=top)
    # the y ticks are those of the panels' final height (their number, so their decimals, follow)
    wider = max(_widest_y_tick(ax, renderer) for ax in axes[:, 0]) - TICK_LABEL_IN
    if wider > 0:
        left += wider
        _place(fig, axes.shape, gap, left=left, bottom=bottom, right=right, top=top)
    below = EDGE_PAD_IN - _inches(legend, renderer).y0 if legend is not None else 0
    if below > 0:  # the legend hangs from its panel's top: a taller figure lifts its bottom
        width, height = fig.get_size_inches()
        fig.set_size_inches(width, height + below)
        _place(fig, axes.shape, gap, left=left, bottom=bottom, right=right, top=top)


def _place(fig: Figure, shape, gap, *, left, bottom, right, top) -> None:
    """``subplots_adjust`` in inches; ``top`` is below the suptitle (at 0.98 of the height)."""
    width, height = fig.get_size_inches()
    rows, cols = shape
    top += SUPTITLE_Y_IN * height
    panel_width = (width - left - right - (cols - 1) * gap) / cols
    panel_height = (height - top - bottom - (rows - 1) * GAP_IN) / rows
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        bottom=bottom / height,
        top=1 - top / height,
        wspace=gap / panel_width,
        hspace=GAP_IN / panel_height,
    )


def _inches(artist, renderer):
    """An artist's extent on the canvas, in inches."""
    return artist.get_window_extent(renderer).transformed(artist.figure.dpi_scale_trans.inverted())


def _extra_lines(labels: list[str]) -> float:
    """The room (inches) that axis labels on more than one line take beyond the first."""
    return max(label.count("\n") for label in labels) * AXIS_LABEL_LINE_IN


def _widest_y_tick(ax, renderer) -> float:
    """The width (inches) of ``ax``'s widest y tick label within its limits."""
    low, high = sorted(ax.get_ylim())
    shown = [
        label
        for label in ax.get_yticklabels()
        if label.get_text() and low <= label.get_position()[1] <= high
    ]
    return max((_inches(label, renderer).width for label in shown), default=0.0)
