"""The plasticity metrics (study.plasticity) against NumPy and jax.grad, and in the engine: the
ranks bounded by the live units, and every column of a run without them unchanged."""

import functools
import tomllib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import study
from study import analysis, model, plasticity
from study.config import load_study, make_setting
from study.data import make_data

# float32's unit roundoff: the metrics are sums of at most a few hundred terms of singular values
# that LAPACK computes to a few units of it relative to the largest, so 1e3 units bound them.
FLOAT32_TOLERANCE = 1e3 * float(np.finfo(np.float32).eps) / 2


def _relu_features(seed: int, outputs: int, n: int, dead: int) -> np.ndarray:
    """``float32[outputs, n]``: ReLU of a random affine map of Gaussian inputs, the last
    ``dead`` rows silent on every input (units dead on the data)."""
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(3, n))
    weights, bias = rng.normal(size=(outputs, 3)), rng.normal(size=(outputs, 1))
    bias[outputs - dead :] = -100.0
    return np.maximum(weights @ inputs + bias, 0).astype(np.float32)


# Features whose singular values are all 0 or well above sqrt(eps) * s_1, where
# plasticity.singular_values is accurate to float rounding ...
FEATURES = [
    _relu_features(0, 5, 64, 0),
    _relu_features(1, 5, 64, 2),
    _relu_features(2, 16, 200, 5),
    np.random.default_rng(4).normal(size=(8, 50)).astype(np.float32),
]
# ... and one with more units than inputs (rank at most 30 of 40) and singular values down to
# 7e-4 s_1, as a collapsed layer has.
COLLAPSED = _relu_features(3, 40, 30, 3)


def _numpy_ranks(s: np.ndarray) -> tuple[float, int, float]:
    """Effective rank, srank (99%) and stable rank of singular values ``s`` (largest first),
    written directly in float64."""
    s = s.astype(np.float64)
    p = s / s.sum()
    p = p[p > 0]
    effective = float(np.exp(-(p * np.log(p)).sum()))
    cumulative = np.cumsum(s) / s.sum()
    # the test's matrices are not on the 99% boundary, so float32 rounding cannot move srank
    assert np.min(np.abs(cumulative - plasticity.SRANK_SHARE)) > 1e-4
    srank = int(np.argmax(cumulative >= plasticity.SRANK_SHARE)) + 1
    return effective, srank, float((s**2).sum() / s[0] ** 2)


def _numpy_metrics(features: np.ndarray) -> tuple[float, int, float]:
    """The three ranks from NumPy's float64 SVD of ``features``."""
    return _numpy_ranks(np.linalg.svd(features.astype(np.float64), compute_uv=False))


def _check_ranks(got: tuple, expected: tuple, tolerance: float) -> None:
    assert float(got[0]) == pytest.approx(expected[0], rel=tolerance)
    assert int(got[1]) == expected[1]
    assert float(got[2]) == pytest.approx(expected[2], rel=tolerance)


@jax.jit
def _spectrum(features):
    """The singular values of ``features`` and their three ranks (one compile per shape)."""
    singular = plasticity.singular_values(features)
    ranks = (
        plasticity.effective_rank(singular),
        plasticity.srank(singular),
        plasticity.stable_rank(singular),
    )
    return singular, ranks


def _check_singular_values(features: np.ndarray, singular) -> np.ndarray:
    """``singular`` (plasticity.singular_values of ``features``) against NumPy's SVD, within
    the bound test_singular_values_and_ranks_match_numpy derives; the values in float64."""
    reference = np.linalg.svd(features.astype(np.float64), compute_uv=False)
    values = np.asarray(singular, np.float64)
    bound = features.shape[0] * np.sqrt(np.finfo(np.float32).eps) * reference[0]
    np.testing.assert_allclose(values[: len(reference)], reference, rtol=0, atol=bound)
    live = int(np.sum(np.any(features != 0, axis=1)))
    assert np.all(values[min(live, features.shape[1]) :] == 0)  # the zeros the shape implies
    return values


