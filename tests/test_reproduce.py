"""Smoke tests: every reproduction script runs end to end at its --tiny size.

Each script is run in-process (``main(["--tiny", "--out", tmp])``) so that JAX starts once; the
tiny sizes compile one structural group per config. Besides the files, each test checks a
property of the output that a broken script or engine would violate.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from study.config import load_study
from tests.helpers import ROOT

SCRIPTS = ROOT / "scripts"
CONFIGS = ROOT / "study" / "configs"


@pytest.fixture(scope="module")
def scripts():
    sys.path.insert(0, str(SCRIPTS))
    try:
        yield lambda name: importlib.import_module(f"reproduce_{name}")
    finally:
        sys.path.remove(str(SCRIPTS))


def run_tiny(scripts, name: str, out: Path) -> Path:
    assert scripts(name).main(["--tiny", "--out", str(out)]) == 0
    assert (out / "summary.csv").exists()
    figures = sorted((out / "figures").glob("*.png"))
    assert figures, f"{name}: no figure written"
    assert all(path.stat().st_size > 1000 for path in figures)
    return out


def test_question(scripts, tmp_path):
    out = run_tiny(scripts, "question", tmp_path / "question")
    revival = pd.read_csv(out / "revival.csv")
    pooled = revival[revival["train.optimizer"] == "all"].iloc[0]
    assert pooled["n_dead_init"] > 0
    assert pooled["n_revived"] == 0  # a dead ReLU network gets no gradient: it cannot revive
    dead = pd.read_csv(out / "dead_networks.csv")
    # A dead network's output is constant: it predicts one class for every input.
    assert np.allclose(dead["share_all_positive"] + dead["share_all_negative"], 1.0)
    tests = pd.read_csv(out / "comparisons.csv")  # tiny: raw data, ReLU: no standardize, no leaky
    assert set(tests["family"]) == {"end vs init", "bias at init"}
    assert tests["paired"].all() and (tests["test"] == "mcnemar").all()
    end = tests[tests["family"] == "end vs init"]
    assert (end["k_a_only"] == 0).all()  # none revives
    # the end adds to the networks dead at init those that died in training
    assert (end["k_b"] - end["k_a"] == end["k_b_only"]).all()
    bias = tests[tests["family"] == "bias at init"].astype({"level_a": float, "level_b": float})
    assert sorted(bias["level_b"]) == [0.05, 0.5] and (bias["level_a"] == 0.0).all()
    # the counts of one schedule stand for all: no step is taken before init is measured
    dead_init = pd.read_csv(out / "summary.csv").groupby("model.bias_scale")["k_dead_init"]
    assert (dead_init.nunique() == 1).all()
    assert (bias["k_a"] == dead_init.first()[0.0]).all()
    assert list(bias["k_b"]) == list(dead_init.first()[bias["level_b"]])
    leaky = pd.read_csv(out / "leaky_inactive.csv")  # no leaky ReLU in the tiny run: no row
    assert leaky.empty and {"n_valid", "k_inactive_end", "p_inactive_end_hi"} <= set(leaky)


def test_two_layers(scripts, tmp_path):
    out = run_tiny(scripts, "two_layers", tmp_path / "two_layers")
    table = pd.read_csv(out / "summary.csv")
    assert list(table["model.width"]) == [3]
    assert table["bound_unit_2^-n"].iloc[0] == pytest.approx(1 / 8)
    assert (table["p_unit_l2_dead_init_lo"] <= table["p_unit_l2_dead_init"]).all()


@pytest.mark.slow  # a script's smoke run, out of the default suite for its time
def test_lu2019(scripts, tmp_path):
    out = run_tiny(scripts, "lu2019", tmp_path / "lu2019")
    born = pd.read_csv(out / "summary.csv")
    assert sorted(born["depth"].unique()) == [1, 2, 3]
    # Dead within the first L layers implies dead within the first L + 1.
    for _, curve in born.groupby(["model.init", "data.offset", "model.width"]):
        assert np.all(np.diff(curve.sort_values("depth")["k"]) >= 0)
    collapse = pd.read_csv(out / "collapse.csv")
    assert set(collapse["event"]) >= {"dead_init", "dead_end", "near_constant"}
    compared = pd.read_csv(out / "rai_vs_he.csv")
    assert list(compared["function"].unique()) == ["x_sin5x", "step_sin5x"]  # |x|: He alone
    assert (compared["p_holm"] >= compared["p"]).all()


@pytest.mark.slow  # a script's smoke run, out of the default suite for its time
def test_arnekvist2020(scripts, tmp_path):
    out = run_tiny(scripts, "arnekvist2020", tmp_path / "arnekvist2020")
    table = pd.read_csv(out / "summary.csv")
    assert len(table) == 32  # two arms of 4 momenta x 4 target scales, one shift
    assert table["unit_dead_end"].between(0, 1).all()
    fixed_step = table[table["arm"] == "fixed effective step"]
    assert np.allclose(fixed_step["effective_step"], 0.01)  # lr = 0.01 (1 - mu)
    fixed_rate = table[table["arm"] == "fixed learning rate"]
    assert np.allclose(fixed_rate["effective_step"], 0.01 / (1 - fixed_rate["train.momentum"]))
    # mu = 0 is the same setting in both arms, from the same draws: the same counts
    at_zero = [part[part["train.momentum"] == 0] for part in (fixed_step, fixed_rate)]
    assert list(at_zero[0]["p_dead_end"]) == list(at_zero[1]["p_dead_end"])
    tests = pd.read_csv(out / "comparisons.csv")
    sizes = tests.groupby(["arm", "family"]).size().to_dict()
    assert sizes == {
        (arm, family): 24 for arm in set(table["arm"]) for family in ("momentum", "target scale")
    }  # fmt: skip; 6 pairs in each of 4 cells
    assert tests["paired"].all() and (tests["test"] == "mcnemar").all()


@pytest.mark.slow  # a script's smoke run, out of the default suite for its time
def test_sokar2023(scripts, tmp_path):
    out = run_tiny(scripts, "sokar2023", tmp_path / "sokar2023")
    table = pd.read_csv(out / "summary.csv")
    assert len(table) == 6  # two regimes (positive and centered data) x relu x 3 thresholds
    # For ReLU, a unit is 0-dormant exactly when its output is 0 on every input: dead.
    for _, at_zero in table[table["train.dormant_tau"] == 0.0].iterrows():
        assert at_zero["dormant_end"] == pytest.approx(at_zero["dead_end"])
    tests = pd.read_csv(out / "orderings.csv")  # one activation: only its growth is tested
    assert list(tests["measure"]) == ["dormant growth"] * 2
    assert np.allclose(tests["difference"], tests["share_higher"] - tests["share_lower"], atol=1e-5)
    # A dead ReLU unit outputs 0, so it is tau-dormant for every tau >= 0.
    assert (table["dormant_end"] >= table["dead_end"] - 1e-12).all()


def test_remedies(scripts, tmp_path):
    out = run_tiny(scripts, "remedies", tmp_path / "remedies")
    table = pd.read_csv(out / "summary.csv")
    ran = table[table["n_valid"].notna()].set_index("variant")
    assert {"baseline", "bias_0_01", "bias_0_1", "lr_tenth"} == set(ran.index[~is_tuned(ran)])
    assert {"baseline_tuned", "bias_0_01_tuned"} == set(ran.index[is_tuned(ran)])
    # Exactly balanced labels: the best constant predicts 1/2, at a loss of ln 2.
    assert table["constant_loss"].to_numpy() == pytest.approx(np.log(2), rel=1e-6)  # as written
    assert (out / "figures" / "remedies_final_loss.png").stat().st_size > 1000
    assert ran.loc["lr_tenth", "remedy"] == "learning rate / 10"
    # The baseline is not compared with itself; every other row is, and Holm only raises p.
    assert np.isnan(ran.loc["baseline", "p_value"])
    compared = ran.drop(index="baseline")
    assert (compared["p_holm"] >= compared["p_value"] - 1e-12).all()
    assert (compared["diff_p_dead_end_lo"] <= compared["diff_p_dead_end"]).all()
    assert (compared["diff_p_dead_end"] <= compared["diff_p_dead_end_hi"]).all()
    # Paired (the draws are shared): the networks the remedy saved and killed make the change.
    assert compared["paired"].all() and (compared["test"] == "mcnemar").all()
    change = (compared["killed"] - compared["saved"]) / compared["n_valid"]
    np.testing.assert_allclose(change, compared["diff_p_dead_end"])
    # The interval widths are compared only where the remedy leaves the start alike.
    assert compared.loc[["bias_0_01", "bias_0_1"], "width_ratio"].isna().all()
    assert compared.loc["lr_tenth", "width_ratio"] > 0
    # Which way networks came back: none of these remedies intervenes, so only by training.
    assert (ran["k_revived_by_intervention"] == 0).all()
    assert (ran["k_revived_by_training"] == ran["k_revived"]).all()
    # A remedy the engine refuses is listed with its reason, not run: layer norm at width 1.
    refused = table.set_index("variant").loc["layer_norm"]
    assert np.isnan(refused["n_valid"])
    assert refused["note"].startswith("refused by the engine") and "width" in refused["note"]
    bias = pd.read_csv(out / "bias_claim.csv")
    assert list(bias["task"]) == ["question"] * 3 + ["deep_3x64"] * 2
    assert bias["paired"].all() and (bias["p_holm"] >= bias["p_value"] - 1e-12).all()
    claims = pd.read_csv(out / "claims.csv")
    assert len(claims) == 3 and claims["verdict"].str.len().gt(0).all()
    lr = pd.read_csv(out / "lr_claim.csv")
    assert lr["dead_unit_share"].between(0, 1).all()
    assert (lr["final_accuracy_lo"] <= lr["final_accuracy"]).all()
    check_tuning(out, table.set_index("variant"))
    # The verdicts: a Markdown line per compared row, "no significant change" only with the
    # largest change its interval leaves possible.
    lines = [line for line in (out / "verdicts.md").read_text().splitlines() if line[:2] == "| "]
    assert len(lines) == len(compared) + 1  # and the header
    for line, (_, row) in zip(lines[1:], compared.iterrows(), strict=True):
        if row["p_holm"] >= 0.05:
            assert f"no significant change (Holm p {row['p_holm']:.2g}; none beyond" in line
            assert f"±{row['max_change']:.3f}" in line
        else:
            assert ("fewer dead" if row["diff_p_dead_end"] < 0 else "more dead") in line


def is_tuned(table: pd.DataFrame) -> pd.Series:
    return table["strength"] == "tuned"


def check_tuning(out: Path, summary: pd.DataFrame) -> None:
    """Each grid's chosen value is the lowest mean final loss of the choosing half (no value
    diverged in this tiny run), and its row reports the other half, recomputed from the runs."""
    tuning = pd.read_csv(out / "tuning.csv")
    assert set(tuning["remedy"]) == {"baseline", "bias_0_01"}
    assert (tuning.groupby("remedy").size() == 4).all()  # an equal budget: four values each
    runs = pd.read_parquet(out / "runs" / "remedies_question" / "runs.parquet")
    half = runs["init"].max() // 2 + 1
    for remedy, grid in tuning.groupby("remedy"):
        choosing = runs[runs["init"] < half].groupby("variant")["final_loss"].mean()
        np.testing.assert_allclose(grid["final_loss"], choosing[grid["variant"]], rtol=1e-6)
        (chosen,) = grid.loc[grid["chosen"], "variant"]
        assert chosen == grid.set_index("variant")["final_loss"].idxmin()
        row = summary.loc[f"{remedy}_tuned"]
        if chosen == "baseline":  # nothing to compare: the row is a note saying so
            assert np.isnan(row["n_valid"]) and "the baseline's own" in row["note"]
            continue
        reported = runs[(runs["init"] >= half) & (runs["variant"] == chosen)]
        assert row["n_valid"] == len(reported) == half
        assert row["p_dead_end"] == pytest.approx(reported["dead_end"].mean(), abs=1e-6)
        assert row["tuned_value"] == grid.set_index("variant").loc[chosen, "value"]


def test_cs231n_data_is_the_scripts(scripts):
    """The committed CS231n task data are what the script's generator makes."""
    made = scripts("remedies").xor_data()
    committed = pd.read_csv(CONFIGS / "data" / "cs231n_xor.csv")
    pd.testing.assert_frame_equal(made, committed)


