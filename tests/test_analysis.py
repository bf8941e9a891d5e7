"""summarize() against direct pandas computations; Wilson intervals; survival curves."""

import functools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from study import analysis, data, theory
from study.config import SETTING_KEYS
from tests.helpers import standard_errors, synthetic_runs  # test_report.py imports it from here


def test_wilson_reference_values():
    z = 1.959963984540054
    lo, hi = analysis.wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(z**2 / (10 + z**2))
    lo, hi = analysis.wilson_interval(5, 10)
    assert (lo, hi) == (pytest.approx(0.236593, abs=1e-6), pytest.approx(0.763407, abs=1e-6))
    lo, hi = analysis.wilson_interval(10, 10)
    assert hi == 1.0 and lo == pytest.approx(1 - z**2 / (10 + z**2))
    lo, hi = analysis.wilson_interval(np.array([0, 3]), np.array([0, 7]))
    assert np.isnan(lo[0]) and np.isnan(hi[0]) and 0 < lo[1] < 3 / 7 < hi[1] < 1


def test_wilson_coverage():
    rng = np.random.default_rng(0)
    p, n, trials = 0.1, 60, 4000
    k = rng.binomial(n, p, trials)
    lo, hi = analysis.wilson_interval(k, np.full(trials, n))
    coverage = np.mean((lo <= p) & (p <= hi))
    # the exact coverage at (n, p): the binomial probability of the k whose interval holds p
    every_k = np.arange(n + 1)
    lo_k, hi_k = analysis.wilson_interval(every_k, np.full(n + 1, n))
    exact = stats.binom.pmf(every_k, n, p)[(lo_k <= p) & (p <= hi_k)].sum()
    assert abs(coverage - exact) < 4 * standard_errors(exact, trials)
    # Wilson's coverage oscillates about the nominal level (Brown, Cai and DasGupta 2001)
    assert abs(exact - 0.95) < 0.005


def test_summary_equals_direct_pandas():
    runs = synthetic_runs(
        0.3,
        0.2,
        n=400,
        p_diverged=0.05,
        depth=2,
        **{"data.offset": [0.0, 2.0], "model.width": [1, 3]},
    )
    summary = analysis.summarize(runs)
    assert len(summary) == 4
    for _, row in summary.iterrows():
        rows = runs[
            (runs["data.offset"] == row["data.offset"])
            & (runs["model.width"] == row["model.width"])
        ]
        valid = rows[~rows["diverged"]]
        assert row["n_inits"] == len(rows) and row["n_valid"] == len(valid)
        assert row["p_dead_init"] == pytest.approx(valid["dead_init"].mean())
        assert row["p_dead_end"] == pytest.approx(valid["dead_end"].mean())
        assert row["p_diverged"] == pytest.approx(rows["diverged"].mean())
        lo, hi = analysis.wilson_interval(valid["dead_end"].sum(), len(valid))
        assert (row["p_dead_end_lo"], row["p_dead_end_hi"]) == (
            pytest.approx(lo),
            pytest.approx(hi),
        )
        for layer in (1, 2):
            expected = (valid[f"dead_units_end_l{layer}"] / valid["model.width"]).mean()
            assert row[f"dead_frac_end_l{layer}"] == pytest.approx(expected)
        assert row["mean_final_accuracy"] == pytest.approx(valid["final_accuracy"].mean())
        # counts beside the proportions, and each proportion is its count over its denominator
        assert row["k_dead_init"] == valid["dead_init"].sum()
        assert row["k_dead_end"] == valid["dead_end"].sum()
        assert row["k_revived"] == valid["revived"].sum()
        assert row["k_diverged"] == rows["diverged"].sum()
        assert row["k_revived_dead_init"] == (valid["dead_init"] & valid["revived"]).sum()
        for metric in ("dead_init", "dead_end", "revived"):
            assert row[f"p_{metric}"] == row[f"k_{metric}"] / row["n_valid"]
    columns = list(summary.columns)
    start = columns.index("n_inits")
    proportions = [
        [f"k_{m}", f"p_{m}", f"p_{m}_lo", f"p_{m}_hi"]
        for m in ("dead_init", "dead_end", "revived", "diverged")
    ]
    assert columns[start : start + 18] == ["n_inits", "n_valid", *sum(proportions, [])]
    assert columns[:start] == [k for k in SETTING_KEYS if k in runs]


