"""Figures checked by their artists: lines, bands, labels, titles; files written per grid."""

import itertools

import matplotlib.collections as mcoll
import numpy as np
import pandas as pd
import pytest

from study import analysis, cli, plots
from study.results import figures_complete, read_runs, read_summary
from tests.helpers import synthetic_runs, write_results_folder


def _grid_runs(n=60):
    runs = synthetic_runs(
        0.3,
        0.2,
        n=n,
        depth=1,
        **{
            "data.offset": [0.0, 2.0],
            "model.init_range": [0.05, 0.5],
            "model.activation": ["relu", "leaky_relu"],
        },
    )
    runs["train.steps"], runs["train.log_every"] = 100, 10
    return runs


@pytest.fixture
def results(tmp_path):
    return write_results_folder(tmp_path, _grid_runs())


def test_proportion_figure_artists():
    summary = analysis.summarize(_grid_runs())
    summary = summary[summary["model.init_range"] == 0.05]
    fig = plots.plot_proportion_vs(summary, "data.offset")
    top, bottom = fig.axes[0], fig.axes[1]
    assert top.get_ylabel() == "P(network dead) at init"
    assert bottom.get_xlabel() == plots.label("data.offset")
    labels = [line.get_label() for line in top.get_lines()]
    assert "relu" in labels and "leaky_relu" in labels and "closed form" in labels
    relu = next(line for line in top.get_lines() if line.get_label() == "relu")
    expected = summary[summary["model.activation"] == "relu"].sort_values("data.offset")
    np.testing.assert_allclose(relu.get_ydata(), expected["p_dead_init"])
    assert sum(isinstance(c, mcoll.PolyCollection) for c in top.collections) == 2  # bands
    assert "n = 60 initializations" in fig._suptitle.get_text()
    # grayscale: every series differs in marker and line style, not only colour
    series = [line for line in top.get_lines() if line.get_label() in ("relu", "leaky_relu")]
    assert len({line.get_marker() for line in series}) == 2
    assert len({str(line.get_linestyle()) for line in series}) == 2


def test_born_dead_figure_has_theory_lines():
    runs = pd.concat(
        [
            synthetic_runs(0.2, 0.2, n=50, depth=d, seed=d, **{"model.width": [2, 3]})
            for d in (1, 2, 3)
        ],
        ignore_index=True,
    )
    summary = analysis.summarize(runs)
    fig = plots.plot_born_dead_vs_depth(summary)
    ax = fig.axes[0]
    assert ax.get_xlabel() == plots.label("model.depth")
    ray = [line for line in ax.get_lines() if "one ray" in line.get_label()]
    assert len(ray) == 2
    np.testing.assert_allclose(ray[0].get_ydata(), [1 - (1 - 2**-2) ** d for d in (1, 2, 3)])


def test_bounds_drawn_as_a_hatched_band():
    """Where only bounds exist, the top row has a hatched band exactly between them."""
    centered = np.random.default_rng(3).uniform(-1, 1, (64, 2))
    runs = synthetic_runs(0.02, 0.2, n=60, depth=2, **{"data.offset": [0.0, 0.5]})
    runs["model.width"] = 4
    summary = analysis.summarize(runs, inputs=lambda values: centered)
    fig = plots.plot_proportion_vs(summary, "data.offset")
    bands = [c for c in fig.axes[0].collections if c.get_label() == plots.BOUNDS_LABEL]
    assert len(bands) == 1 and bands[0].get_hatch() == "///"
    ys = bands[0].get_paths()[0].vertices[:, 1]
    np.testing.assert_allclose([ys.min(), ys.max()], [2.0**-16, 2.0**-4])
    assert not [c for c in fig.axes[1].collections if c.get_label() == plots.BOUNDS_LABEL]


def test_heatmap_values():
    summary = analysis.summarize(_grid_runs())
    summary = summary[summary["model.activation"] == "relu"]
    fig = plots.plot_heatmap(summary, col=None)
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == sorted(f"{v:.2f}" for v in summary["p_dead_end"])


def test_survival_figure():
    curves = analysis.survival(_grid_runs(), ["model.activation"])
    fig = plots.plot_survival(curves, hue="model.activation")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "training step"
    assert {line.get_label() for line in ax.get_lines()} == {"relu", "leaky_relu"}


def test_plot_results_writes_png_and_pdf(results):
    paths = plots.plot_results(results)
    names = {p.name for p in paths}
    for stem in (
        "p_dead_vs_offset__init_range-0.05",
        "p_dead_vs_init_range__offset-0",
        "heatmap",
        "survival__init_range-0.05",
    ):
        assert f"{stem}.png" in names and f"{stem}.pdf" in names, stem
    assert not any(n.startswith("born_dead") for n in names)  # one depth only
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)


def test_plot_main(results, capsys):
    assert cli.main(["plot", str(results)]) == 0
    assert "figures" in capsys.readouterr().out


def _layout_figure(kind: str):
    summary = analysis.summarize(_grid_runs())
    if kind == "proportion":
        return plots.plot_proportion_vs(summary, "model.init_range", fixed={"offset": 0.0})
    if kind == "heatmap":
        return plots.plot_heatmap(summary)
    if kind == "survival":
        curves = analysis.survival(_grid_runs(), ["model.activation", "data.offset"])
        return plots.plot_survival(curves, hue="model.activation", col="data.offset")
    runs = [synthetic_runs(0.2, 0.2, n=50, depth=d, **{"model.width": [2, 3]}) for d in (1, 2, 3)]
    return plots.plot_born_dead_vs_depth(analysis.summarize(pd.concat(runs, ignore_index=True)))


@pytest.mark.parametrize("kind", ["proportion", "heatmap", "survival", "born_dead"])
def test_fixed_layout_keeps_panels_labels_titles_and_legend_apart(kind):
    """Without tight_layout: no panel, with its tick and axis labels, reaches into the frame of
    the panel beside it; the suptitle is above every panel and panel title; the legend is right
    of every panel."""
    fig = _layout_figure(kind)
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    frames = [ax.get_window_extent(renderer) for ax in panels]
    for (a, frame_a), (b, frame_b) in itertools.combinations(zip(panels, frames, strict=True), 2):
        assert not frame_a.overlaps(frame_b)
        for ax, other in ((a, frame_b), (b, frame_a)):
            labelled = ax.get_tightbbox(renderer, bbox_extra_artists=[])
            assert not labelled.overlaps(other), kind
    title = fig._suptitle.get_window_extent(renderer)
    titles = [ax.title.get_window_extent(renderer) for ax in panels if ax.get_title()]
    assert all(title.y0 >= box.y1 for box in frames + titles)
    for ax in panels:
        if ax.get_legend() is not None:
            legend = ax.get_legend().get_window_extent(renderer)
            assert all(legend.x0 >= frame.x1 for frame in frames)


def test_figures_drawn_in_two_processes_are_the_same_files(results):
    """A helper process draws every other figure: all files written, listed in the manifest."""
    plans = plots.figure_plans(read_summary(results), read_runs(results))
    paths = plots.plot_results(results, formats=("png",), processes=2)
    expected = sorted(f"{plan.stem}.png" for plan in plans)
    assert len(expected) > 2 and sorted(p.name for p in paths) == expected
    assert sorted(p.name for p in (results / "figures").iterdir()) == expected
    assert all(p.stat().st_size > 1000 for p in paths) and figures_complete(results)