def test_remedies_figure_captions_name_the_interval_and_test_of_the_rows(scripts):
    """The forest plots' caption says what analysis.compare computed for the rows drawn."""
    caption = scripts("remedies").difference_caption
    paired = pd.DataFrame({"paired": [True, True], "test": ["mcnemar", "mcnemar"]})
    assert caption(paired) == "bars: Newcombe's paired 95% intervals; test: McNemar's exact test"
    mixed = pd.DataFrame({"paired": [True, False, False], "test": ["mcnemar", "z", np.nan]})
    assert caption(mixed) == (
        "bars: Newcombe's 95% intervals, paired where networks are shared; "
        "test: McNemar's exact test or two-proportion z test"
    )


def test_remedies_configs(scripts):
    """Each task's config is its baseline with every remedy a variant that changes it, but those
    the engine refuses there or that are the baseline, which the script lists with why; each
    remedy is written alike on every task (a tenth of each task's learning rate at ten times its
    steps, warmup over a tenth of its steps); the bias
    claim's grid is the baseline at three learning rates with a zero and a 0.01 bias."""
    remedies = scripts("remedies")
    written = {}
    for task in remedies.TASKS:
        study = load_study(CONFIGS / f"remedies_{task}.toml")  # refuses a variant = baseline
        notes = remedies.not_variants(task)
        assert study.variants[0] == "baseline"
        assert sorted(study.variants[1:] + tuple(notes)) == sorted(remedies.REMEDIES)
        assert set(remedies.SOURCES) == {"baseline", *remedies.REMEDIES}  # each names its source
        base = study.settings[0].as_dict
        variants = dict(study.config["variants"])
        rate = base["train.learning_rate"]
        assert variants.pop("lr_tenth") == {  # matched progress: ten times the steps
            "train.learning_rate": pytest.approx(rate / 10),
            "train.steps": base["train.steps"] * 10,
            "train.log_every": base["train.log_every"] * 10,
        }
        warmup = {"train.warmup_steps": base["train.steps"] // 10}
        assert variants.pop("warmup") == warmup  # a tenth of each task's steps
        for name, overrides in variants.items():
            assert written.setdefault(name, overrides) == overrides, (task, name)
        bias = load_study(CONFIGS / f"remedies_{task}_bias.toml")
        rates = [rate / 10, rate, rate * 10]
        grid = [
            (s.as_dict["train.learning_rate"], s.as_dict["model.bias_scale"]) for s in bias.settings
        ]
        assert np.allclose(sorted(grid), [(r, b) for r in rates for b in (0.0, 0.01)])
        for setting in bias.settings:
            rest = {
                k: v
                for k, v in setting.as_dict.items()
                if k not in ("train.learning_rate", "model.bias_scale")
            }
            assert rest == {k: v for k, v in base.items() if k in rest}
    for task in ("question", "two_layers"):
        (note,) = remedies.not_variants(task).values()
        assert note.startswith("refused by the engine: model.norm = 'layer'") and "width" in note
    assert remedies.not_variants("lu_abs") == {"he_init": "same as the baseline for this task"}


@pytest.mark.slow  # three stream compiles, about a minute on 2 cores; the engine's stream tests
# (tests/test_stream_engine.py) run by default
def test_dohare2024(scripts, tmp_path):
    out = run_tiny(scripts, "dohare2024", tmp_path / "dohare2024")
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["learner"]) == {"relu", "tanh", "linear"}
    curves = pd.read_csv(out / "curves.csv")
    assert (curves["n_runs"] == 8).all() and curves["step"].max() == 2000
    assert {p.name for p in (out / "figures").iterdir()} == {
        "error_lr0.01.png",
        "dead_share_lr0.01.png",
        "learning_rates.png",
    }


