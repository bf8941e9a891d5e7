"""study report's section "Which metric predicts lost plasticity" (issue 26 item 4): present only
for a run with the trainability probe and metric curves, its numbers those of
analysis.metric_auroc and an independent computation of the outcome and of the earliest step."""

from __future__ import annotations

import numpy as np
import pandas as pd

from study import analysis, cli, plots, predictors, report, results
from study.config import SETTING_KEYS, VARIANT_COLUMN
from tests.helpers import synthetic_runs
from tests.test_report import png

STEPS = (0, 10, 20, 30)
METRICS = ("dormant_units_l1", "effective_rank_l1", "error")


def probe_runs(offsets=(0.0, 2.0), n=120, seed=1) -> pd.DataFrame:
    """Synthetic runs with the probe's columns: about a third fail the probe, some probes
    diverged (an infinite loss, which fails)."""
    runs = synthetic_runs(0.1, 0.3, n=n, seed=seed, **{"data.offset": list(offsets)})
    rng = np.random.default_rng(seed)
    runs["probe_fresh_final_loss"] = rng.lognormal(0.0, 0.2, len(runs))
    factor = rng.choice(
        [1.0, 1.4, 1.6, 2.0, np.inf], size=len(runs), p=[0.5, 0.15, 0.15, 0.15, 0.05]
    )
    runs["probe_final_loss"] = runs["probe_fresh_final_loss"] * factor
    runs["probe_ratio"] = 1.0
    return runs


def probe_curves(runs: pd.DataFrame, seed=2) -> pd.DataFrame:
    """A row per run and logged step: dormant units that follow a loss ratio above 1.3 (not the
    outcome's threshold) more and more closely, an effective rank that is noise, an error that
    follows death."""
    rng = np.random.default_rng(seed)
    keys = [c for c in (VARIANT_COLUMN, *SETTING_KEYS, "init") if c in runs]
    fails = (runs["probe_final_loss"] > 1.3 * runs["probe_fresh_final_loss"]).to_numpy()
    frames = []
    for i, step in enumerate(STEPS):
        frame = runs[keys].assign(step=step)
        frame["dormant_units_l1"] = rng.integers(0, 6, len(runs)) + i * fails
        frame["effective_rank_l1"] = rng.random(len(runs))
        frame["error"] = rng.random(len(runs)) + runs["dead_end"].to_numpy() * i / 8
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def results_folder(path, runs, curves=None):
    """A results folder with ``curves`` and a figure already drawn (no plotting here)."""
    manifest = results.Manifest(config={"name": path.name, "seed": 0})
    path.mkdir(parents=True)
    results.write_results(path, runs, analysis.summarize(runs), manifest, curves)
    (path / "figures").mkdir()
    (path / "figures" / "survival.png").write_bytes(png(4, 2))
    return path


