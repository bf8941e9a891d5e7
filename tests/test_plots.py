"""Figures checked by their artists: lines, bands, labels, titles; files written per grid."""

import itertools
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.collections as mcoll
import numpy as np
import pandas as pd
import pytest

from study import analysis, cli, figure_layout, plots, predictors
from study.config import SETTING_KEYS
from study.figure_drawing import cell_text, plot_auroc
from study.host import cache_root
from study.results import (
    SUMMARY,
    FigureCache,
    ResultsFolder,
    cache_names,
    read_runs,
    read_summary,
    write_csv,
)
from tests.helpers import ROOT, synthetic_runs, write_results_folder


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


@pytest.fixture
def three_figures(tmp_path):
    """A results folder of three figures (offsets 0 and 2 at depths 1 and 2: the proportions
    against the offset, the survival curves of each depth), for the tests of how figures are
    drawn and cached, which need several figures but not the 2 x 2 x 2 grid's seven (about
    three times as long to draw as these three)."""
    runs = pd.concat(
        [
            synthetic_runs(0.3, 0.2, n=60, depth=d, seed=d, **{"data.offset": [0.0, 2.0]})
            for d in (1, 2)
        ],
        ignore_index=True,
    )
    runs["train.steps"], runs["train.log_every"] = 100, 10
    return write_results_folder(tmp_path, runs)


def test_proportion_figure_artists():
    summary = analysis.summarize(_grid_runs())
    summary = summary[summary["model.init_range"] == 0.05]
    fig = plots.plot_proportion_vs(summary, "data.offset")
    top, bottom = fig.axes[0], fig.axes[1]
    assert top.get_ylabel() == "P(network dead) at init"
    assert bottom.get_xlabel() == plots.label("data.offset")
    labels = [line.get_label() for line in top.get_lines()]
    # readable names (issue 27): "leaky ReLU", not the config's leaky_relu
    assert "ReLU" in labels and "leaky ReLU" in labels and "closed form" in labels
    relu = next(line for line in top.get_lines() if line.get_label() == "ReLU")
    expected = summary[summary["model.activation"] == "relu"].sort_values("data.offset")
    np.testing.assert_allclose(relu.get_ydata(), expected["p_dead_init"])
    assert sum(isinstance(c, mcoll.PolyCollection) for c in top.collections) == 2  # bands
    assert "n = 60 initializations" in fig._suptitle.get_text()
    # grayscale: every series differs in marker and line style, not only colour
    series = [line for line in top.get_lines() if line.get_label() in ("ReLU", "leaky ReLU")]
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
    assert texts == sorted(cell_text(v) for v in summary["p_dead_end"])


def test_small_values_keep_their_digits_and_zoom_the_axis():
    """0.004 is written "0.004", not "0.00"; P(dead) of at most a few percent is drawn on a
    zoomed axis that the title names, not flattened on [0, 1]."""
    assert [cell_text(v) for v in (0.0, 0.004, 0.0125, 0.5)] == ["0", "0.004", "0.01", "0.50"]
    runs = synthetic_runs(0.01, 0.03, n=2000, **{"data.offset": [0.0, 2.0]})
    summary = analysis.summarize(runs)
    fig = plots.plot_proportion_vs(summary, "data.offset")
    top = fig.axes[0].get_ylim()[1]
    assert 1.02 * summary["p_dead_end_hi"].max() < top <= 1.02 * 0.1
    assert "zoomed" in fig.texts[0].get_text()


def test_survival_figure():
    curves = analysis.survival(_grid_runs(), ["model.activation"])
    fig = plots.plot_survival(curves, hue="model.activation")
    survival, hazard = fig.axes[:2]
    assert hazard.get_xlabel() == "training step"
    for ax in (survival, hazard):
        assert {line.get_label() for line in ax.get_lines()} == {"ReLU", "leaky ReLU"}
        assert ax.get_xscale() == "symlog"  # the deaths of the first logged steps spread out
    assert survival.get_ylim()[0] == pytest.approx(-0.02)  # this grid's curves reach below 1/2