def test_dohare_learners_against_the_linear_baseline_are_paired_by_stream(scripts):
    """comparisons.csv: each learner's window error against the linear learner's on the same
    streams, as scipy's paired t test, Holm-adjusted over the table; the best linear learner is
    the one with the lowest mean error in the window."""
    from scipy import stats

    dohare = scripts("dohare2024")
    rng = np.random.default_rng(0)
    n, steps = 30, np.arange(0, 601, 50)
    stream = rng.normal(1.0, 0.3, n)  # a stream's difficulty, shared by every learner
    rows = []
    learners = [("relu", 1, 0.01, 0.4), ("tanh", 1, 0.01, 0.0)]
    learners += [("relu", 0, 0.01, 0.1), ("relu", 0, 0.003, 0.0)]  # linear learners (depth 0)
    for activation, depth, lr, shift in learners:
        for step in steps:
            error = stream + shift + rng.normal(0, 0.05, n)
            rows.append(pd.DataFrame({"model.activation": activation, "model.depth": depth,
                                      "train.learning_rate": lr, "init": np.arange(n),
                                      "step": step, "error": error}))  # fmt: skip
    per_run = dohare.window_errors(pd.concat(rows, ignore_index=True))
    table = dohare.linear_comparisons(per_run)
    end = per_run[per_run["window"] == "end"]

    def errors(learner, lr):
        own = end[(end["learner"] == learner) & (end["train.learning_rate"] == lr)]
        return own.sort_values("init")["error"].to_numpy()

    row = table[(table["window"] == "end") & (table["learner"] == "relu")]
    assert sorted(row["linear_rate"]) == [0.003, 0.01] and row["best_linear"].sum() == 1
    best = row[row["best_linear"]].iloc[0]
    assert best["linear_rate"] == 0.003  # the linear learner with the lower error
    direct = stats.ttest_rel(errors("relu", 0.01), errors("linear", 0.003))
    assert best["p_value"] == pytest.approx(direct.pvalue, rel=1e-9)
    assert best["ratio"] == pytest.approx(
        errors("relu", 0.01).mean() / errors("linear", 0.003).mean()
    )
    holm = np.minimum(
        1, np.maximum.accumulate(np.sort(table["p_value"]) * np.arange(len(table), 0, -1))
    )
    assert np.allclose(np.sort(table["p_holm"]), holm)
    last = steps.max()
    assert set(per_run["window"]) == {"mid", "end"}
    assert per_run.groupby("window")["error"].size().to_dict() == {"mid": 4 * n, "end": 4 * n}
    inside = steps[(steps > last * 5 / 6) & (steps <= last)]
    assert len(inside) == 2  # 550 and 600: the last sixth of the stream