def test_summary_by_subset_pools_settings():
    runs = synthetic_runs(0.3, 0.2, n=200, **{"data.offset": [0.0, 2.0], "model.width": [1, 3]})
    summary = analysis.summarize(runs, by=["model.width"])
    assert list(summary["model.width"]) == [1, 3]
    assert list(summary["n_inits"]) == [400, 400]
    direct = runs.groupby("model.width")["dead_init"].mean()
    np.testing.assert_allclose(summary["p_dead_init"], direct.to_numpy())


def test_dead_share_pools_the_hidden_layers():
    runs = synthetic_runs(0.3, 0.2, n=50, depth=3, **{"model.width": [4]})
    direct = sum(runs[f"dead_units_end_l{k}"] for k in (1, 2, 3)) / 12
    np.testing.assert_allclose(analysis.dead_share(runs), direct)
    summary = analysis.summarize(runs)  # the mean of the pooled share is that of the layers'
    layers = [summary[f"dead_frac_init_l{k}"].iloc[0] for k in (1, 2, 3)]
    assert analysis.dead_share(runs, "init").mean() == pytest.approx(sum(layers) / 3)


def test_all_diverged_gives_nan_and_says_so():
    runs = synthetic_runs(0.3, 0.2, n=50, p_diverged=1.0, **{"data.offset": [2.0]})
    row = analysis.summarize(runs).iloc[0]
    assert row["n_inits"] == 50 and row["n_valid"] == 0 and row["p_diverged"] == 1.0
    assert np.isnan(row["p_dead_end"]) and np.isnan(row["p_dead_end_lo"])
    assert "diverged" in row["note"]


def test_theory_flag():
    runs = synthetic_runs(0.3, 0.2, n=1000, **{"model.activation": ["leaky_relu"]})
    row = analysis.summarize(runs).iloc[0]
    assert row["p_dead_init_theory"] == 0.0 and row["theory"] == "never_dead"
    assert row["theory_disagrees"]  # 30% dead against a formula of 0 must be flagged
    runs["dead_init"] = False
    assert not analysis.summarize(runs).iloc[0]["theory_disagrees"]


def test_survival_curve():
    runs = synthetic_runs(0.0, 0.0, n=4, **{"data.offset": [2.0]})
    runs["train.steps"], runs["train.log_every"] = 30, 10
    runs["death_step"] = [0, 20, -1, -1]
    curve = analysis.survival(runs, ["data.offset"])
    assert list(curve["step"]) == [0, 10, 20, 30]
    assert list(curve["alive"]) == [0.75, 0.75, 0.5, 0.5]


def test_summary_theory_from_the_engine_data():
    """One small engine run: the 2-D closed form on the rebuilt data agrees with the estimate."""
    import study

    setting = study.make_setting(data_offset=2.0, train_steps=1, train_log_every=1)
    runs = study.simulate(setting, n_inits=3000, seed=11)
    inputs_of = functools.partial(data.setting_inputs, seed=11)
    row = analysis.summarize(runs, inputs=inputs_of).iloc[0]
    inputs = inputs_of(dict(setting.values))
    expected = theory.p_dead_relu_2d(inputs, "uniform")
    assert row["theory"] == "relu_2d" and row["p_dead_init_theory"] == pytest.approx(expected)
    assert abs(row["p_dead_init"] - expected) < 4 * standard_errors(expected, 3000)


def test_theory_bounds_and_their_flag():
    """Bounds fill lower/upper (not the exact column); an interval missing them is flagged."""
    centered = np.random.default_rng(3).uniform(-1, 1, (64, 2))
    runs = synthetic_runs(0.3, 0.2, n=1000, depth=2, **{"model.width": [4]})
    row = analysis.summarize(runs, inputs=lambda values: centered).iloc[0]
    assert np.isnan(row["p_dead_init_theory"])
    assert (row["p_dead_init_lower"], row["p_dead_init_upper"]) == (2.0**-16, 1 - (1 - 2.0**-4))
    assert row["theory"] == "whole_space+nonneg_bounds" and "2^-16" in row["theory_note"]
    assert row["theory_disagrees"]  # 30% dead against at most 1/16
    runs["dead_init"] = np.arange(len(runs)) % 50 == 0  # 2%: inside the bounds
    assert not analysis.summarize(runs, inputs=lambda values: centered).iloc[0]["theory_disagrees"]
    columns = list(analysis.summarize(runs).columns)
    at = columns.index("p_dead_init_theory")
    assert columns[at : at + 4] == [
        "p_dead_init_theory",
        "p_dead_init_lower",
        "p_dead_init_upper",
        "theory_disagrees",
    ]
    assert columns[-3:] == ["theory", "theory_note", "note"]


