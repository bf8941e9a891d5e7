"""Issue 26's study script (scripts/reproduce_plasticity.py) at its --tiny size, once per module:
its tables against an independent pandas and SciPy recomputation from the run's own tables, and
(item 2) the three codebases' numbers, each computed by its own definition in NumPy from the
activations of the run's networks, beside our columns on the same networks."""

from __future__ import annotations

import sys
import tomllib

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from study import analysis, model, predictors, train
from study.config import load_study
from study.continual_backprop import initial_units
from study.engine import _stack_numerics
from study.remedies import TrainState
from tests.helpers import ROOT

SCRIPTS = ROOT / "scripts"
# float32 rounding of sums of at most a few hundred terms (as tests/test_plasticity.py).
FLOAT32_TOLERANCE = 1e3 * float(np.finfo(np.float32).eps) / 2
# The script's tables print 6 significant digits (reproduce_common.write_table): half a unit of
# the last, relative.
CSV_ROUNDING = 5e-6


@pytest.fixture(scope="module")
def script():
    sys.path.insert(0, str(SCRIPTS))
    try:
        import reproduce_plasticity

        yield reproduce_plasticity
    finally:
        sys.path.remove(str(SCRIPTS))


@pytest.fixture(scope="module")
def tiny(script, tmp_path_factory):
    """The script's --tiny run: its folder."""
    out = tmp_path_factory.mktemp("plasticity")
    assert script.main(["--tiny", "--out", str(out)]) == 0
    return out


def _runs(tiny) -> pd.DataFrame:
    return pd.read_parquet(tiny / "runs" / "scr" / "runs.parquet")


@pytest.mark.slow  # the tiny study run (about 14 s) and its replay: the default suite's time
def test_the_tiny_study_writes_every_table_and_figure(tiny, script):
    for name in ("summary", "auroc", "earliest", "claims", "runs_summary"):
        assert len(pd.read_csv(tiny / f"{name}.csv")) > 0, name
    assert {p.name for p in (tiny / "figures").iterdir()} == {
        "auroc_relu.png",
        "auroc_all.png",
        "probe_by_live_units.png",
    }
    assert all(p.stat().st_size > 1000 for p in (tiny / "figures").iterdir())
    claims = pd.read_csv(tiny / "claims.csv")
    assert claims["verdict"].str.len().gt(0).all() and claims["source"].notna().all()
    lines = (tiny / "verdicts.md").read_text().splitlines()
    assert len(lines) == len(claims) + 2  # the header and its rule
    findings = (tiny / "findings.md").read_text().splitlines()
    arm = [f"relu+{v}" for v in ("baseline", "cbp", "l2", "l2_init", "redo", "shrink_perturb")]
    assert [line.split("*")[1] for line in findings[::2]] == ["relu", *arm, "all"]
    auroc = pd.read_csv(tiny / "auroc.csv")
    curves = pd.read_parquet(tiny / "runs" / "scr" / "curves.parquet")
    metrics = [name for name in script.METRICS if name in curves]
    assert len(metrics) == len(script.METRICS)  # every metric is in the curves
    # (relu, the remedies arm's six learners and pooled) x outcomes x metrics x logged steps
    assert len(auroc) == 8 * len(script.OUTCOMES) * len(metrics) * curves["step"].nunique()
    summary = pd.read_csv(tiny / "summary.csv").set_index(script.ACTIVATION)
    assert summary.loc["all", "n_networks"] == summary.loc["relu", "n_networks"]  # arm apart


@pytest.mark.slow  # the tiny study run (about 14 s) and its replay: the default suite's time
def test_the_page_lines_trace_to_the_tables(tiny):
    """findings.md and verdicts.md go onto the results page: every number they print is in the
    study's tables, as tests/test_docs_numbers.py requires of the page."""
    from tests.test_docs_numbers import untraced

    values = [
        pd.to_numeric(frame[column], errors="coerce").dropna().to_numpy(float)
        for frame in (pd.read_csv(path) for path in sorted(tiny.glob("*.csv")))
        for column in frame.columns
    ]
    values = np.unique(np.abs(np.concatenate(values)))
    for name in ("findings.md", "verdicts.md"):
        assert untraced((tiny / name).read_text(), values) == [], name