def test_survival_axis_zooms_on_curves_that_stay_high():
    """Survival between 0.9 and 1 is drawn on [0.85, 1], not flattened on [0, 1]; the hazard
    row shows the deaths per step of the interval before each check."""
    runs = synthetic_runs(0.0, 0.0, n=1000, **{"model.activation": ["relu"]})
    runs["train.steps"], runs["train.log_every"] = 30, 10
    runs["death_step"] = np.where(np.arange(1000) < 80, 10, -1)  # 8% die by step 10
    curves = analysis.survival(runs, ["model.activation"])
    fig = plots.plot_survival(curves, hue="model.activation")
    survival, hazard = fig.axes[:2]
    assert survival.get_ylim()[0] == pytest.approx(0.85)
    assert curves["hazard"].tolist()[1] == pytest.approx(0.008)  # 80 of 1000 over 10 steps
    assert curves["hazard"].tolist()[2:] == [0.0, 0.0]


def test_heatmap_leaves_out_a_panel_that_is_zero_by_definition():
    """Leaky ReLU's panel would be 0 in every cell (it cannot die): it is named in the title,
    not drawn; the other panels keep their values."""
    runs = _grid_runs()
    runs.loc[runs["model.activation"] == "leaky_relu", ["dead_init", "dead_end"]] = False
    summary = analysis.summarize(runs)
    fig = plots.plot_heatmap(summary)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["activation = ReLU"]
    assert "not drawn, 0 in every cell: activation = leaky ReLU" in fig._suptitle.get_text()
    alone = plots.plot_heatmap(summary[summary["model.activation"] == "leaky_relu"])
    assert [ax.get_title() for ax in alone.axes if ax.get_title()] == ["activation = leaky ReLU"]


def _plot(folder: Path, **options) -> list[Path]:
    """``plots.plot_results`` of the results folder at ``folder``."""
    return plots.plot_results(ResultsFolder.open(folder), **options)


def test_plot_results_writes_png_and_pdf(results):
    paths = _plot(results)
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


def test_plot_main(three_figures, capsys):
    assert cli.main(["plot", str(three_figures)]) == 0
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


def test_figures_drawn_in_two_processes_are_the_same_files(three_figures):
    """A helper process draws every other figure: all files written, listed in the manifest."""
    plans = plots.figure_plans(read_summary(three_figures), read_runs(three_figures))
    paths = _plot(three_figures, formats=("png",), processes=2)
    expected = sorted(f"{plan.stem}.png" for plan in plans)
    assert len(expected) > 2 and sorted(p.name for p in paths) == expected
    assert sorted(p.name for p in (three_figures / "figures").iterdir()) == expected
    assert all(p.stat().st_size > 1000 for p in paths)
    assert ResultsFolder.open(three_figures).figures_complete()


def _plans_of_every_kind() -> dict[str, plots.FigurePlan]:
    """The first plan of each kind ``figure_plans`` makes, on a grid that has them all: three
    depths, a long init range tick label (0.0005), curves of small errors (long tick labels);
    the AUROC figure of a run with the trainability probe on one of its settings (a plan per
    setting of the whole grid would cost the default suite seconds)."""
    axes = {
        "data.offset": [0.0, 2.0],
        "model.init_range": [0.0005, 0.5],
        "model.activation": ["relu", "leaky_relu"],
    }
    runs = pd.concat(
        [synthetic_runs(0.3, 0.2, n=40, depth=d, seed=d, **axes) for d in (1, 2, 3)],
        ignore_index=True,
    )
    runs["train.steps"], runs["train.log_every"] = 100, 10
    steps = np.arange(0, 101, 10)
    keys = [name for name in SETTING_KEYS if name in runs] + ["init"]
    curves = runs.loc[runs.index.repeat(len(steps)), keys].reset_index(drop=True)
    curves["step"] = np.tile(steps, len(runs))
    rng = np.random.default_rng(0)
    curves["error"] = rng.random(len(curves)) * 0.01
    curves["dead_units_l1"] = rng.integers(0, 3, len(curves))
    plans = {}
    for plan in plots.figure_plans(analysis.summarize(runs), runs, curves):
        plans.setdefault(plan.stem.split("__")[0], plan)
    first = runs[["model.depth", *axes]].iloc[0]  # depth 1, the first level of each axis
    probe = runs[(runs[first.index] == first).all(axis=1)]
    probe = probe.assign(probe_fresh_final_loss=1.0,
                         probe_final_loss=rng.choice([1.0, 2.0], len(probe)))  # fmt: skip
    arguments = dict(table=predictors.auroc_curves(probe, curves), fixed={})
    assert arguments["table"]["auroc"].notna().all()  # a line per metric and outcome
    plans[predictors.FIGURE] = plots.FigurePlan(predictors.FIGURE, plot_auroc, arguments)
    return plans


