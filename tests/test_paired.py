"""Paired comparisons and sample sizes: McNemar, Newcombe's paired interval, t tests, study plan.

Synthetic runs tables throughout (no training), but for one end-to-end run of ``study compare``
and ``study plan`` on a tiny real study.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from study import analysis, cli, planning, report, results
from study.errors import ConfigError
from tests.helpers import (
    run_cli,
    standard_errors,
    synthetic_runs,
    tiny_config,
    write_results_folder,
)

LEVELS = (0.0, 2.0)  # data.offset of level a and level b


def _paired_runs(event_a, event_b, levels=LEVELS, seed=0) -> pd.DataFrame:
    """A runs table of two data.offset levels holding the same initializations 0..n-1, whose
    network i is dead at the end under level a as ``event_a[i]`` says, under b as ``event_b[i]``;
    with a final loss and accuracy (under b the loss is lower by 0.1 plus noise)."""
    event_a, event_b = np.asarray(event_a, dtype=bool), np.asarray(event_b, dtype=bool)
    runs = synthetic_runs(0.0, 0.0, n=len(event_a), seed=seed, **{"data.offset": list(levels)})
    at_b = runs["data.offset"] == levels[1]
    runs["dead_end"] = np.where(at_b, np.tile(event_b, 2), np.tile(event_a, 2))
    rng = np.random.default_rng(seed)
    loss = np.tile(rng.normal(1.0, 0.3, len(event_a)), 2)
    runs["final_loss"] = loss - np.where(at_b, 0.1 + rng.normal(0, 0.05, len(runs)), 0.0)
    return runs


def _counted(both: int, a_only: int, b_only: int, neither: int, **kwargs) -> pd.DataFrame:
    """:func:`_paired_runs` with these counts of pairs."""
    event_a = [True] * (both + a_only) + [False] * (b_only + neither)
    event_b = [True] * both + [False] * a_only + [True] * b_only + [False] * neither
    return _paired_runs(event_a, event_b, **kwargs)


def _correlated(p_a: float, p_b: float, rho: float, n: int, rng) -> np.ndarray:
    """Counts ``[both, a_only, b_only, neither]`` of ``n`` pairs of yes/no outcomes with
    margins ``p_a``, ``p_b`` and correlation ``rho``, a row per draw."""
    both = p_a * p_b + rho * np.sqrt(p_a * (1 - p_a) * p_b * (1 - p_b))
    cells = [both, p_a - both, p_b - both, 1 - p_a - p_b + both]
    return rng.multinomial(n, cells, size=1)[0]


# --------------------------------------------------------------------------------------------
# The tests and intervals.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "a_only, b_only",
    [(0, 0), (0, 1), (3, 0), (0, 3), (5, 5), (7, 2), (1, 12), (40, 25), (100, 130), (6, 7)],
)
def test_mcnemar_exact_is_the_binomial_test_of_the_discordant_pairs(a_only, b_only):
    p_value = analysis.mcnemar_exact(a_only, b_only)
    if a_only + b_only == 0:
        assert p_value == 1.0
    else:
        expected = stats.binomtest(b_only, a_only + b_only, 0.5).pvalue
        assert p_value == pytest.approx(expected, rel=1e-10, abs=1e-15)


def test_paired_interval_is_the_unpaired_one_without_correlation():
    # both * neither - a_only * b_only = 0: phi = 0, the interval of two independent samples
    lo, hi = analysis.newcombe_paired_interval(5, 20, 20, 80)
    assert (lo, hi) == pytest.approx(analysis.newcombe_interval(25, 125, 25, 125))
    # positive correlation narrows it; no discordant pair: about 0, narrow, and holding 0
    lo_c, hi_c = analysis.newcombe_paired_interval(20, 5, 5, 95)
    assert hi_c - lo_c < hi - lo
    lo, hi = analysis.newcombe_paired_interval(30, 0, 0, 70)
    assert lo < 0 < hi and hi - lo < 0.05
    assert np.isnan(analysis.newcombe_paired_interval(0, 0, 0, 0)).all()


# (p_a, p_b, correlation, pairs); the first three with many discordant pairs, the last two few.
COVERAGE_CASES = [
    (0.3, 0.3, 0.5, 200),
    (0.2, 0.25, 0.6, 200),
    (0.5, 0.4, 0.0, 100),
    (0.1, 0.12, 0.8, 200),
    (0.3, 0.3, 0.95, 200),
]


@pytest.mark.parametrize("p_a, p_b, rho, n", COVERAGE_CASES)
def test_paired_interval_covers_at_the_nominal_level(p_a, p_b, rho, n):
    samples, level = 4000, 0.95
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(samples):
        lo, hi = analysis.newcombe_paired_interval(*_correlated(p_a, p_b, rho, n, rng), level)
        covered += lo <= p_b - p_a <= hi
    coverage = covered / samples
    error = 3 * standard_errors(level, samples)
    discordance = p_a + p_b - 2 * (p_a * p_b + rho * np.sqrt(p_a * (1 - p_a) * p_b * (1 - p_b)))
    if discordance > 0.1:
        assert abs(coverage - level) <= error, coverage
    else:
        # Few discordant pairs (4% and 2% here): method 10 is conservative, its width set by
        # the margins' Wilson intervals while the difference only moves with the discordant
        # pairs (Newcombe 1998 reports the same tendency); it must not fall below the level.
        assert level - error <= coverage < 1.0, coverage


def test_t_tests_match_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 30), rng.normal(0.5, 2, 45)
    d, lo, hi, p = analysis.welch_test(a, b, 0.9)
    expected = stats.ttest_ind(b, a, equal_var=False)
    assert d == pytest.approx(b.mean() - a.mean()) and p == pytest.approx(expected.pvalue)
    assert (lo, hi) == pytest.approx(tuple(expected.confidence_interval(0.9)))
    b = a + rng.normal(0.3, 0.5, 30)
    d, lo, hi, p = analysis.paired_t_test(b - a)
    expected = stats.ttest_rel(b, a)
    assert d == pytest.approx(np.mean(b - a)) and p == pytest.approx(expected.pvalue)
    assert (lo, hi) == pytest.approx(tuple(expected.confidence_interval(0.95)))
    assert analysis.paired_t_test(np.zeros(5)) == (0.0, 0.0, 0.0, 1.0)


# --------------------------------------------------------------------------------------------
# compare: paired where it can be, as before where it cannot.
# --------------------------------------------------------------------------------------------


def test_compare_pairs_the_networks_of_shared_draws():
    runs = _counted(10, 15, 3, 72)
    row = analysis.compare(runs, "data.offset", shared_draws=True).iloc[0]
    assert row["paired"] and row["test"] == "mcnemar"
    assert (row["k_a_only"], row["k_b_only"]) == (15, 3)  # b saved 15 networks, killed 3
    assert (row["n_a"], row["k_a"], row["n_b"], row["k_b"]) == (100, 25, 100, 13)
    assert row["difference"] == pytest.approx(-0.12)
    assert row["p_value"] == pytest.approx(stats.binomtest(3, 18, 0.5).pvalue)
    lo, hi = analysis.newcombe_paired_interval(10, 15, 3, 72, 0.95)
    assert (row["difference_lo"], row["difference_hi"]) == (lo, hi)


def _unpaired(runs: pd.DataFrame, metric: str = "p_dead_end") -> pd.DataFrame:
    return analysis.compare(runs, "data.offset", metric, shared_draws=False)


@pytest.mark.parametrize("metric", ["p_dead_end", "final_loss"])
def test_compare_falls_back_to_independent_samples_when_the_inits_differ(metric):
    runs = _counted(10, 15, 3, 72)
    runs.loc[runs["data.offset"] == LEVELS[1], "init"] += 1  # b's networks are 1..100
    table = analysis.compare(runs, "data.offset", metric, shared_draws=True)
    assert not table["paired"].iloc[0] and table["test"].iloc[0] in ("z", "fisher", "welch")
    pd.testing.assert_frame_equal(table, _unpaired(runs, metric))
    assert table["k_a_only"].isna().all()


def test_unpaired_comparisons_keep_their_columns_and_values():
    runs = _counted(10, 15, 3, 72)
    table = _unpaired(runs)
    old = ["level_a", "level_b", "n_a", "k_a", "n_b", "k_b", "p_a", "p_b", "difference"]
    old += ["difference_lo", "difference_hi", "test", "p_value", "p_holm", "significant"]
    assert [c for c in table.columns if c in old] == old
    row = table.iloc[0]
    assert (row["k_a"], row["n_a"], row["k_b"], row["n_b"]) == (25, 100, 13, 100)
    assert row["test"] == analysis.two_proportion_test(25, 100, 13, 100)[0]
    assert row["p_value"] == analysis.two_proportion_test(25, 100, 13, 100)[1]
    assert row["difference_lo"] == analysis.newcombe_interval(25, 100, 13, 100)[0]


def test_a_pair_counts_only_if_valid_under_both_levels():
    runs = _counted(10, 15, 3, 72)
    at_a, at_b = runs["data.offset"] == LEVELS[0], runs["data.offset"] == LEVELS[1]
    runs.loc[at_a & runs["init"].isin([0, 10]), "diverged"] = True  # a both-dead, an a-only
    runs.loc[at_b & runs["init"].isin([30, 99]), "diverged"] = True  # a neither, a neither
    runs.loc[runs["diverged"], "dead_end"] = False
    row = analysis.compare(runs, "data.offset", shared_draws=True).iloc[0]
    assert (row["n_a"], row["n_b"]) == (96, 96)
    assert (row["k_a"], row["k_b"], row["k_a_only"], row["k_b_only"]) == (23, 12, 14, 3)
    diverged = analysis.compare(runs, "data.offset", "p_diverged", shared_draws=True).iloc[0]
    assert (diverged["n_a"], diverged["k_a_only"], diverged["k_b_only"]) == (100, 2, 2)


def test_means_paired_t_when_paired_and_welch_when_not():
    runs = _counted(10, 15, 3, 72)
    runs.loc[(runs["data.offset"] == LEVELS[1]) & (runs["init"] == 5), "diverged"] = True
    row = analysis.compare(runs, "data.offset", "final_loss", shared_draws=True).iloc[0]
    a = runs[(runs["data.offset"] == LEVELS[0]) & (runs["init"] != 5)]["final_loss"].to_numpy()
    b = runs[(runs["data.offset"] == LEVELS[1]) & ~runs["diverged"]]["final_loss"].to_numpy()
    assert row["test"] == "paired_t" and row["n_a"] == row["n_b"] == 99
    assert row["p_value"] == pytest.approx(stats.ttest_rel(b, a).pvalue)
    assert row["mean_b"] - row["mean_a"] == pytest.approx(row["difference"])
    assert pd.isna(row["k_a_only"]) and row["difference_hi"] < 0  # b's loss is lower by 0.1
    row = _unpaired(runs, "final_loss").iloc[0]
    a = runs[runs["data.offset"] == LEVELS[0]]["final_loss"]
    assert row["test"] == "welch" and (row["n_a"], row["n_b"]) == (100, 99)
    assert row["p_value"] == pytest.approx(stats.ttest_ind(b, a, equal_var=False).pvalue)


def test_any_numeric_column_is_compared_as_a_mean():
    """A column the caller adds (or initial_loss) is a mean, as final_loss is; booleans and
    settings are not."""
    runs = _counted(10, 15, 3, 72)
    runs["loss_copy"] = runs["final_loss"]
    for shared in (True, False):
        column = analysis.compare(runs, "data.offset", "loss_copy", shared_draws=shared)
        named = analysis.compare(runs, "data.offset", "final_loss", shared_draws=shared)
        assert column.drop(columns="metric").equals(named.drop(columns="metric"))
    for not_a_measure in ("dead_end", "model.width", "no_such_column"):
        with pytest.raises(ConfigError, match="numeric column"):
            analysis.compare(runs, "data.offset", not_a_measure)


def test_shared_draws_needs_every_folder_shared_and_one_seed():
    shared = ("shared", 0)
    assert analysis.shares_draws([shared, shared])
    assert not analysis.shares_draws([shared, ("shared", 1)])
    assert not analysis.shares_draws([shared, ("independent", 0)])
    before = results.Manifest(config={"seed": 0})  # before the pairing key: independent
    assert not analysis.shares_draws([shared, (before.pairing, 0)])
    assert not analysis.shares_draws([])


def _two_folders(tmp_path, seed_b: int, pairing_b: str | None):
    runs = _counted(10, 15, 3, 72)
    a = write_results_folder(
        tmp_path / "a", runs[runs["data.offset"] == LEVELS[0]], seed=0, pairing="shared"
    )
    config = {} if pairing_b is None else {"pairing": pairing_b}
    b = write_results_folder(
        tmp_path / "b", runs[runs["data.offset"] == LEVELS[1]], seed=seed_b, **config
    )
    return a, b


@pytest.mark.parametrize(
    "seed_b, pairing_b, paired",
    [(0, "shared", True), (1, "shared", False), (0, "independent", False), (0, None, False)],
)
def test_cli_pairs_folders_only_with_shared_draws_and_one_seed(tmp_path, seed_b, pairing_b, paired):
    a, b = _two_folders(tmp_path, seed_b, pairing_b)
    assert cli.main(["compare", str(a), str(b), "--by", "data.offset"]) == 0
    table = pd.read_csv(a / "comparisons" / "data.offset.csv")
    assert bool(table["paired"].iloc[0]) is paired
    assert table["test"].iloc[0] == ("mcnemar" if paired else "z")
    assert table["k_a_only"].isna().all() != paired


# --------------------------------------------------------------------------------------------
# --reference: the family of k - 1 comparisons with one level.
# --------------------------------------------------------------------------------------------


def _four_levels() -> pd.DataFrame:
    offsets = {"data.offset": [0.0, 1.0, 2.0, 3.0], "model.width": [1, 2]}
    runs = synthetic_runs(0.0, 0.3, n=120, **offsets)
    runs["final_loss"] = np.random.default_rng(3).normal(1, 0.2, len(runs))
    return runs


def test_reference_compares_each_other_level_with_it():
    runs = _four_levels()
    assert len(analysis.compare(runs, "data.offset")) == 2 * 6
    table = analysis.compare(runs, "data.offset", reference="2", shared_draws=True)
    assert len(table) == 2 * 3
    assert (table["level_a"] == 2.0).all() and set(table["level_b"]) == {0.0, 1.0, 3.0}
    np.testing.assert_allclose(table["p_holm"], analysis.holm(table["p_value"]))
    with pytest.raises(ConfigError, match=r"--reference 7: not a level of data.offset; levels: "):
        analysis.compare(runs, "data.offset", reference="7")


def _variants(tmp_path, **config):
    runs = synthetic_runs(0.0, 0.3, n=80, **{"train.learning_rate": [0.1, 0.01, 0.5]})
    runs["variant"] = runs["train.learning_rate"].map({0.1: "baseline", 0.01: "slow", 0.5: "a"})
    return write_results_folder(tmp_path / "variants", runs, pairing="shared", **config)


@pytest.mark.parametrize("config, reference", [({}, "baseline"), ({"reference": "slow"}, "slow")])
def test_by_variant_defaults_to_the_folders_reference(tmp_path, config, reference):
    folder = _variants(tmp_path, **config)
    assert cli.main(["compare", str(folder), "--by", "variant"]) == 0
    table = pd.read_csv(folder / "comparisons" / "variant.csv")
    assert len(table) == 2 and (table["level_a"] == reference).all()
    assert table["paired"].all()
    assert cli.main(["compare", str(folder), "--by", "variant", "--reference", "a"]) == 0
    assert (pd.read_csv(folder / "comparisons" / "variant.csv")["level_a"] == "a").all()


def test_unknown_reference_is_refused_in_one_line(tmp_path, capsys):
    folder = _variants(tmp_path)
    capsys.readouterr()
    for command in ("compare", "plan"):
        code = cli.main([command, str(folder), "--by", "variant", "--reference", "fast"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1, err
        assert "--reference fast: not a level of variant; levels: a, baseline, slow" in err


# --------------------------------------------------------------------------------------------
# Sample sizes.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.0, 0.01, 0.1, 0.3, 0.5])
@pytest.mark.parametrize("half_width", [0.01, 0.05])
def test_wilson_sample_size_is_the_fewest_that_reach_the_half_width(p, half_width):
    z = stats.norm.ppf(0.975)

    def half(n):
        return z / (1 + z**2 / n) * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))

    n = planning.wilson_sample_size(p, half_width)
    assert half(n) <= half_width < half(n - 1)
    if 0.1 <= p <= 0.9:  # close to the normal approximation away from 0 and 1
        assert n == pytest.approx(z**2 * p * (1 - p) / half_width**2, rel=0.02)


def test_two_proportion_sample_size_against_the_closed_form_and_a_simulation():
    # Fleiss, Levin and Paik's formula by hand: 0.2 against 0.3, alpha 0.05, power 0.8
    z_alpha, z_beta = 1.959963984540054, 0.8416212335729143
    spread = z_alpha * np.sqrt(2 * 0.25 * 0.75) + z_beta * np.sqrt(0.2 * 0.8 + 0.3 * 0.7)
    assert spread**2 / 0.1**2 == pytest.approx(293.15, abs=0.01)
    n = planning.two_proportion_sample_size(0.2, 0.3)
    assert n == 294
    # the z test of compare rejects with probability about 0.8 at that n
    rng, samples = np.random.default_rng(2), 4000
    k_a, k_b = rng.binomial(n, 0.2, samples), rng.binomial(n, 0.3, samples)
    pooled = (k_a + k_b) / (2 * n)
    z = (k_b - k_a) / n / np.sqrt(pooled * (1 - pooled) * 2 / n)
    power = np.mean(np.abs(z) > z_alpha)
    assert abs(power - 0.8) <= 4 * standard_errors(0.8, samples)


@pytest.mark.parametrize("discordance, difference", [(0.1, 0.05), (0.2, 0.05), (0.3, 0.1)])
def test_mcnemar_sample_size_gives_the_power_it_promises(discordance, difference):
    n = planning.mcnemar_sample_size(discordance, difference)
    z_alpha, z_beta = stats.norm.ppf(0.975), stats.norm.ppf(0.8)
    root = z_alpha * np.sqrt(discordance) + z_beta * np.sqrt(discordance - difference**2)
    assert n == int(np.ceil(root**2 / difference**2))  # Connor (1987) by hand
    # McNemar's (asymptotic) test at n pairs: discordant a_only and b_only with the difference
    rng, samples = np.random.default_rng(4), 4000
    cells = [(discordance - difference) / 2, (discordance + difference) / 2, 1 - discordance]
    a_only, b_only, _ = rng.multinomial(n, cells, size=samples).T
    z = (b_only - a_only) / np.sqrt(np.maximum(a_only + b_only, 1))
    power = np.mean(np.abs(z) > z_alpha)
    assert abs(power - 0.8) <= 4 * standard_errors(0.8, samples)


def test_plan_sizes_each_comparison_from_the_pilot():
    rng = np.random.default_rng(5)
    event_a = rng.random(400) < 0.3
    event_b = np.where(rng.random(400) < 0.1, ~event_a, event_a)  # 10% of pairs discordant
    runs = _paired_runs(event_a, event_b)
    table = planning.plan(runs, "data.offset", difference=0.05, shared_draws=True)
    row = table.iloc[0]
    p_a, psi = event_a.mean(), np.mean(event_a != event_b)
    assert row["paired"] and row["discordance"] == pytest.approx(psi)
    assert row["n_paired"] == planning.mcnemar_sample_size(psi, 0.05, 0.05, 0.8)
    assert row["n_unpaired"] == planning.two_proportion_sample_size(p_a, p_a + 0.05, 0.05, 0.8)
    assert row["n_paired"] < row["n_unpaired"] / 2  # what shared draws buy
    assert row["n_half_width_a"] == planning.wilson_sample_size(p_a, 0.01)
    unpaired = planning.plan(runs, "data.offset", difference=0.05).iloc[0]
    assert not unpaired["paired"] and pd.isna(unpaired["n_paired"]) and unpaired["note"]


def test_plan_splits_alpha_over_the_family():
    runs = _four_levels()
    every_pair = planning.plan(runs, "data.offset")
    assert len(every_pair) == 12 and (every_pair["alpha_each"] == 0.05 / 12).all()
    against = planning.plan(runs, "data.offset", reference=0)
    assert len(against) == 6 and (against["alpha_each"] == 0.05 / 6).all()


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--difference", "0"], "--difference 0.0: must be in (0, 1)"),
        (["--difference", "-0.1"], "--difference -0.1: must be in (0, 1)"),
        (["--power", "1.5"], "--power 1.5: must be in (0, 1)"),
        (["--power", "0"], "--power 0.0: must be in (0, 1)"),
        (["--half-width", "0"], "--half-width 0.0: must be in (0, 0.5)"),
        (["--alpha", "1"], "--alpha 1.0: must be in (0, 1)"),
        (["--metric", "final_loss"], "--metric final_loss: study plan sizes proportions"),
        (["--power", "high"], "argument --power: invalid float value"),
    ],
)
def test_plan_refuses_bad_flags_in_one_line(tmp_path, capsys, flags, fragment):
    folder = write_results_folder(tmp_path, _four_levels())
    capsys.readouterr()
    code = _status(["plan", str(folder), "--by", "data.offset", *flags])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and fragment in err, err


def _status(argv) -> int:
    """The exit status of ``study ARGV`` (argparse's usage errors exit on their own)."""
    try:
        return cli.main(argv)
    except SystemExit as stop:
        return int(stop.code or 0)


def test_plan_refuses_a_key_that_is_not_a_setting(tmp_path, capsys):
    folder = write_results_folder(tmp_path, _four_levels())
    capsys.readouterr()
    for key in ("model.nope", "init", "dead_end"):
        assert cli.main(["plan", str(folder), "--by", key]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--by {key}: not a setting of these results" in err
    assert cli.main(["plan", str(folder), "--by", "model.depth"]) == 2  # a single value
    assert "nothing to compare" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# The report's variants.
# --------------------------------------------------------------------------------------------


def test_report_shows_each_variant_against_the_reference(tmp_path):
    rng = np.random.default_rng(6)
    dead = rng.random(200) < 0.3
    saves = np.where(np.arange(200) < 30, False, dead)  # alive where the reference's died
    runs = pd.concat(
        [
            _paired_runs(dead, dead, levels=(0.0, 1.0)),  # the reference's networks, twice
            _paired_runs(dead, saves, levels=(0.0, 2.0)),
        ]
    )
    runs = runs.drop_duplicates(["data.offset", "init"]).reset_index(drop=True)
    runs["variant"] = runs["data.offset"].map({0.0: "baseline", 1.0: "same", 2.0: "saves"})
    folder = write_results_folder(tmp_path / "variants", runs, pairing="shared")
    report.write_report(folder)
    md = (folder / "report.md").read_text()
    assert (
        "[Variants](#variants)" in md
        and '<section id="variants">' in (folder / "report.html").read_text()
    )
    table = report.variant_table(runs, "baseline", shared_draws=True)
    saved_by = dict(zip(table["variant"], table["saved"], strict=True))
    killed_by = dict(zip(table["variant"], table["killed"], strict=True))
    assert saved_by == {"same": "0", "saves": str(int(dead[:30].sum()))}
    assert killed_by == {"same": "0", "saves": "0"}
    assert all(row in md for row in report._markdown_table(table).splitlines())
    unpaired = report.variant_table(runs, "baseline", shared_draws=False)
    assert (unpaired["saved"] == "n/a").all() and (unpaired["pairs"] == "n/a").all()


def test_report_without_variants_has_no_variants_section(tmp_path):
    folder = write_results_folder(tmp_path / "plain", _four_levels(), pairing="shared")
    report.write_report(folder)
    assert "ariants" not in (folder / "report.md").read_text()
    assert "ariants" not in (folder / "report.html").read_text()


# --------------------------------------------------------------------------------------------
# End to end: a tiny real study through compare and plan.
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("paired")
    assert run_cli(folder, tiny_config(), extra=["--no-figures"]) == 0  # compared, not drawn
    return folder / "out"


def test_compare_and_plan_on_a_real_run(tiny_run, capsys):
    manifest = results.ResultsFolder.open(tiny_run).manifest
    paired = analysis.shares_draws([(manifest.pairing, manifest.seed)])
    by = ["--by", "data.offset"]
    assert cli.main(["compare", str(tiny_run), *by, "--metric", "final_loss"]) == 0
    table = pd.read_csv(tiny_run / "comparisons" / "data.offset.final_loss.csv")
    assert len(table) == 4  # 2 widths x 2 init ranges, one pair of offsets each
    assert (table["paired"] == paired).all()
    assert set(table["test"]) == {"paired_t" if paired else "welch"}
    assert table["k_a_only"].isna().all() and table["mean_a"].notna().all()
    capsys.readouterr()
    assert cli.main(["plan", str(tiny_run), *by, "--difference", "0.1"]) == 0
    out = capsys.readouterr().out.splitlines()
    plan = pd.read_csv(tiny_run / "comparisons" / "plan_data.offset.csv")
    assert len(out) == len(plan) + 1 == 5 and out[-1].startswith("wrote ")
    assert out[0].startswith("data.offset 0.0 vs 2.0 (") and "per level independent" in out[0]
    assert plan["n_unpaired"].notna().all() and (plan["paired"] == paired).all()


def test_reference_and_metric_are_read_as_given():
    """An exact level name wins over one that differs only in case; the index of a network and
    its step of death are numbers but no measure to compare."""
    assert analysis._level_named(["A", "a"], "a") == ("a",)
    assert analysis._level_named(["A", "b"], "a") == ("A",)
    assert analysis._level_named([0.5, 2.0], "2") == (2.0,)
    runs = synthetic_runs(0.3, 0.1, n=50, **{"data.offset": [0.0, 2.0]})
    runs["death_step"] = -1
    for column in ("init", "death_step"):
        with pytest.raises(ConfigError, match=f"--metric {column}"):
            analysis.compare(runs, "data.offset", column)
