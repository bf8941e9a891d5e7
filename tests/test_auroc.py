"""analysis.auroc and analysis.metric_auroc against a direct computation (every pair of networks)
and a closed form."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from study import analysis


def _direct(scores: np.ndarray, outcome: np.ndarray, level: float = 0.95):
    """AUROC and DeLong's interval from the matrix of every (with, without) pair's psi."""
    x, y = scores[outcome], scores[~outcome]
    psi = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    area = psi.mean()
    se = np.sqrt(v10.var(ddof=1) / len(x) + v01.var(ddof=1) / len(y))
    z = stats.norm.ppf((1 + level) / 2)
    return area, max(0, area - z * se), min(1, area + z * se)


@pytest.mark.parametrize("seed", range(3))
def test_auroc_matches_every_pair(seed):
    rng = np.random.default_rng(seed)
    outcome = rng.random(60) < 0.3
    scores = rng.integers(0, 6, size=60) + outcome  # ties, and some signal
    np.testing.assert_allclose(analysis.auroc(scores, outcome), _direct(scores, outcome))


def test_auroc_of_two_normal_groups_is_the_closed_form():
    """Scores N(d, 1) with the outcome and N(0, 1) without: AUROC = Phi(d / sqrt 2); the
    estimate is within 4 of its DeLong standard errors, and separation gives 1."""
    rng = np.random.default_rng(7)
    d, n = 0.8, 4000
    outcome = np.arange(n) < n // 2
    scores = rng.normal(size=n) + d * outcome
    area, lo, hi = analysis.auroc(scores, outcome)
    se = (hi - lo) / (2 * stats.norm.ppf(0.975))
    assert abs(area - stats.norm.cdf(d / np.sqrt(2))) <= 4 * se
    assert analysis.auroc(outcome.astype(float), outcome)[0] == 1.0
    assert np.isnan(analysis.auroc(scores, np.zeros(n, bool))[0])


def test_metric_auroc_joins_curves_to_runs_and_leaves_out_diverged_runs():
    rng = np.random.default_rng(3)
    n, steps = 40, [0, 10, 20]
    runs = pd.DataFrame(
        {
            "model.width": 4,
            "init": np.arange(n),
            "dead_end": rng.random(n) < 0.4,
            "diverged": np.arange(n) == 5,
        }
    )
    curves = pd.DataFrame(
        {
            "model.width": 4,
            "init": np.repeat(np.arange(n), len(steps)),
            "step": np.tile(steps, n),
            "effective_rank_l1": rng.random(n * len(steps)),
        }
    )
    table = analysis.metric_auroc(curves, runs, runs["dead_end"], ["effective_rank_l1"])
    assert list(table["step"]) == steps
    valid = runs[~runs["diverged"]]
    for _, row in table.iterrows():
        at = curves[curves["step"] == row["step"]].set_index("init").loc[valid["init"]]
        expected = _direct(at["effective_rank_l1"].to_numpy(), valid["dead_end"].to_numpy())
        np.testing.assert_allclose([row["auroc"], row["auroc_lo"], row["auroc_hi"]], expected)
        assert row["n_with"] + row["n_without"] == n - 1