FIGURE_KINDS = (
    "p_dead_vs_offset",
    "p_dead_vs_init_range",
    "heatmap",
    "born_dead_vs_depth",
    "survival",
    "curves",
    "auroc",
)
# Many settings fixed: a suptitle of three lines, the last wider than the narrowest figure.
LONG_FIXED = {
    "data.offset": 0.5,
    "model.init_range": 0.0005,
    "model.activation": "leaky_relu",
    "train.optimizer": "momentum",
    "train.learning_rate": 0.01,
    "model.bias_scale": 0.05,
    "data.n_samples": 64,
}


@pytest.fixture(scope="module")
def plans_of_every_kind():
    return _plans_of_every_kind()


def _beyond_canvas(fig) -> list[str]:
    """The visible texts, legends and axes (colour bars too, each with its tick and axis labels)
    that reach beyond the figure's canvas by more than a pixel: the saved file is the canvas."""
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    canvas = fig.bbox.padded(1)
    assert fig.get_suptitle() in [text.get_text() for text in fig.texts]
    boxes = [(f"text {text.get_text()!r}", text.get_window_extent(renderer)) for text in fig.texts]
    for ax in fig.axes:
        name = f"axes {ax.get_label() or fig.axes.index(ax)}"
        boxes.append((name, ax.get_window_extent(renderer)))
        boxes.append((f"{name} with its labels", ax.get_tightbbox(renderer)))
        for text in [ax.title, ax.xaxis.label, ax.yaxis.label]:
            boxes.append((f"{name}: {text.get_text()!r}", text.get_window_extent(renderer)))
        for text in ax.texts + ax.get_xticklabels() + ax.get_yticklabels():
            if text.get_visible() and text.get_text() and text.get_in_layout():
                boxes.append((f"{name}: {text.get_text()!r}", text.get_window_extent(renderer)))
        if ax.get_legend() is not None:
            boxes.append((f"{name} legend", ax.get_legend().get_window_extent(renderer)))
    return [
        f"{name}: {np.round(box.extents).tolist()} beyond {canvas.extents.tolist()}"
        for name, box in boxes
        if box.width and not (canvas.contains(box.x0, box.y0) and canvas.contains(box.x1, box.y1))
    ]


@pytest.mark.parametrize("long_title", [False, True], ids=["title", "long_title"])
@pytest.mark.parametrize("kind", FIGURE_KINDS)
def test_nothing_reaches_beyond_the_canvas(plans_of_every_kind, kind, long_title):
    """Files are saved without cropping (no ``bbox_inches="tight"``, which draws every figure
    twice): every text, legend and panel of every kind of figure lies on the canvas, a long
    suptitle too."""
    plan = plans_of_every_kind[kind]
    arguments = {**plan.arguments, "fixed": LONG_FIXED} if long_title else plan.arguments
    fig = plan.draw(**arguments)
    assert not _beyond_canvas(fig)