def test_earliest_is_the_start_of_the_last_run_of_steps_apart_from_one_half(script):
    """An interval that leaves 0.5 once and comes back does not count; one that stays off 0.5 to
    the end counts from where it left, on either side."""
    lo = np.array([0.52, 0.40, 0.45, 0.51, 0.55, 0.60])
    part = pd.DataFrame({"auroc_lo": lo, "auroc_hi": lo + 0.2})
    assert script.sustained_from(part) == 3
    mirrored = pd.DataFrame({"auroc_lo": 1 - part["auroc_hi"], "auroc_hi": 1 - part["auroc_lo"]})
    assert script.sustained_from(mirrored) == 3
    assert script.sustained_from(part.iloc[:3]) is None


def _wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson's 95% interval, written out (Wilson 1927)."""
    z = stats.norm.ppf(0.975)
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return centre - half, centre + half


@pytest.mark.slow  # the tiny study run (about 14 s) and its replay: the default suite's time
def test_the_summary_matches_a_direct_recomputation(tiny, script):
    """Every count, proportion, mean, interval and test of summary.csv's ReLU row from
    runs.parquet with pandas and SciPy (Wilson written out; scipy's t interval and paired test)."""
    runs = _runs(tiny)
    row = pd.read_csv(tiny / "summary.csv").set_index("model.activation").loc["relu"]
    runs = runs[~runs["diverged"]]
    assert row["n_valid"] == len(runs) == 64 and row["n_probe_not_finite"] == 0
    fails = runs["probe_final_loss"] > script.FAIL_LOSS_FACTOR * runs["probe_fresh_final_loss"]
    dormant = runs["dormant_units_end_l1"] >= script.DORMANT_SHARE * runs["model.width"]
    events = {"dead_end": runs["dead_end"], "fails_probe": fails, "heavily_dormant": dormant}
    events["fails_probe_ratio"] = runs["probe_ratio"] < script.FAIL_RATIO
    for name, event in events.items():
        k = int(event.sum())
        assert row[f"k_{name}"] == k
        assert row[f"p_{name}"] == pytest.approx(k / len(runs), rel=CSV_ROUNDING)
        lo, hi = _wilson(k, len(runs))
        assert (row[f"p_{name}_lo"], row[f"p_{name}_hi"]) == pytest.approx(
            (lo, hi), rel=CSV_ROUNDING
        )
    ratio = runs["probe_ratio"]
    lo, hi = stats.t.interval(0.95, len(ratio) - 1, ratio.mean(), stats.sem(ratio))
    assert row["mean_probe_ratio"] == pytest.approx(ratio.mean(), rel=CSV_ROUNDING)
    assert (row["mean_probe_ratio_lo"], row["mean_probe_ratio_hi"]) == pytest.approx(
        (lo, hi), rel=CSV_ROUNDING
    )
    assert row["mean_probe_ratio_p"] == pytest.approx(
        stats.ttest_1samp(ratio, 1.0).pvalue, rel=CSV_ROUNDING
    )
    assert dormant.sum() >= 2  # the group comparison below is tested
    for group, members in (("dormant", dormant), ("not_dormant", ~dormant)):
        own = runs[members]
        paired = stats.ttest_rel(np.log(own["probe_final_loss"]),
                                 np.log(own["probe_fresh_final_loss"]))  # fmt: skip
        logs = np.log(own["probe_final_loss"] / own["probe_fresh_final_loss"])
        assert row[f"{group}_n"] == len(own)
        assert row[f"{group}_log_loss_ratio_p"] == pytest.approx(paired.pvalue, rel=CSV_ROUNDING)
        assert row[f"{group}_loss_ratio"] == pytest.approx(np.exp(logs.mean()), rel=CSV_ROUNDING)
        lo, hi = stats.t.interval(0.95, len(logs) - 1, logs.mean(), stats.sem(logs))
        assert row[f"{group}_loss_ratio_lo"] == pytest.approx(np.exp(lo), rel=CSV_ROUNDING)
        assert row[f"{group}_loss_ratio_hi"] == pytest.approx(np.exp(hi), rel=CSV_ROUNDING)