def _with_revival_ways(runs, seed=0):
    """``runs`` with ``revived_by_training`` / ``_by_intervention`` drawn independently and
    ``revived`` their "or" (false where diverged, as the engine writes them)."""
    rng = np.random.default_rng(seed)
    alive = ~runs["diverged"].to_numpy()
    runs["revived_by_training"] = (rng.random(len(runs)) < 0.2) & alive
    runs["revived_by_intervention"] = (rng.random(len(runs)) < 0.4) & alive
    runs["revived"] = runs["revived_by_training"] | runs["revived_by_intervention"]
    return runs


def test_summary_says_which_way_networks_revived_where_there_are_interventions():
    axes = {"train.intervention": ["none", "redo"], "model.width": [1, 3]}
    runs = _with_revival_ways(synthetic_runs(0.3, 0.2, n=300, p_diverged=0.1, **axes))
    summary = analysis.summarize(runs)
    assert len(summary) == 4
    for _, row in summary.iterrows():
        rows = runs[
            (runs["train.intervention"] == row["train.intervention"])
            & (runs["model.width"] == row["model.width"])
        ]
        valid = rows[~rows["diverged"]]
        for way in ("training", "intervention"):
            hits = valid[f"revived_by_{way}"]
            assert row[f"k_revived_by_{way}"] == hits.sum()
            assert row[f"p_revived_by_{way}"] == pytest.approx(hits.mean())
            lo, hi = analysis.wilson_interval(hits.sum(), len(valid))
            assert (row[f"p_revived_by_{way}_lo"], row[f"p_revived_by_{way}_hi"]) == (
                pytest.approx(lo),
                pytest.approx(hi),
            )
        # a network may come back both ways: revived <= by training + by intervention
        assert row["k_revived_by_training"] <= row["k_revived"]
        assert row["k_revived"] <= row["k_revived_by_training"] + row["k_revived_by_intervention"]
    columns = list(summary.columns)
    at = columns.index("p_revived_dead_init_hi") + 1
    assert columns[at : at + 8] == [
        f"{prefix}revived_by_{way}{suffix}"
        for way in ("training", "intervention")
        for prefix, suffix in (("k_", ""), ("p_", ""), ("p_", "_lo"), ("p_", "_hi"))
    ]
    assert columns[-3:] == ["theory", "theory_note", "note"]
    # a sign flip at init also counts as a remedy that acts on the parameters
    flips = _with_revival_ways(synthetic_runs(0.3, 0.2, n=50, **{"model.flip_dead": [True]}))
    assert "p_revived_by_intervention" in analysis.summarize(flips)


def test_summary_without_interventions_keeps_its_columns():
    """Studies without interventions summarize exactly as before (committed summaries stay)."""
    runs = synthetic_runs(0.3, 0.2, n=200, **{"model.width": [1, 3]})
    before = analysis.summarize(runs)
    after = analysis.summarize(_with_revival_ways(runs.copy()).assign(revived=runs["revived"]))
    assert not [c for c in after.columns if "_by_" in c]
    pd.testing.assert_frame_equal(before, after)


def test_mean_curves_averages_error_and_dead_share_per_level_and_step():
    rng = np.random.default_rng(0)
    rows = []
    for activation in ("relu", "tanh"):
        for init in range(30):
            for step in (0, 10):
                rows.append(
                    {
                        "model.activation": activation,
                        "model.width": 4,
                        "model.depth": 2,
                        "init": init,
                        "step": step,
                        "error": rng.normal(1.0),
                        "dead_units_l1": rng.integers(0, 5),
                        "dead_units_l2": rng.integers(0, 5),
                    }
                )
    curves = pd.DataFrame(rows)
    table = analysis.mean_curves(curves, "model.activation")
    assert len(table) == 4 and (table["n"] == 30).all()
    part = curves[(curves["model.activation"] == "tanh") & (curves["step"] == 10)]
    share = (part["dead_units_l1"] + part["dead_units_l2"]) / 8
    row = table[(table["level"] == "tanh") & (table["step"] == 10)].iloc[0]
    assert row["dead_share"] == pytest.approx(share.mean())
    half = 1.959964 * part["error"].std() / np.sqrt(30)
    assert row["error_hi"] - row["error"] == pytest.approx(half, rel=1e-5)