def test_a_clipping_layout_is_caught(plans_of_every_kind, monkeypatch):
    """The check above fails where a margin is too small (here the left one)."""
    monkeypatch.setattr(figure_layout, "LEFT_IN", 0.1)
    fig = plans_of_every_kind["p_dead_vs_offset"].figure()
    assert any("P(network dead) at init" in problem for problem in _beyond_canvas(fig))


# --------------------------------------------------------------------------------------------
# The figure cache (conftest.py gives each test an empty one).
# --------------------------------------------------------------------------------------------


def _cache_files() -> dict[str, tuple[int, int]]:
    """The figure cache's files: name -> (size, modification time in ns)."""
    folder = cache_root() / "figures"
    if not folder.is_dir():
        return {}
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


def _files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "figures").iterdir())}


def _count_draws(monkeypatch) -> list[str]:
    """The stems of the figures drawn from now on, in this process."""
    drawn = []
    real = plots.FigurePlan.figure

    def figure(plan):
        drawn.append(plan.stem)
        return real(plan)

    monkeypatch.setattr(plots.FigurePlan, "figure", figure)
    return drawn


def test_an_unchanged_figure_is_not_drawn_again(three_figures, monkeypatch):
    """The second time, every figure comes from the cache: nothing is drawn, the same bytes are
    written, the manifest lists them."""
    first = _plot(three_figures)
    before = _files(three_figures)
    assert len(_cache_files()) == len(first) == len(before) > 4
    for path in first:
        path.unlink()

    def not_drawn(plan):
        raise AssertionError(f"{plan.stem} drawn again")

    monkeypatch.setattr(plots.FigurePlan, "figure", not_drawn)
    second = _plot(three_figures)
    assert sorted(second) == sorted(first) and _files(three_figures) == before
    assert ResultsFolder.open(three_figures).figures_complete()


def test_a_changed_value_redraws_only_the_figures_that_show_it(results, monkeypatch):
    _plot(results, formats=("png",))
    before = _files(results)
    summary = read_summary(results)
    row = (
        (summary["data.offset"] == 2.0)
        & (summary["model.init_range"] == 0.5)
        & (summary["model.activation"] == "relu")
    )
    assert row.sum() == 1
    summary.loc[row, "p_dead_end"] = 0.99
    write_csv(results / SUMMARY, summary)
    drawn = _count_draws(monkeypatch)
    _plot(results, formats=("png",))
    expected = {"p_dead_vs_offset__init_range-0.5", "p_dead_vs_init_range__offset-2", "heatmap"}
    assert set(drawn) == expected and len(drawn) == 3  # the survival curves are of the runs
    after = _files(results)
    assert {name for name in after if after[name] != before[name]} == {
        f"{stem}.png" for stem in expected
    }


def test_without_the_cache_every_figure_is_drawn_and_the_cache_left_alone(
    three_figures, monkeypatch
):
    _plot(three_figures, formats=("png",))
    cached = _cache_files()
    drawn = _count_draws(monkeypatch)
    paths = _plot(three_figures, formats=("png",), cache=False)
    assert len(drawn) == len(paths) == len(cached) and _cache_files() == cached


def test_an_unusable_cache_does_not_stop_the_figures(three_figures, monkeypatch, tmp_path):
    """A file where the cache folder should be (as a read-only home would): drawn without it.
    Files in the cache that are not whole figures: drawn again, and replaced."""
    blocked = tmp_path / "not_a_folder"
    blocked.write_text("")
    monkeypatch.setenv("STUDY_CACHE_DIR", str(blocked))
    assert FigureCache.open() is None
    paths = _plot(three_figures, formats=("png",))
    assert paths and all(p.read_bytes().startswith(b"\x89PNG") for p in paths)
    monkeypatch.setenv("STUDY_CACHE_DIR", str(tmp_path / "cache"))
    _plot(three_figures, formats=("png",))
    cache = FigureCache.open().folder
    for i, path in enumerate(sorted(cache.iterdir())):
        path.write_bytes(b"" if i % 2 else path.read_bytes()[:-100])  # empty, or cut short
    drawn = _count_draws(monkeypatch)
    _plot(three_figures, formats=("png",))
    assert len(drawn) == len(paths)
    assert all(FigureCache(cache).get(p.name) for p in cache.iterdir())