@pytest.mark.slow  # the tiny study run (about 14 s) and its replay: the default suite's time
def test_the_auroc_is_the_mann_whitney_statistic(tiny):
    """auroc.csv at the last step: U / (m n) of SciPy's Mann-Whitney test, for each metric and
    outcome of the ReLU networks."""
    runs = _runs(tiny)
    curves = pd.read_parquet(tiny / "runs" / "scr" / "curves.parquet")
    last = curves[curves["step"] == curves["step"].max()].set_index("init")
    auroc = pd.read_csv(tiny / "auroc.csv")
    auroc = auroc[(auroc["model.activation"] == "relu") & (auroc["step"] == curves["step"].max())]
    outcome = (runs["probe_final_loss"] > 1.5 * runs["probe_fresh_final_loss"]).to_numpy()
    checked = 0
    for _, row in auroc[auroc["outcome"] == "fails_probe"].iterrows():
        scores = last.loc[runs["init"], row["metric"]].to_numpy(float)
        if np.isnan(scores).any():
            continue
        u = stats.mannwhitneyu(scores[outcome], scores[~outcome]).statistic
        assert row["auroc"] == pytest.approx(
            u / (outcome.sum() * (~outcome).sum()), rel=CSV_ROUNDING
        )
        assert row["auroc_lo"] <= row["auroc"] <= row["auroc_hi"]
        checked += 1
    assert checked >= 10


def test_the_script_and_the_report_share_one_definition_of_failing_the_probe(script):
    """The script's outcome is analysis.fails_probe (the report's): the loss factor it prints,
    and a network at, above or without a finite probe loss, as the docstring states."""
    assert script.FAIL_LOSS_FACTOR == analysis.PROBE_FAIL_LOSS_FACTOR
    assert script.sustained_from is analysis.sustained_from
    fresh = np.array([1.0, 1.0, 1.0, 2.0])
    final = np.array([1.0, 1.0 + 1e-9, np.inf, np.nan]) * analysis.PROBE_FAIL_LOSS_FACTOR
    runs = pd.DataFrame({"probe_final_loss": final, "probe_fresh_final_loss": fresh,
                         "probe_ratio": 1.0, "diverged": False, "dead_end": False,
                         "dormant_units_end_l1": 0, "model.width": 5})  # fmt: skip
    expected = [False, True, True, True]
    assert script.outcomes(runs)["fails_probe"].tolist() == expected
    assert analysis.fails_probe(runs).tolist() == expected


