"""study compare: finds known differences, keeps the family-wise error on equal proportions."""

import numpy as np
import pandas as pd
import pytest

from study import analysis
from study.errors import ConfigError
from tests.helpers import standard_errors, synthetic_runs, write_results_folder


def _two_levels(p_a, p_b, n, seed):
    a = synthetic_runs(0.0, p_a, n=n, seed=seed, **{"data.offset": [0.0]})
    b = synthetic_runs(0.0, p_b, n=n, seed=seed + 10_000, **{"data.offset": [2.0]})
    return pd.concat([a, b], ignore_index=True)


def test_difference_found_over_repeated_seeds():
    found = [
        analysis.compare(_two_levels(0.2, 0.35, 400, seed), "data.offset")["significant"].iloc[0]
        for seed in range(40)
    ]
    # Power of the z test here is about 0.998: all 40 should find it.
    assert np.mean(found) >= 0.95


def test_equal_proportions_rejected_at_most_at_alpha():
    repeats, alpha = 200, 0.05
    rejected = [
        analysis.compare(_two_levels(0.3, 0.3, 200, seed), "data.offset", alpha=alpha)[
            "significant"
        ].iloc[0]
        for seed in range(repeats)
    ]
    assert np.mean(rejected) <= alpha + 4 * standard_errors(alpha, repeats)


def test_fisher_for_small_counts_and_interval_contains_difference():
    table = analysis.compare(_two_levels(0.01, 0.02, 50, 1), "data.offset")
    assert table["test"].iloc[0] == "fisher"
    table = analysis.compare(_two_levels(0.2, 0.4, 500, 1), "data.offset")
    row = table.iloc[0]
    assert row["test"] == "z"
    assert row["difference"] == pytest.approx(row["p_b"] - row["p_a"])
    assert row["difference_lo"] < row["difference"] < row["difference_hi"]
    assert row["difference_lo"] > 0


def test_holm():
    np.testing.assert_allclose(analysis.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(analysis.holm([0.5]), [0.5])
    # an untested comparison (NaN) stays NaN and is not one of the family
    np.testing.assert_allclose(
        analysis.holm([0.01, np.nan, 0.04, 0.03]), [0.03, np.nan, 0.06, 0.06]
    )


def test_pairs_within_other_settings_and_holm_across_table():
    runs = synthetic_runs(
        0.0, 0.3, n=100, **{"data.offset": [0.0, 1.0, 2.0], "model.width": [1, 2]}
    )
    table = analysis.compare(runs, "data.offset", metric="p_dead_end")
    assert len(table) == 2 * 3  # 3 pairs within each width
    assert set(table["model.width"]) == {1, 2}
    assert (table["p_holm"] >= table["p_value"]).all()


def test_compare_rejects_bad_keys():
    runs = _two_levels(0.2, 0.4, 300, 0)
    with pytest.raises(ConfigError):
        analysis.compare(runs, "model.nope")
    with pytest.raises(ConfigError):
        analysis.compare(runs, "data.offset", metric="p_nope")
    with pytest.raises(ConfigError):
        analysis.compare(runs, "model.width")


def test_cli_writes_csv_prints_the_table_and_exits_2_on_bad_input(tmp_path, capsys):
    from study.cli import main

    write_results_folder(tmp_path, _two_levels(0.2, 0.4, 300, 0))
    assert main(["compare", str(tmp_path), "--by", "data.offset"]) == 0
    written = pd.read_csv(tmp_path / "comparisons" / "data.offset.csv")
    assert len(written) == 1 and "p_holm" in written
    assert "p_holm" in capsys.readouterr().out
    assert main(["compare", str(tmp_path), "--by", "model.nope"]) == 2
    assert main(["compare", str(tmp_path / "missing"), "--by", "data.offset"]) == 2
