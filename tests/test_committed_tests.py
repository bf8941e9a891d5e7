"""The paired tests committed with the question and Sokar studies, recomputed from their own
columns with SciPy (issue 27: every claim a test, an interval and Holm's correction).

Cheap: only the committed CSVs are read, the engine is not run. Their numbers are written with
six significant digits (``%.6g``), so a recomputed value matches to a relative 5e-6 per rounded
input; the tolerances below follow from that.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from study import analysis
from tests.helpers import ROOT

QUESTION = ROOT / "results" / "question"
SOKAR = ROOT / "results" / "sokar2023"
SETTING = ["data.standardize", "model.bias_scale", "train.optimizer", "train.learning_rate"]
ROUNDED = 1e-5  # two quantities rounded to six significant digits: 2 x 5e-6 relative


def holm_step_down(p_values) -> np.ndarray:
    """Holm (1979) written out: the i-th smallest p times (m - i), then the running maximum."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order])
    out = np.empty(len(p))
    out[order] = np.minimum(adjusted, 1.0)
    return out


@pytest.fixture(scope="module")
def question() -> pd.DataFrame:
    return pd.read_csv(QUESTION / "comparisons.csv")


def test_question_mcnemar_rows_match_scipy(question):
    for _, row in question.iterrows():
        a_only, b_only, n = int(row["k_a_only"]), int(row["k_b_only"]), int(row["n_a"])
        m = a_only + b_only
        expected = stats.binomtest(min(a_only, b_only), m, 0.5).pvalue if m else 1.0
        assert row["p_value"] == pytest.approx(expected, rel=ROUNDED, abs=1e-300), row["family"]
        assert row["difference"] == pytest.approx((row["k_b"] - row["k_a"]) / n, abs=1e-9)
        both = int(row["k_a"]) - a_only
        lo, hi = analysis.newcombe_paired_interval(both, a_only, b_only, n - both - a_only - b_only)
        assert (row["difference_lo"], row["difference_hi"]) == pytest.approx((lo, hi), rel=ROUNDED)
        assert row["difference_lo"] <= row["difference"] <= row["difference_hi"]
    assert question["paired"].all() and (question["test"] == "mcnemar").all()


def test_question_holm_is_within_each_family(question):
    for family, part in question.groupby("family"):
        expected = holm_step_down(part["p_value"])
        assert np.allclose(part["p_holm"], expected, rtol=2 * ROUNDED, atol=0), family
        assert (part["significant"] == (part["p_holm"] < 0.05)).all(), family


def test_question_tests_count_the_networks_of_the_committed_shares(question):
    leaky = pd.read_csv(QUESTION / "leaky_inactive.csv")
    for what in ("init", "end"):
        k, n, name = leaky[f"k_inactive_{what}"], leaky["n_valid"], f"p_inactive_{what}"
        wilson = [
            stats.binomtest(int(a), int(b)).proportion_ci(method="wilson")
            for a, b in zip(k, n, strict=True)
        ]
        assert np.allclose(leaky[f"{name}_lo"], [w.low for w in wilson], rtol=ROUNDED, atol=1e-12)
        assert np.allclose(leaky[f"{name}_hi"], [w.high for w in wilson], rtol=ROUNDED)
        assert np.allclose(leaky[name], k / n, rtol=ROUNDED)
    end = question[question["family"] == "leaky end vs init"].astype({"model.bias_scale": float})
    merged = end.merge(leaky, on=SETTING, validate="one_to_one")
    assert len(merged) == len(leaky) > 0
    assert (merged["k_a"] == merged["k_inactive_init"]).all()
    assert (merged["k_b"] == merged["k_inactive_end"]).all()
    summary = pd.read_csv(QUESTION / "summary.csv")
    relu = summary[summary["model.activation"] == "relu"]
    dead_init = relu.groupby(["data.standardize", "model.bias_scale"])["k_dead_init"]
    assert (dead_init.nunique() == 1).all()  # at init every schedule holds the same networks
    for _, row in question[question["family"] == "bias at init"].iterrows():
        for level, k in (("level_a", "k_a"), ("level_b", "k_b")):
            cell = (row["data.standardize"], float(row[level]))
            assert row[k] == dead_init.first()[cell]


def test_the_question_page_claims_hold_in_its_tables(question):
    """docs/results/1-question.md: the claims of its leaky ReLU and bias paragraphs."""
    # 18: three sgd or momentum schedules beside momentum at 0.1, in 2 data x 3 bias cells
    schedules = question[question["family"] == "leaky schedules"]
    slower = schedules[~schedules["level_b"].str.startswith("adam")]
    assert len(slower) == 18 and (slower["level_a"] == "momentum 0.1").all()
    assert (slower["difference"] > 0).all() and slower["significant"].all()  # fewest: momentum 0.1
    end = question[question["family"] == "leaky end vs init"]
    gain = end[(end["train.optimizer"] == "sgd") | (end["train.learning_rate"] == 0.01)]
    gain = gain[gain["train.optimizer"] != "adam"]  # sgd at both rates, momentum at 0.01
    assert len(gain) == 18 and (gain["difference"] > 0).all() and gain["significant"].all()
    assert (end.loc[end["train.optimizer"] == "adam", "k_b"] == 0).all()  # Adam: none inactive
    bias = question[question["family"] == "bias at init"].astype({"level_b": float})
    small = bias[~bias["data.standardize"].astype(bool) & (bias["level_b"] == 0.05)].iloc[0]
    assert small["difference_lo"] < 0 < small["difference_hi"] and not small["significant"]


def test_sokar_orderings_intervals_agree_with_their_t_tests():
    """Each row's interval and p-value are the same paired t test: the interval's half-width
    gives the standard error, which gives the p-value (rows with p >= 1e-6, where the rounding
    of the bounds moves p by less than a relative 1e-3: t <= 5 and dp/p about t^2 x 2e-5)."""
    table = pd.read_csv(SOKAR / "orderings.csv")
    n = pd.read_csv(SOKAR / "summary.csv").groupby("regime")["n_networks"].first()
    for _, row in table.iterrows():
        df = n[row["regime"]] - 1
        printed = row[["difference", "share_higher", "share_lower"]].abs().sum()
        assert row["difference"] == pytest.approx(
            row["share_higher"] - row["share_lower"], abs=5e-6 * printed
        )
        se = (row["difference_hi"] - row["difference_lo"]) / (2 * stats.t.ppf(0.975, df))
        if se == 0:
            assert row["p_value"] == float(row["difference"] == 0)
        elif row["p_value"] >= 1e-6:
            expected = 2 * stats.t.sf(abs(row["difference"]) / se, df)
            assert row["p_value"] == pytest.approx(expected, rel=1e-3)
    for (regime, measure), part in table.groupby(["regime", "measure"]):
        expected = holm_step_down(part["p_value"])
        assert np.allclose(part["p_holm"], expected, rtol=2 * ROUNDED), (regime, measure)