@pytest.mark.slow  # the tiny study run (about 14 s) and its replay: the default suite's time
def test_the_report_section_gives_the_script_numbers(tiny, script):
    """study report's "Which metric predicts lost plasticity" on the tiny run: the script's
    earliest.csv (AUROC at the last step, its interval, the earliest step) for both outcomes and
    every metric, and the networks failing the probe as summary.csv counts them."""
    folder = tiny / "runs" / "scr"
    runs, curves = _runs(tiny), pd.read_parquet(folder / "curves.parquet")
    ours = predictors.metric_rows(curves, runs, analysis.curve_metrics(curves))
    theirs = pd.read_csv(tiny / "earliest.csv")
    theirs = theirs[theirs["model.activation"] == "relu"]
    names = {"fails_probe": "fails the probe", "dead_end": "dead at the end"}
    theirs = theirs[theirs["outcome"].isin(names)].assign(outcome=theirs["outcome"].map(names))
    assert set(ours["metric"]) == set(theirs["metric"])
    merged = ours.merge(theirs, on=["outcome", "metric"], validate="one_to_one",
                        suffixes=("", "_script"))  # fmt: skip
    assert len(merged) == len(ours) == 2 * len(set(ours["metric"]))
    # the report gives no interval (and no earliest step) with under two networks on a side
    few = merged[["n_with", "n_without"]].min(axis=1) < predictors.MIN_PER_SIDE
    assert merged.loc[few, ["auroc_lo", "auroc_hi", "first_step"]].isna().all(axis=None)
    merged = merged[~few]
    assert len(merged) >= len(set(ours["metric"]))  # failing the probe, at least, compared
    for mine, script_column in (("auroc", "auroc_last"), ("auroc_lo", "auroc_last_lo"),
                                ("auroc_hi", "auroc_last_hi"), ("first_step", "first_step_script"),
                                ("step", "last_step")):  # fmt: skip
        np.testing.assert_allclose(merged[mine], merged[script_column], rtol=CSV_ROUNDING)
    k_fails = pd.read_csv(tiny / "summary.csv").set_index("model.activation").loc["relu"]
    fails = ours[ours["outcome"] == "fails the probe"]
    assert (fails["n_with"] == k_fails["k_fails_probe"]).all()


# ----------------------------------------------------------------------------------------------
# Item 2: the three codebases' numbers on the same networks.


def _tiny_setting(script):
    """The tiny run's one setting (the config with the script's --tiny overrides)."""
    config = tomllib.loads((ROOT / "study" / "configs" / script.CONFIG).read_text())
    for override in script.TINY:
        key, value = override.split("=", 1)
        section, name = key.split(".")
        config[section][name] = tomllib.loads(f"v = {value}")["v"]
    config["n_inits"] = 64
    plan = load_study(config)
    (setting,) = plan.settings
    return plan, setting


def _networks(script):
    """The tiny run's 64 networks at the start and at the end, and each one's check data then:
    drawn by the engine's own start program and trained by its own step and stream source
    (study.train), interval by interval as the run does. ``(start, end)``, each
    ``(flat params [64, p], inputs [64, dim, n])``."""
    plan, setting = _tiny_setting(script)
    structure, numeric = setting.structure, setting.numeric
    numerics = _stack_numerics([setting], structure.dtype)
    draw_ids = train.draw_ids_of([setting.setting_id], "shared")
    start_program = train.make_start(train.start_structure(structure))
    _, drawn = start_program(np.uint32(plan.seed), numerics, draw_ids, jnp.arange(64), None)
    drawn = jax.tree.map(lambda a: a[0], drawn)

    def one(start: train.Start):
        optimizer = train.make_optimizer(structure.optimizer, numeric)
        step = train.make_step(structure, numeric, optimizer, start.params, start.key_fresh)
        source = train.stream_source(structure, start.key_stream, step)
        state = TrainState(start.params, optimizer.init(start.params), initial_units(structure))

        def interval(carry, first):  # one compiled interval, as the engine's scan over checks
            return source.learn(*carry, first, structure.log_every), None

        firsts = jnp.arange(0, structure.steps, structure.log_every, dtype=jnp.int32)
        (state, feed), _ = jax.lax.scan(interval, (state, source.feed), firsts)
        begin = source.check_data(source.feed, 0).inputs
        return (start.params, begin), (state.params, source.check_data(feed, structure.steps))

    (params0, inputs0), (params, data) = jax.jit(jax.vmap(one))(drawn)
    return structure, (params0, inputs0), (params, data)


def _features(structure, flat: np.ndarray, inputs: np.ndarray):
    """``(pre-activations, activations)`` of the one hidden layer, ``float64[units, n]``, in
    NumPy (ReLU)."""
    (weights, bias), _ = model.unflatten(structure, jnp.asarray(flat))
    pre = np.asarray(weights, np.float64) @ np.asarray(inputs, np.float64)
    pre = pre + np.asarray(bias, np.float64)[:, None]
    return pre, np.maximum(pre, 0)