@pytest.mark.parametrize("features", [*FEATURES, COLLAPSED], ids=lambda f: str(f.shape))
def test_singular_values_and_ranks_match_numpy(features):
    """The singular values against NumPy's SVD: each within sqrt(eps) * s_1 times the number of
    rows (a Rayleigh quotient of the Gram matrix's eigenvector is its squared singular value to
    eps * s_1^2), the zeros that dead rows and the shape imply exactly 0; the three ranks of the
    same values against the formulas written in NumPy, to float rounding; end to end (features
    to ranks, against NumPy's SVD) to float rounding where the spectrum is well separated; and
    a layer with k live units has rank <= k."""
    singular, ranks = _spectrum(jnp.asarray(features))
    values = _check_singular_values(features, singular)
    _check_ranks(ranks, _numpy_ranks(values), FLOAT32_TOLERANCE)
    if features is not COLLAPSED:
        _check_ranks(ranks, _numpy_metrics(features), FLOAT32_TOLERANCE)
    live = int(np.sum(np.any(features != 0, axis=1)))
    assert np.linalg.matrix_rank(features) <= live
    assert np.count_nonzero(values) <= live
    assert float(ranks[0]) <= live * (1 + FLOAT32_TOLERANCE)


def test_ranks_of_all_zero_features_are_zero():
    singular, ranks = _spectrum(jnp.zeros((4, 10), jnp.float32))
    assert not np.any(singular) and [float(rank) for rank in ranks] == [0.0, 0.0, 0.0]


def _network(depth: int, width: int, seed: int, **changes):
    """A random network (mse, offset data so that some ReLU units are dead) and its data."""
    setting = make_setting(
        **changes,
        data_kind="gaussian",
        data_offset=1.0,
        data_n_samples=40,
        model_depth=depth,
        model_width=width,
        model_init="he_normal",
        model_bias_init="normal",
        model_bias_scale=1.0,
        train_loss="mse",
        train_plasticity_metrics="all",
    )
    structure, numeric = setting.structure, setting.numeric

    @jax.jit
    def draw(key):
        key_data, key_params, key_start = jax.random.split(key, 3)
        data = make_data(structure, numeric, key_data, None)
        params = model.init_params(structure, numeric, key_params)
        return params, model.init_params(structure, numeric, key_start), data

    return structure, numeric, *draw(jax.random.key(seed))


@functools.partial(jax.jit, static_argnums=0)
def _measured(structure, numeric, params, initial, data):
    """``plasticity`` of the network, its forward pass, ``jax.grad`` of ``model.loss_fn`` and
    the singular values of each hidden layer's features: one compile."""
    fwd = model.forward(structure, numeric, params, data.inputs)
    grads = jax.grad(model.loss_fn, argnums=2)(
        structure, numeric, params, data.inputs, data.targets
    )
    spectra = [plasticity.singular_values(h) for h in fwd.activations[1:]]
    return plasticity.plasticity(structure, numeric, params, initial, data), fwd, grads, spectra


@pytest.mark.parametrize(
    "seed, changes",
    [
        (0, {}),
        (1, {}),
        # the other branches of the gradient: two outputs per unit, a normalization, no bias
        pytest.param(  # (a compile of its own)
            2,
            {"model_activation": "crelu", "model_norm": "layer", "model_bias": False},
            marks=pytest.mark.slow,
        ),
    ],
)
def test_plasticity_of_a_network_matches_numpy_and_jax_grad(seed, changes):
    """Every metric of one random two-layer network, against NumPy on its activations and
    jax.grad of the engine's loss (model.loss_fn, an independent formulation)."""
    structure, numeric, params, initial, data = _network(2, 6, seed, **changes)
    tau = 0.5
    numeric = numeric._replace(dormant_tau=tau)
    got, fwd, grads, spectra = _measured(structure, numeric, params, initial, data)
    if not structure.use_bias:  # fixed at 0, not trained (model.flat_gradient's zeros)
        grads = [(layer[0], 0 * layer[1], *layer[2:]) for layer in grads]
    flat = np.concatenate([np.asarray(g).ravel() for layer in grads for g in layer])
    assert float(got.grad_norm) == pytest.approx(np.linalg.norm(flat), rel=FLOAT32_TOLERANCE)
    for k in range(structure.depth):
        features = np.asarray(fwd.activations[k + 1])
        ranks = (got.effective_rank[k], got.srank[k], got.stable_rank[k])
        values = _check_singular_values(features, spectra[k])
        _check_ranks(ranks, _numpy_ranks(values), FLOAT32_TOLERANCE)
        weights = np.asarray(params[k][0], np.float64)
        assert float(got.weight_magnitude[k]) == pytest.approx(
            np.abs(weights).mean(), rel=FLOAT32_TOLERANCE
        )
        pairs = zip(params[k], initial[k], strict=True)
        change = np.concatenate([np.ravel(np.asarray(a, np.float64) - b) for a, b in pairs])
        assert float(got.distance_from_start[k]) == pytest.approx(
            np.linalg.norm(change), rel=FLOAT32_TOLERANCE
        )
        per_unit = np.abs(np.asarray(grads[k][0], np.float64)).mean(axis=1)
        score = per_unit / per_unit.mean()
        assert np.min(np.abs(score - tau)) > 1e-4  # not on the boundary
        assert int(got.grad_dormant_units[k]) == int(np.sum(score <= tau))
        positive = (np.asarray(fwd.pre_activations[k]) > 0).mean(axis=1)
        assert int(got.always_active_units[k]) == int(np.sum(positive >= 0.99))


