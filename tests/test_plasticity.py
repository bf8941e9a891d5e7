"""The plasticity metrics (study.plasticity) against NumPy and jax.grad, and in the engine: the
ranks bounded by the live units, and every column of a run without them unchanged."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import study
from study import model, plasticity
from study.config import make_setting
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


def _ranks_of(singular) -> tuple:
    return (
        plasticity.effective_rank(singular),
        plasticity.srank(singular),
        plasticity.stable_rank(singular),
    )


@pytest.mark.parametrize("features", [*FEATURES, COLLAPSED], ids=lambda f: str(f.shape))
def test_singular_values_and_ranks_match_numpy(features):
    """The singular values against NumPy's SVD: each within sqrt(eps) * s_1 times the number of
    rows (a Rayleigh quotient of the Gram matrix's eigenvector is its squared singular value to
    eps * s_1^2), the zeros that dead rows and the shape imply exactly 0; the three ranks of the
    same values against the formulas written in NumPy, to float rounding; and a layer with k
    live units has rank <= k."""
    singular = plasticity.singular_values(jnp.asarray(features))
    reference = np.linalg.svd(features.astype(np.float64), compute_uv=False)
    rows = features.shape[0]
    values = np.asarray(singular, np.float64)
    bound = rows * np.sqrt(np.finfo(np.float32).eps) * reference[0]
    np.testing.assert_allclose(values[: len(reference)], reference, rtol=0, atol=bound)
    live = int(np.sum(np.any(features != 0, axis=1)))
    assert np.all(values[min(live, features.shape[1]) :] == 0)  # the zeros the shape implies
    _check_ranks(_ranks_of(singular), _numpy_ranks(values), FLOAT32_TOLERANCE)
    assert np.linalg.matrix_rank(features) <= live
    assert np.count_nonzero(values) <= live
    assert float(plasticity.effective_rank(singular)) <= live * (1 + FLOAT32_TOLERANCE)


@pytest.mark.parametrize("index", range(len(FEATURES)))
def test_ranks_match_numpy_on_feature_matrices(index):
    """End to end, features to ranks, against NumPy's SVD, to float rounding."""
    features = FEATURES[index]
    singular = plasticity.singular_values(jnp.asarray(features))
    _check_ranks(_ranks_of(singular), _numpy_metrics(features), FLOAT32_TOLERANCE)


def test_ranks_of_all_zero_features_are_zero():
    singular = plasticity.singular_values(jnp.zeros((4, 10), jnp.float32))
    assert float(plasticity.effective_rank(singular)) == 0.0
    assert int(plasticity.srank(singular)) == 0
    assert float(plasticity.stable_rank(singular)) == 0.0


def _network(depth: int, width: int, seed: int):
    """A random network (mse, offset data so that some ReLU units are dead) and its data."""
    setting = make_setting(
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


@pytest.mark.parametrize("seed", [0, 1])
def test_plasticity_of_a_network_matches_numpy_and_jax_grad(seed):
    """Every metric of one random two-layer network, against NumPy on its activations and
    jax.grad of its loss (an independent gradient)."""
    structure, numeric, params, initial, data = _network(2, 6, seed)
    tau = 0.5
    numeric = numeric._replace(dormant_tau=tau)
    got = jax.jit(plasticity.plasticity, static_argnums=0)(
        structure, numeric, params, initial, data
    )
    fwd = jax.jit(model.forward, static_argnums=0)(structure, numeric, params, data.inputs)
    grads = jax.jit(jax.grad(model.loss_fn, argnums=2), static_argnums=0)(
        structure, numeric, params, data.inputs, data.targets
    )
    flat = np.concatenate([np.asarray(g).ravel() for layer in grads for g in layer])
    assert float(got.grad_norm) == pytest.approx(np.linalg.norm(flat), rel=FLOAT32_TOLERANCE)
    for k in range(structure.depth):
        features = np.asarray(fwd.activations[k + 1])
        ranks = (got.effective_rank[k], got.srank[k], got.stable_rank[k])
        _check_ranks(ranks, _numpy_metrics(features), FLOAT32_TOLERANCE)
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
)


@pytest.fixture(scope="module")
def tiny_runs():
    """A tiny fixed-data study (24 initializations, many of them with dead units) with the
    plasticity metrics off, without ranks and with all: ``{choice: (runs, curves)}``."""
    return {
        choice: study.simulate_curves(
            make_setting(**TINY_RUN, train_plasticity_metrics=choice), n_inits=24, seed=7
        )
        for choice in ("none", "without_ranks", "all")
    }


def test_turning_metrics_on_leaves_every_column_bit_identical(tiny_runs):
    plain_runs, plain_curves = tiny_runs["none"]
    assert not any(name.startswith("grad_norm") for name in plain_runs.columns)
    for choice in ("without_ranks", "all"):
        runs, curves = tiny_runs[choice]
        for plain, table in ((plain_runs, runs), (plain_curves, curves)):
            shared = [c for c in plain.columns if c != "train.plasticity_metrics"]
            pd.testing.assert_frame_equal(table[shared], plain[shared], check_exact=True)
    without, _ = tiny_runs["without_ranks"]
    assert "grad_norm_end" in without and "weight_magnitude_end_l1" in without
    assert not any("rank" in name for name in without.columns)


def test_ranks_are_bounded_by_the_live_units_and_the_end_is_the_last_check(tiny_runs):
    runs, curves = tiny_runs["all"]
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