def dohare(features: np.ndarray) -> dict[str, float]:
    """Dohare et al.'s numbers of one layer, ``features: [n, units]`` as their code holds them
    (lop/utils/miscellaneous.py): the dormant share (nonzero on fewer than 1% of the inputs),
    the "stable rank" (smallest k with 99% of the sum of singular values) and the effective
    rank. All-zero features (a dead layer), where their code divides by 0, get our convention:
    ranks 0."""
    s = np.linalg.svd(features, compute_uv=False)
    if not s.any():
        share = float(np.mean((features != 0).mean(axis=0) < 0.01))
        return {"dormant_share": share, "stable_rank": 0, "effective_rank": 0.0, "margin": 1.0}
    cumulative = np.cumsum(np.sort(s)[::-1]) / np.sum(s)
    p = s / np.sum(np.abs(s))
    p = p[p > 0]
    return {
        "dormant_share": float(np.mean((features != 0).mean(axis=0) < 0.01)),
        "stable_rank": int(np.argmax(cumulative >= 0.99) + 1),
        "effective_rank": float(np.exp(-np.sum(p * np.log(p)))),
        "margin": float(np.min(np.abs(cumulative - 0.99))),
    }


def sokar(features: np.ndarray, tau: float) -> int:
    """Sokar et al.'s dormant units of one layer (ReDo's estimate_neuron_score): the score
    ``mean|h| / (mean over the layer of it + 1e-9)`` at most ``tau``."""
    score = np.abs(features).mean(axis=0)
    return int(np.sum(score / (score.mean() + 1e-9) <= tau))


def plasticine(features: np.ndarray) -> dict[str, float]:
    """Plasticine's numbers of one ReLU layer (plasticine/metrics.py): the dormant ratio (the
    share of zero entries) and the "stable rank" ``sum(cumsum(s)/sum(s) < 0.99) + 1``."""
    s = np.sort(np.linalg.svd(features, compute_uv=False))[::-1]
    rank = int(np.sum(np.cumsum(s) / np.sum(s) < 0.99) + 1) if s.any() else 0  # (as dohare())
    return {"dormant_ratio": float(np.mean(features == 0)), "stable_rank": rank}


def _codebases(structure, params, inputs, tau: float) -> pd.DataFrame:
    """A row per network: the three codebases' numbers of its hidden layer."""
    rows = []
    for flat, x in zip(np.asarray(params), np.asarray(inputs), strict=True):
        _, h = _features(structure, flat, x)
        theirs = dohare(h.T)
        rows.append(
            {f"dohare_{k}": v for k, v in theirs.items()}
            | {f"plasticine_{k}": v for k, v in plasticine(h.T).items()}
            | {"sokar_dormant": sokar(h.T, tau)}
        )
    return pd.DataFrame(rows)