TINY_RUN = dict(
    data_offset=2.0,
    data_n_samples=32,
    model_depth=1,
    model_width=6,
    model_init_range=1.0,
    train_steps=40,
    train_log_every=10,
    train_learning_rate=0.05,
    train_curves=True,
    train_intervention="l2_init",  # two strengths: the probe must not read them
)
L2_INIT = (0.0, 1.0)
MEASURED = {"train_plasticity_metrics": "all", "train_probe_steps": 10}


def _tiny(**changes):
    """TINY_RUN at both L2-init strengths (24 initializations each, many with dead units)."""
    settings = [make_setting(**TINY_RUN, train_l2_init=s, **changes) for s in L2_INIT]
    return study.simulate_curves(settings, n_inits=24, seed=7)


@pytest.fixture(scope="module")
def tiny_runs():
    """TINY_RUN plain and with every metric and the probe: ``{name: (runs, curves)}`` (the
    engine's tests of both share these two compiles)."""
    return {"plain": _tiny(), "measured": _tiny(**MEASURED)}


def _assert_same_columns(plain: pd.DataFrame, table: pd.DataFrame, *switched: str) -> None:
    """Every column of ``plain`` but the ``switched`` setting keys is in ``table``, bit for
    bit."""
    shared = [name for name in plain.columns if name not in switched]
    pd.testing.assert_frame_equal(table[shared], plain[shared], check_exact=True)


SWITCHES = ("train.plasticity_metrics", "train.probe_steps")


def test_turning_metrics_and_probe_on_leaves_every_column_bit_identical(tiny_runs):
    plain_runs, plain_curves = tiny_runs["plain"]
    runs, curves = tiny_runs["measured"]
    assert not any(name.startswith(("grad_norm", "probe_")) for name in plain_runs.columns)
    assert "grad_norm_end" in runs and "effective_rank_l1" in curves and "probe_ratio" in runs
    _assert_same_columns(plain_runs, runs, *SWITCHES)
    _assert_same_columns(plain_curves, curves, *SWITCHES)


def test_the_probe_is_paired_across_settings(tiny_runs):
    """At each index both L2-init strengths probe on the same task against the same fresh
    network (the probe trains without the remedy, so the fresh network's drop is the same
    bits), while their trained networks differ."""
    runs, _ = tiny_runs["measured"]
    names = ["loss_drop", "fresh_loss_drop", "ratio", "final_loss", "fresh_final_loss"]
    assert runs[[f"probe_{name}" for name in names]].notna().all().all()
    weak, strong = (group for _, group in runs.groupby("train.l2_init"))
    fresh = "probe_fresh_loss_drop"
    np.testing.assert_array_equal(weak[fresh].to_numpy(), strong[fresh].to_numpy())
    assert not np.array_equal(weak["probe_loss_drop"], strong["probe_loss_drop"])


def test_ranks_are_bounded_by_the_live_units_and_the_end_is_the_last_check(tiny_runs):
    runs, curves = tiny_runs["measured"]
    live = runs["model.width"] - runs["dead_units_end_l1"]
    assert (runs["dead_units_end_l1"] > 0).any() and (live > 0).any()  # the bound is tested
    bound = live * (1 + FLOAT32_TOLERANCE)
    assert (runs["effective_rank_end_l1"] <= bound).all()
    assert (runs["srank_end_l1"] <= live).all()
    assert (runs["stable_rank_end_l1"] <= bound).all()
    last = curves[curves["step"] == curves["step"].max()].reset_index(drop=True)
    for name in ("effective_rank", "srank", "grad_norm", "distance_from_start"):
        column = name if name == "grad_norm" else f"{name}_l1"
        end = name + "_end" if name == "grad_norm" else f"{name}_end_l1"
        np.testing.assert_array_equal(runs[end].to_numpy(), last[column].to_numpy())
    assert (curves.loc[curves["step"] == 0, "distance_from_start_l1"] == 0).all()