def test_published_marks_labels_do_not_overlap(scripts):
    """The labels of the authors' marks (ReLU at 0.001, tanh and linear within 0.03 of each
    other) are stacked a line apart on a figure's usual y range, and a label with room is not
    moved; the lifts do not depend on the order the heights come in."""
    import matplotlib.pyplot as plt

    dohare = scripts("dohare2024")
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.set_ylim(0.3, 2.5)
    dohare.published_marks(ax, ["relu", "tanh", "linear"])
    fig.canvas.draw()
    boxes = [text.get_window_extent() for text in ax.texts]
    assert len(boxes) == len(pd.read_csv(dohare.PUBLISHED))
    for i, box in enumerate(boxes):
        assert not any(box.overlaps(other) for other in boxes[i + 1 :]), ax.texts[i].get_text()
    heights = np.array([0.5, 1.5, 0.501, 0.5005])
    lifts = dohare.label_lifts(ax, heights)
    assert lifts[0] == 0 and lifts[1] == 0  # the lowest and one far from the others stay
    low, high = ax.get_ylim()
    placed = np.sort(heights * ax.bbox.height * 72 / fig.dpi / (high - low) + lifts)  # points
    assert np.diff(placed)[:2] == pytest.approx([8.5, 8.5])
    order = [3, 1, 0, 2]
    assert np.allclose(dohare.label_lifts(ax, heights[order]), lifts[order])


