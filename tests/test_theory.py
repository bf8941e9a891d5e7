"""Closed forms of study.theory against independent NumPy simulations (4 standard errors)."""

import numpy as np
import pytest

from study import theory
from tests.helpers import standard_errors

N_DRAWS = 200_000


def _mc_dead(inputs, weights, rng, n=N_DRAWS):
    """Share of weight draws w (rows) with w . x <= 0 for every input x."""
    return float(np.mean(np.all(weights @ inputs.T <= 0, axis=1)))


@pytest.mark.parametrize("law", ["uniform", "normal"])
@pytest.mark.parametrize("angles", [(0.3, 0.9), (0.05, 1.5), (0.7, 0.75)])
def test_relu_2d_matches_simulation(law, angles):
    rng = np.random.default_rng(1)
    theta = rng.uniform(*angles, size=50)
    theta[:2] = angles
    inputs = np.stack([np.cos(theta), np.sin(theta)], axis=1) * rng.uniform(0.5, 3, (50, 1))
    if law == "uniform":
        w = rng.uniform(-0.05, 0.05, (N_DRAWS, 2))
    else:
        w = rng.normal(0, 1.0, (N_DRAWS, 2))
    p = theory.p_dead_relu_2d(inputs, law)
    assert abs(_mc_dead(inputs, w, rng) - p) < 4 * standard_errors(p, N_DRAWS)


def test_relu_2d_quarter_when_data_reach_both_axes():
    inputs = np.array([[1.0, 1e-9], [1e-9, 1.0], [1.0, 1.0]])
    assert theory.p_dead_relu_2d(inputs, "uniform") == pytest.approx(0.25, abs=1e-6)
    assert theory.p_dead_relu_2d(inputs, "normal") == pytest.approx(0.25, abs=1e-6)


@pytest.mark.parametrize(("width", "depth"), [(1, 1), (2, 3), (3, 5)])
def test_ray_matches_network_simulation(width, depth):
    rng = np.random.default_rng(2)
    n = 100_000
    x = np.array([0.5, 2.0, 3.0])  # one ray, 1-D
    h = x[None, None, :] * np.ones((n, 1, 1))  # [n, 1, samples]
    dead = np.zeros(n, bool)
    fan_in = 1
    for _ in range(depth):
        w = rng.normal(size=(n, width, fan_in))
        z = np.einsum("nij,njs->nis", w, h)
        dead |= np.all(z <= 0, axis=(1, 2))
        h, fan_in = np.maximum(z, 0), width
    p = theory.p_dead_ray(width, depth)
    assert abs(dead.mean() - p) < 4 * standard_errors(p, n)


@pytest.mark.parametrize("n_inputs", [1, 2, 3, 4])
def test_orthant_bound_exact_when_data_contain_axes(n_inputs):
    rng = np.random.default_rng(3)
    inputs = np.vstack([np.eye(n_inputs), rng.uniform(0, 1, (20, n_inputs))])
    w = rng.uniform(-1, 1, (N_DRAWS, n_inputs))
    p = theory.p_dead_nonnegative_bound(n_inputs)
    assert theory.cone_is_orthant(inputs)
    assert abs(_mc_dead(inputs, w, rng) - p) < 4 * standard_errors(p, N_DRAWS)


def test_orthant_bound_is_a_lower_bound_for_narrow_cones():
    rng = np.random.default_rng(4)
    inputs = rng.uniform(1, 2, (30, 3))  # strictly inside the orthant
    w = rng.normal(size=(N_DRAWS, 3))
    estimate = _mc_dead(inputs, w, rng)
    bound = theory.p_dead_nonnegative_bound(3)
    assert estimate > bound + 4 * standard_errors(bound, N_DRAWS)
    assert not theory.cone_is_orthant(inputs)