@pytest.mark.slow  # the tiny study run (about 14 s) and its replay: the default suite's time
def test_the_codebases_numbers_on_the_same_networks_are_our_columns(tiny, script):
    """Item 2's check: on the tiny run's 64 networks, at the start and at the end, Dohare's
    dormant share, Sokar's dormant count and Plasticine's dormant ratio (ReLU) are our
    rarely_active_units_l1 / width, dormant_units_l1 and zero_share_l1; both codebases'
    "stable rank" is our srank_l1 and Dohare's effective rank our effective_rank_l1 (to float32
    rounding), as docs/plasticity_metrics.md's table says."""
    structure, begin, end = _networks(script)
    runs = _runs(tiny).set_index("init").sort_index()
    curves = pd.read_parquet(tiny / "runs" / "scr" / "curves.parquet")
    # the same networks: the replay's final networks have the dead units the run recorded
    (weights, bias), _ = jax.vmap(lambda f: model.unflatten(structure, f))(end[0])
    dead = np.asarray(jnp.all(jnp.einsum("iud,idn->iun", weights, end[1].inputs)
                              + bias[..., None] <= 0, axis=-1).sum(-1))  # fmt: skip
    np.testing.assert_array_equal(dead, runs["dead_units_end_l1"].to_numpy())
    width, tau = structure.width, float(runs["train.dormant_tau"].iloc[0])
    for step, (params, inputs) in ((0, begin), (structure.steps, (end[0], end[1].inputs))):
        ours = curves[curves["step"] == step].set_index("init").sort_index()
        theirs = _codebases(structure, params, inputs, tau)
        np.testing.assert_allclose(theirs["dohare_dormant_share"],
                                   ours["rarely_active_units_l1"] / width)  # fmt: skip
        np.testing.assert_array_equal(theirs["sokar_dormant"], ours["dormant_units_l1"])
        # ours is a float32 mean of 0/1 entries: the count over n to float32 rounding
        np.testing.assert_allclose(theirs["plasticine_dormant_ratio"], ours["zero_share_l1"],
                                   rtol=float(np.finfo(np.float32).eps))  # fmt: skip
        clear = theirs["dohare_margin"].to_numpy() > 1e-4  # not on the 99% boundary
        assert clear.mean() > 0.9
        for name in ("dohare_stable_rank", "plasticine_stable_rank"):
            np.testing.assert_array_equal(theirs[name][clear], ours["srank_l1"][clear])
        np.testing.assert_allclose(theirs["dohare_effective_rank"], ours["effective_rank_l1"],
                                   rtol=FLOAT32_TOLERANCE)  # fmt: skip
    assert (theirs["sokar_dormant"] > 0).any() and (theirs["dohare_dormant_share"] > 0).any()


def test_remedies_are_compared_with_their_control_on_the_same_networks(script):
    """remedies.csv: a remedy against the plain control, network by network (init index): the
    discordant counts, McNemar's exact p (scipy's binomial test on them) and the paired t of the
    log loss ratios (scipy's ttest_rel)."""
    from scipy import stats

    rng = np.random.default_rng(3)
    n = 200
    control = rng.random(n) < 0.6
    remedy = control & (rng.random(n) < 0.3) | (~control & (rng.random(n) < 0.05))
    logs = {"baseline": rng.normal(0.5, 0.3, n), "cbp": rng.normal(-0.2, 0.3, n)}
    valid = pd.concat(
        [pd.DataFrame({script.ACTIVATION: script.REMEDY_PREFIX + name, "init": np.arange(n),
                       "fails_probe": fails, "probe_finite": True, "log_loss_ratio": logs[name]})
         for name, fails in (("baseline", control), ("cbp", remedy))]
        + [pd.DataFrame({script.ACTIVATION: "relu", "init": np.arange(n), "fails_probe": True,
                         "probe_finite": True, "log_loss_ratio": 0.0})],  # not in the arm
        ignore_index=True,
    )  # fmt: skip
    table = script.remedies_against_control(valid)
    assert list(table[script.ACTIVATION]) == ["relu+cbp"]
    row = table.iloc[0]
    control_only, remedy_only = int((control & ~remedy).sum()), int((~control & remedy).sum())
    assert (row["k_control_only"], row["k_remedy_only"]) == (control_only, remedy_only)
    m = control_only + remedy_only
    direct = stats.binomtest(min(control_only, remedy_only), m, 0.5).pvalue
    assert row["p_value"] == pytest.approx(direct, rel=1e-9)
    assert row["difference"] == pytest.approx(remedy.mean() - control.mean())
    assert row["difference_lo"] < row["difference"] < row["difference_hi"]
    t = stats.ttest_rel(logs["cbp"], logs["baseline"])
    assert row["p_value_loss"] == pytest.approx(t.pvalue, rel=1e-9)
    assert row["loss_ratio_vs_control"] == pytest.approx(
        np.exp(np.mean(logs["cbp"] - logs["baseline"]))
    )