@pytest.mark.slow  # two studies of 8 structures each: about 100 s of compiles
def test_dohare2024_remedies(scripts, tmp_path):
    out = run_tiny(scripts, "dohare2024_remedies", tmp_path / "remedies")
    remedies = scripts("dohare2024_remedies")
    tuning = pd.read_csv(out / "tuning.csv")
    assert tuning.groupby("remedy")["chosen"].sum().eq(1).all()
    per_run = pd.read_csv(out / "per_run.csv")
    assert set(per_run["variant"]) == set(remedies.LABELS)
    assert per_run.groupby("variant").size().eq(16).all()
    assert per_run.loc[per_run["variant"] == "cbp", "replaced_units_l1"].gt(0).any()
    hidden = ~per_run["variant"].isin(["cbp", "linear"])
    assert per_run.loc[hidden, "replaced_units_l1"].eq(0).all()
    # the linear learner has no hidden layer: no unit to replace (NaN, as in the committed table)
    assert per_run.loc[per_run["variant"] == "linear", "replaced_units_l1"].isna().all()
    assert (out / "verdicts.md").read_text().count("\n| ") == 2 + len(remedies.CLAIMS)


def _stream_curves(errors: dict[str, np.ndarray], steps: np.ndarray) -> pd.DataFrame:
    """Curves of learners whose error at every bin is their run's value (plus 0 noise)."""
    return pd.concat(
        [pd.DataFrame({"variant": variant, "init": np.arange(len(values)), "step": step,
                       "error": values if step > 0 else np.nan})
         for variant, values in errors.items() for step in steps], ignore_index=True
    )  # fmt: skip