def earliest(steps: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """The first step from which every later interval lies on one side of 0.5 (NaN if none)."""
    for i, step in enumerate(steps):
        if (lo[i:] > 0.5).all() or (hi[i:] < 0.5).all():
            return float(step)
    return np.nan


def expected_rows(curves, runs, outcome: str) -> dict[str, str]:
    """Per metric: the section's cells after the step (networks with and without the outcome,
    the AUROC at the last step, the earliest step), recomputed."""
    valid = runs[~runs["diverged"]]
    final, fresh = valid["probe_final_loss"], valid["probe_fresh_final_loss"]
    events = {
        "fails the probe": (final > analysis.PROBE_FAIL_LOSS_FACTOR * fresh) | np.isinf(final),
        "dead at the end": valid["dead_end"],
    }[outcome]
    table = analysis.metric_auroc(curves, valid, events, list(METRICS))
    cells = {}
    for metric, part in table.groupby("metric"):
        part = part.sort_values("step")
        last = part.iloc[-1]
        first = earliest(*(part[c].to_numpy() for c in ("step", "auroc_lo", "auroc_hi")))
        area = f"{last['auroc']:.3f} [{last['auroc_lo']:.3f}, {last['auroc_hi']:.3f}]"
        assert last["n_with"] == int(events.sum())  # every metric is finite
        first = "none" if np.isnan(first) else str(int(first))
        counts = f"{int(events.sum())} / {int((~events).sum())}"
        cells[metric] = f"{counts} | {area} | {first} |"
    return cells


def test_the_section_has_metric_auroc_numbers_per_setting(tmp_path):
    runs = probe_runs()
    curves = probe_curves(runs)
    folder = results_folder(tmp_path / "probe", runs, curves)
    assert cli.main(["report", str(folder)]) == 0
    md, page = ((folder / name).read_text() for name in ("report.md", "report.html"))
    assert f"## {predictors.TITLE}" in md and f"[{predictors.TITLE}](#" in md
    anchor = report.PREDICTORS_ANCHOR
    assert f'id="{anchor}"' in page and f'href="#{anchor}"' in page
    section = md.split(f"## {predictors.TITLE}")[1]
    sustained = 0
    for offset in (0.0, 2.0):
        own = runs[runs["data.offset"] == offset]
        block = section.split(f"### data.offset = {offset}")[1].split("###")[0]
        for outcome in ("fails the probe", "dead at the end"):
            for metric, cells in expected_rows(curves, own, outcome).items():
                row = f"| {outcome} | {metric} | {STEPS[-1]} | {cells}"
                assert row in block.splitlines(), (row, block)
                assert "<td>" + cells.removesuffix(" |").replace(" | ", "</td><td>") in page
                sustained += not cells.endswith("| none |")
    assert sustained >= 2  # the signal is found, so the earliest step is tested, not only "none"


def test_the_section_is_absent_without_the_probe_or_the_metrics(tmp_path):
    runs = probe_runs(n=40)
    curves = probe_curves(runs)
    without_probe = runs.drop(columns=["probe_final_loss", "probe_fresh_final_loss"])
    for name, (r, c) in {"no_probe": (without_probe, curves), "no_curves": (runs, None)}.items():
        folder = results_folder(tmp_path / name, r, c)
        assert cli.main(["report", str(folder)]) == 0
        for page in ("report.md", "report.html"):
            assert predictors.TITLE not in (folder / page).read_text(), (name, page)
    assert predictors.predictors(runs, curves[["init", "step"]]) is None  # no metric column
    diverged = runs.assign(diverged=True)  # every network left out: no AUROC to show
    assert predictors.predictors(diverged, curves) is None


def test_many_settings_are_pooled_with_a_note():
    runs = probe_runs(offsets=tuple(range(predictors.MAX_GROUPS + 1)), n=30)
    section = predictors.predictors(runs, probe_curves(runs))
    assert [name for name, _ in section.tables] == ["all"]
    assert f"The {predictors.MAX_GROUPS + 1} settings are pooled" in section.note
    table = section.tables[0][1]
    fails = table[(table["outcome"] == "fails the probe") & (table["metric"] == "error")]
    assert fails["with / without"].iloc[0] == (
        f"{int(analysis.fails_probe(runs).sum())} / {int((~analysis.fails_probe(runs)).sum())}"
    )


def test_no_interval_with_a_single_network_on_a_side():
    """One network with the outcome: DeLong's variance is not estimable; the AUROC is shown,
    its interval and the earliest step are not (analysis.auroc would give a point)."""
    runs = probe_runs(offsets=(0.0,), n=40)
    runs["dead_end"] = runs["init"] == 7
    curves = probe_curves(runs)
    rows = predictors.metric_rows(curves, runs, ["error"])
    dead = rows[rows["outcome"] == "dead at the end"].iloc[0]
    valid = runs[~runs["diverged"]]
    area = analysis.metric_auroc(curves, valid, valid["dead_end"], ["error"])["auroc"].iloc[-1]
    assert dead["n_with"] == 1 and dead["auroc"] == area
    assert np.isnan([dead["auroc_lo"], dead["auroc_hi"], dead["first_step"]]).all()
    table = predictors.predictors(runs, curves).tables[0][1]
    cell = table.loc[table["outcome"] == "dead at the end", "AUROC [95% CI]"].iloc[-1]
    assert cell.startswith(f"{area:.3f} [no interval: under {predictors.MIN_PER_SIDE} networks")


def test_fails_probe_is_the_stated_threshold():
    factor = analysis.PROBE_FAIL_LOSS_FACTOR
    fresh = pd.Series([1.0, 1.0, 1.0, 2.0, np.nan])
    final = pd.Series([factor, factor * 1.001, np.inf, np.nan, 1.0])
    frame = pd.DataFrame({"probe_final_loss": final, "probe_fresh_final_loss": fresh})
    assert analysis.fails_probe(frame).tolist() == [False, True, True, True, False]


def test_the_auroc_figures_are_planned_per_setting_and_shown_in_the_section():
    """A figure per setting of the AUROC against the step (metric_auroc's numbers), shown in the
    section, never beside a claim (a stem naming leaky_relu would match the leaky claim's)."""
    runs = probe_runs(n=40).assign(**{"model.activation": "leaky_relu"})
    curves = probe_curves(runs)
    plans = plots.figure_plans(analysis.summarize(runs), runs, curves)
    auroc = [p for p in plans if p.stem.startswith(predictors.FIGURE + "__")]
    assert [p.stem for p in auroc] == ["auroc__offset-0", "auroc__offset-2"]
    table = auroc[1].arguments["table"]
    own = runs[runs["data.offset"] == 2.0]
    expected = analysis.metric_auroc(curves, own, analysis.fails_probe(own), list(METRICS))
    shown = table[table["outcome"] == "fails the probe"].reset_index(drop=True)
    pd.testing.assert_frame_equal(shown[["metric", "step", "auroc"]], expected[shown.columns[1:]])
    summary = analysis.summarize(runs)
    figures = [report.FigureFile(f"{p.stem}_leaky_relu.png", png(300, 100)) for p in auroc]
    manifest = results.Manifest(config={"name": "test", "seed": 0})
    judged = report.verdicts(summary)
    section = predictors.predictors(runs, curves)
    md = report.render_markdown("run", summary, manifest, judged, figures, None, section)
    page = report.render_html("run", summary, manifest, judged, figures, None, section)
    before, after = md.split(f"## {predictors.TITLE}")
    assert all(f.name not in before and f.name in after for f in figures)
    assert "## Figures" not in md
    claims, rest = page.split(f'<section id="{report.PREDICTORS_ANCHOR}">')
    assert all(f'id="{f.anchor}"' in rest and f.anchor not in claims for f in figures)