def test_second_layer_unit_fed_by_relu_outputs_meets_the_bound():
    """A unit after a ReLU layer of width n on centered data: P(dead) >= 2^-n."""
    rng = np.random.default_rng(5)
    data = rng.uniform(-1, 1, (64, 2))
    n, width = 20_000, 3
    w1 = rng.normal(size=(n, width, 2))
    h = np.maximum(np.einsum("nij,sj->nis", w1, data), 0)
    w2 = rng.normal(size=(n, width))
    dead = np.all(np.einsum("ni,nis->ns", w2, h) <= 0, axis=1)
    bound = theory.p_dead_nonnegative_bound(width)
    assert dead.mean() > bound - 4 * standard_errors(bound, n)


def test_centered_cloud_cone_is_whole_space_and_unit_never_dead():
    rng = np.random.default_rng(6)
    inputs = rng.uniform(-1, 1, (200, 3))
    assert theory.cone_is_whole_space(inputs)
    w = rng.normal(size=(N_DRAWS, 3))
    assert _mc_dead(inputs, w, rng) == 0.0
    assert not theory.cone_is_whole_space(np.abs(inputs))


def test_on_one_ray():
    assert theory.on_one_ray(np.array([[1.0], [2.0], [0.1]]))
    assert not theory.on_one_ray(np.array([[1.0], [-2.0]]))
    assert theory.on_one_ray(np.array([[1.0, 2.0], [2.0, 4.0]]))
    assert not theory.on_one_ray(np.array([[1.0, 2.0], [2.0, 4.1]]))


def _values(**kw):
    base = {
        "model.activation": "relu",
        "model.depth": 1,
        "model.width": 1,
        "model.init": "uniform",
        "model.bias": True,
        "model.bias_init": "zeros",
        "model.bias_scale": 0.05,
        "model.leaky_slope": 0.01,
    }
    base.update({k.replace("__", "."): v for k, v in kw.items()})
    return base


def test_formula_selection():
    rng = np.random.default_rng(7)
    positive = rng.uniform(1, 3, (100, 2))
    centered = rng.uniform(-1, 1, (100, 2))
    ray = rng.uniform(1, 2, (50, 1))
    p2d = theory.p_dead_relu_2d(positive, "uniform")
    assert theory.p_dead_init_theory(_values(), positive) == (pytest.approx(p2d), "relu_2d")
    assert theory.p_dead_init_theory(_values(model__width=3), positive)[0] == pytest.approx(p2d**3)
    assert theory.p_dead_init_theory(_values(), centered) == (0.0, "whole_space")
    assert theory.p_dead_init_theory(_values(model__depth=4, model__width=2), ray) == (
        pytest.approx(theory.p_dead_ray(2, 4)),
        "ray",
    )
    assert theory.p_dead_init_theory(_values(model__activation="leaky_relu"), None)[0] == 0.0
    # No formula: biased units, deep nets off a ray, rai, unknown data.
    assert np.isnan(theory.p_dead_init_theory(_values(model__bias_init="uniform"), positive)[0])
    assert np.isnan(theory.p_dead_init_theory(_values(model__depth=2), positive)[0])
    assert np.isnan(theory.p_dead_init_theory(_values(model__init="rai"), positive)[0])
    assert np.isnan(theory.p_dead_init_theory(_values(), None)[0])
    assert (
        theory.p_dead_init_theory(_values(model__bias=False, model__bias_init="uniform"), ray)[1]
        == "ray"
    )


def test_setting_inputs_rebuilds_the_engine_data():
    from study import config, data

    setting = config.make_setting(data_offset=2.0, data_n_samples=64)
    values = dict(setting.values)
    rebuilt = data.setting_inputs(values, seed=5)
    expected = data.make_data(setting.structure, setting.numeric, data.key_streams(5)[0], None)
    np.testing.assert_array_equal(rebuilt, np.asarray(expected.inputs).T)
    other = data.setting_inputs(values, seed=6)
    assert not np.array_equal(rebuilt, other)