@pytest.mark.slow  # a third compile; the default suite checks "none" and "all" (tiny_runs)
def test_without_ranks_leaves_the_rank_columns_out(tiny_runs):
    runs, curves = _tiny(**{**MEASURED, "train_plasticity_metrics": "without_ranks"})
    assert "grad_norm_end" in runs and "weight_magnitude_l1" in curves
    assert not any("rank" in name for name in [*runs.columns, *curves.columns])
    everything, everything_curves = tiny_runs["measured"]
    _assert_same_columns(runs, everything, *SWITCHES)
    _assert_same_columns(curves, everything_curves, *SWITCHES)


@pytest.mark.slow  # three compiles of a stream (about 20 s each on 2 cores)
def test_a_stream_with_metrics_and_probe_is_bit_identical_and_chunk_free():
    """A stream, the plasticity metrics and the probe on: every column of the plain run is the
    same bits, and the new columns do not change with the chunk size (the ranks to float
    rounding)."""
    small = dict(
        data_kind="slowly_changing",
        data_flip_every=50,
        data_probe_size=64,
        model_width=5,
        model_depth=2,
        train_steps=200,
        train_log_every=50,
    )
    plain_runs, plain_curves = study.simulate_curves(make_setting(**small), n_inits=20, seed=5)
    measured = make_setting(**small, train_plasticity_metrics="all", train_probe_steps=50)
    runs, curves = study.simulate_curves(measured, n_inits=20, seed=5)
    for plain, table in ((plain_runs, runs), (plain_curves, curves)):
        shared = [c for c in plain if c not in ("train.plasticity_metrics", "train.probe_steps")]
        pd.testing.assert_frame_equal(table[shared], plain[shared], check_exact=True)
    assert runs["probe_ratio"].notna().all() and curves["srank_l2"].notna().all()
    chunked_runs, chunked_curves = study.simulate_curves(measured, n_inits=20, seed=5, chunk_size=7)
    for chunked, table in ((chunked_runs, runs), (chunked_curves, curves)):
        # the ranks' Gram matrix and eigenvectors are XLA's matmul and eigh, whose last bits
        # may change with the batch shape (study.plasticity): equal to float rounding there,
        # every other column bit for bit
        float_ranks = [c for c in table if c.startswith(("effective_rank_", "stable_rank_"))]
        exact = [c for c in table if c not in float_ranks]
        pd.testing.assert_frame_equal(chunked[exact], table[exact], check_exact=True)
        pd.testing.assert_frame_equal(
            chunked[float_ranks], table[float_ranks], check_exact=False, rtol=FLOAT32_TOLERANCE
        )


STUDY_CONFIG = Path(study.__file__).parent / "configs" / "plasticity_scr.toml"


def test_the_plasticity_study_config_is_valid_and_measures_everything():
    plan = load_study(STUDY_CONFIG)
    assert len(plan.settings) * plan.n_inits >= 10_000  # the size
    for setting in plan.settings:
        assert setting.structure.plasticity_metrics == "all"
        assert setting.structure.probe_steps > 0


@pytest.mark.slow  # a stream compile per activation
def test_the_plasticity_study_runs_small_and_its_metrics_predict():
    """The study's config at a tiny size, end to end: curves with every metric, the probe, and
    analysis.metric_auroc of each metric for failing the probe."""
    config = tomllib.loads(STUDY_CONFIG.read_text())
    config["n_inits"] = 20
    config["data"] |= {"flip_every": 50, "probe_size": 64}
    config["model"]["activation"] = ["relu"]
    config["train"] |= {"steps": 200, "log_every": 50, "probe_steps": 50}
    runs, curves = study.simulate_curves(load_study(config))
    failed = runs["probe_ratio"] < 0.5
    metrics = ["effective_rank_l1", "srank_l1", "grad_norm", "dead_units_l1"]
    table = analysis.metric_auroc(curves, runs, failed, metrics)
    assert len(table) == len(metrics) * curves["step"].nunique()
    assert table["n_with"].add(table["n_without"]).eq(20).all()