def test_dohare_remedies_are_compared_run_by_run_on_the_held_out_runs(scripts):
    """comparisons(): each learner against plain backprop and the linear learner on runs n/2..n-1
    only, as scipy's paired t test; the runs where it did better counted; the end window is the
    bins after 90% of the stream."""
    from scipy import stats

    remedies = scripts("dohare2024_remedies")
    rng = np.random.default_rng(1)
    n, steps = 40, np.arange(0, 1001, 100)
    stream = rng.normal(1.0, 0.3, n)
    errors = {"baseline": stream + 0.3, "cbp": stream + rng.normal(0, 0.1, n), "linear": stream}
    curves = _stream_curves(errors, steps)
    curves.loc[curves["step"] <= 900, "error"] += 5.0  # only the last bin is in the end window
    ends = remedies.end_errors(curves).set_index(["variant", "init"])["error_end"]
    assert np.allclose(ends["cbp"], errors["cbp"])
    per_run = ends.rename("error_end").reset_index()
    table = remedies.comparisons(per_run)
    row = table[(table["variant"] == "cbp") & (table["reference"] == "baseline")].iloc[0]
    held_out = slice(n // 2, n)
    direct = stats.ttest_rel(errors["cbp"][held_out], errors["baseline"][held_out])
    assert row["n_runs"] == n // 2
    assert row["p_value"] == pytest.approx(direct.pvalue, rel=1e-9)
    assert row["k_better"] == int((errors["cbp"][held_out] < errors["baseline"][held_out]).sum())
    assert row["ratio"] == pytest.approx(
        errors["cbp"][held_out].mean() / errors["baseline"][held_out].mean()
    )
    assert set(table["reference"]) == {"baseline", "linear"}


def test_dohare_remedies_tuning_chooses_the_lowest_end_error_among_points_that_converge(scripts):
    remedies = scripts("dohare2024_remedies")
    n, steps = 10, np.arange(0, 301, 100)
    errors, diverged = {}, []
    for remedy, (_, values) in remedies.GRIDS.items():
        for index in range(len(values)):
            variant = f"{remedy}-{index}"
            errors[variant] = np.full(n, 1.0 + 0.1 * index)  # the first value is the best ...
            diverged.append(pd.DataFrame({"variant": variant, "init": np.arange(n),
                                          "diverged": False}))  # fmt: skip
    runs = pd.concat(diverged, ignore_index=True)
    runs.loc[(runs["variant"] == "cbp-0") & (runs["init"] == 0), "diverged"] = True  # 10% > 1%
    table = remedies.tuning_table(runs, _stream_curves(errors, steps))
    chosen = table[table["chosen"]].set_index("remedy")["variant"]
    expected = {remedy: f"{remedy}-0" for remedy in remedies.GRIDS} | {"cbp": "cbp-1"}
    assert chosen.to_dict() == expected


@pytest.mark.slow  # three structures on the authors' stream
def test_dohare2024_authors(scripts, tmp_path):
    out = run_tiny(scripts, "dohare2024_authors", tmp_path / "authors")
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["learner"]) == {"relu", "tanh", "linear"}
    assert np.allclose(summary.loc[summary["learner"] == "linear", "ratio_to_linear"], 1.0)
    published = summary.dropna(subset=["published_error"])
    assert set(zip(published["learner"], published["train.learning_rate"], strict=True)) == {
        ("relu", 0.01),
        ("relu", 0.003),
        ("relu", 0.001),
        ("tanh", 0.01),
    }
    config = load_study(CONFIGS / "dohare2024_authors.toml")
    structure = config.settings[0].structure
    assert structure.teacher_convention == "code" and not structure.flip_one