def test_the_cache_keeps_the_most_recently_used_figures_within_its_limit(tmp_path):
    for age in range(6):  # a.png is the oldest
        path = tmp_path / f"{'abcdef'[age]}.png"
        path.write_bytes(bytes(100))
        os.utime(path, (1e9 + age, 1e9 + age))
    FigureCache(tmp_path).prune(limit=350)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png", "e.png", "f.png"]
    FigureCache(tmp_path).prune(limit=300)
    assert len(list(tmp_path.iterdir())) == 3


def test_a_figure_served_from_the_cache_counts_as_recently_used(tmp_path):
    png = b"\x89PNG\r\n\x1a\n" + bytes(100) + b"IEND\xaeB`\x82"
    for age, name in enumerate(["old.png", "new.png"]):
        (tmp_path / name).write_bytes(png)
        os.utime(tmp_path / name, (1e9 + age, 1e9 + age))
    assert FigureCache(tmp_path).get("old.png") == png  # used now: the other goes first
    FigureCache(tmp_path).prune(limit=len(png))
    assert [p.name for p in tmp_path.iterdir()] == ["old.png"]


def test_only_the_figures_not_in_the_cache_go_to_a_helper_process(three_figures, monkeypatch):
    plans = plots.figure_plans(read_summary(three_figures), read_runs(three_figures))
    _plot(three_figures, formats=("png",))
    cache = FigureCache.open().folder
    for plan in plans[:2]:
        (cache / cache_names(plan.draw, plan.arguments, ("png",))[0]).unlink()
    shares = []
    real = plots.start_helper

    def start_helper(folder, plans, formats):
        shares.append([plan.stem for plan in plans])
        return real(folder, plans, formats)

    monkeypatch.setattr(plots, "start_helper", start_helper)
    drawn = _count_draws(monkeypatch)
    _plot(three_figures, formats=("png",), processes=len(plans))
    assert drawn + shares[0] == [plan.stem for plan in plans[:2]] and len(shares) == 1


def test_plot_main_without_the_cache(three_figures, capsys):
    assert cli.main(["plot", str(three_figures), "--no-cache"]) == 0
    assert "figures" in capsys.readouterr().out and not _cache_files()


def test_run_main_without_the_cache(monkeypatch):
    """``study run --no-cache``: no figure cache and no compile cache for the run."""
    from study import runner

    seen = {}

    def run_config(config, **arguments):
        seen.update({key: arguments[key] for key in ("figure_cache", "compile_cache")})
        return None, None

    monkeypatch.setattr(runner, "run_config", run_config)
    assert cli.main(["run", "--quiet", "--no-cache"]) == 0
    assert seen == {"figure_cache": False, "compile_cache": False}
    assert cli.main(["run", "--quiet"]) == 0
    assert seen == {"figure_cache": True, "compile_cache": True}


# Draws a results folder's figures in a fresh interpreter and lists the drawing modules loaded.
PLOT_IN_A_FRESH_PROCESS = """
import sys
from study.cli import main
status = main(["plot", sys.argv[1]])
loaded = sorted(m for m in sys.modules if m.partition(".")[0] in ("matplotlib", "seaborn"))
print("exit status", status, "| drawing modules loaded:", loaded[:5])
sys.exit(0 if status == 0 and not loaded else 1)
"""


def test_figures_all_in_the_cache_do_not_import_matplotlib(three_figures):
    """A rerun whose figures all come from the cache skips matplotlib's and seaborn's imports."""
    _plot(three_figures, formats=("png",))
    done = subprocess.run(
        [sys.executable, "-c", PLOT_IN_A_FRESH_PROCESS, str(three_figures)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
