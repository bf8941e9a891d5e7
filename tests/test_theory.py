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
@pytest.mark.parametrize(
    "angles", [(0.3, 0.9), (0.05, 1.5), (0.7, 0.75), (2.0, 4.5), (-0.6, 1.9), (3.0, 3.0 + 3.1)]
)
def test_relu_2d_matches_simulation(law, angles):
    """Positive data, and wedges anywhere in the plane (across an axis, wrapping past 0)."""
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
        "model.init_range": 0.5,
        "model.bias": True,
        "model.bias_init": "zeros",
        "model.bias_scale": 0.05,
        "model.leaky_slope": 0.01,
    }
    base.update({k.replace("__", "."): v for k, v in kw.items()})
    return base


def _draw(law, scale, rng, shape):
    if law == "uniform":
        return rng.uniform(-scale, scale, shape)
    return rng.normal(0.0, scale, shape)


def _mc_network_dead(inputs, values, rng, n):
    """Share of n simulated networks (the setting ``values``) with some hidden layer all dead.

    Independent of study.theory: plain NumPy draws of every layer's weights and biases, the
    forward pass on every input, and the engine's definition of a dead layer.
    """
    depth, width = values["model.depth"], values["model.width"]
    weights, scale = values["model.init"], values["model.init_range"]
    bias = values["model.bias_init"] if values["model.bias"] else "zeros"
    hidden = np.broadcast_to(inputs.T, (n, *inputs.T.shape))  # [n, fan_in, samples]
    dead = np.zeros(n, bool)
    for _ in range(depth):
        w = _draw(weights, scale, rng, (n, width, hidden.shape[1]))
        b = np.zeros((n, width)) if bias == "zeros" else _draw(bias, 0.05, rng, (n, width))
        z = np.einsum("nij,njs->nis", w, hidden) + b[:, :, None]
        dead |= np.all(z <= 0, axis=(1, 2))
        hidden = np.maximum(z, 0)
    return float(dead.mean())


def _assert_theory_holds(estimate, result, n):
    """The estimate within 4 standard errors of the exact value, or of the bounds' interval."""
    if not np.isnan(result.exact):
        assert abs(estimate - result.exact) < 4 * standard_errors(result.exact, n), result
        return
    assert result.lower - 4 * standard_errors(result.lower, n) < estimate, result
    assert estimate < result.upper + 4 * standard_errors(result.upper, n), result


def _cloud(kind, rng):
    if kind == "positive_2d":
        return rng.uniform(1, 3, (24, 2))
    if kind == "centered_2d":
        return rng.uniform(-1, 1, (24, 2))
    if kind == "two_sided_1d":
        return rng.uniform(-1, 1, (24, 1))
    return rng.uniform(-1, 1, (24, 3)) + np.array([2.0, 0.0, 0.0])  # 3-D, a narrow cone


NETWORKS = [
    # (data, depth, width, weights, bias, expected tag)
    ("positive_2d", 3, 1, "uniform", "zeros", "relu_2d+chain"),
    ("centered_2d", 4, 1, "normal", "zeros", "whole_space+chain"),
    ("two_sided_1d", 2, 2, "normal", "zeros", "whole_space+two_sided"),
    ("two_sided_1d", 2, 3, "uniform", "zeros", "whole_space+two_sided"),
    ("two_sided_1d", 5, 2, "normal", "zeros", "whole_space+two_sided"),
    ("centered_2d", 2, 2, "uniform", "zeros", "whole_space+nonneg_bounds"),
    ("positive_2d", 3, 2, "normal", "zeros", "relu_2d+nonneg_bounds"),
    ("positive_2d", 2, 2, "uniform", "normal", "biased_2d+bias_bounds"),
    ("two_sided_1d", 1, 3, "normal", "uniform", "biased_1d"),
    ("narrow_3d", 2, 2, "normal", "zeros", "polar_cone+nonneg_bounds"),
    ("narrow_3d", 1, 3, "normal", "zeros", "polar_cone"),
    ("narrow_3d", 1, 2, "uniform", "zeros", "bounds"),
]


@pytest.mark.parametrize(("cloud", "depth", "width", "weights", "bias", "tag"), NETWORKS)
def test_network_theory_matches_simulation(cloud, depth, width, weights, bias, tag):
    """Exact values at 4 standard errors; bounds contain the estimate up to 4 standard errors."""
    rng = np.random.default_rng(8)
    inputs = _cloud(cloud, rng)
    values = _values(
        model__depth=depth, model__width=width, model__init=weights, model__bias_init=bias
    )
    result = theory.p_dead_init_theory(values, inputs)
    assert result.name == tag and result.note
    n = 40_000
    _assert_theory_holds(_mc_network_dead(inputs, values, rng, n), result, n)


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("weights", ["uniform", "normal"])
@pytest.mark.parametrize("bias", ["uniform", "normal"])
@pytest.mark.parametrize(("offset", "bias_scale"), [(0.0, 0.05), (2.0, 0.5), (0.5, 2.0)])
def test_biased_unit_matches_simulation(dim, weights, bias, offset, bias_scale):
    rng = np.random.default_rng(9)
    inputs = rng.uniform(-1, 1, (30, dim)) + offset
    law = theory.BiasedLaw(weights, 0.5, bias, bias_scale)
    p = theory.p_dead_biased_unit(inputs, law)
    w = _draw(weights, 0.5, rng, (N_DRAWS, dim))
    b = _draw(bias, bias_scale, rng, N_DRAWS)
    estimate = float(np.mean(np.all(w @ inputs.T + b[:, None] <= 0, axis=1)))
    assert abs(estimate - p) < 4 * standard_errors(p, N_DRAWS)


def test_two_sided_layer2_matches_simulation():
    rng = np.random.default_rng(10)
    inputs = np.array([[-1.0], [-0.3], [0.2], [1.5]])
    for width in (1, 2, 4):
        values = _values(model__depth=2, model__width=width, model__init="normal")
        estimate = _mc_network_dead(inputs, values, rng, N_DRAWS // 4)
        p = theory.p_dead_two_sided_layer2(width)
        assert abs(estimate - p) < 4 * standard_errors(p, N_DRAWS // 4)


def test_formula_selection():
    rng = np.random.default_rng(7)
    positive = rng.uniform(1, 3, (100, 2))
    centered = rng.uniform(-1, 1, (100, 2))
    ray = rng.uniform(1, 2, (50, 1))
    p2d = theory.p_dead_relu_2d(positive, "uniform")
    found = theory.p_dead_init_theory(_values(), positive)
    assert (found.exact, found.name) == (pytest.approx(p2d), "relu_2d")
    assert np.isnan(found.lower) and np.isnan(found.upper)
    assert theory.p_dead_init_theory(_values(model__width=3), positive).exact == pytest.approx(
        p2d**3
    )
    assert theory.p_dead_init_theory(_values(), centered)[:1] == (0.0,)
    assert theory.p_dead_init_theory(_values(), centered).name == "whole_space"
    deep = theory.p_dead_init_theory(_values(model__depth=4, model__width=2), ray)
    assert (deep.exact, deep.name) == (pytest.approx(theory.p_dead_ray(2, 4)), "ray")
    leaky = theory.p_dead_init_theory(_values(model__activation="leaky_relu"), None)
    assert (leaky.exact, leaky.name) == (0.0, "never_dead")
    ray_no_bias = _values(model__bias=False, model__bias_init="uniform", model__depth=3)
    assert theory.p_dead_init_theory(ray_no_bias, ray).name == "ray"


@pytest.mark.parametrize(
    ("values", "inputs", "says"),
    [
        (_values(model__init="rai"), np.ones((3, 2)), "RAI"),
        (_values(), None, "unknown"),
        (_values(model__bias_init="constant"), np.ones((3, 2)), "constant bias"),
        *[(_values(model__activation=a), None, f"{a}'(z)") for a in theory.NO_THEORY],
    ],
)
def test_no_theory_says_why(values, inputs, says):
    found = theory.p_dead_init_theory(values, inputs)
    assert np.isnan([found.exact, found.lower, found.upper]).all() and found.name == ""
    assert says in found.note


def test_leaky_relu_of_slope_zero_is_relu():
    positive = np.random.default_rng(11).uniform(1, 3, (20, 2))
    values = _values(model__activation="leaky_relu", model__leaky_slope=0.0)
    assert theory.p_dead_init_theory(values, positive) == theory.p_dead_init_theory(
        _values(), positive
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


def test_constant_loss_is_the_best_constant_predictors_loss():
    """The closed forms (variance; entropy of the mean label) against a numerical minimum of
    the engine's losses over constant outputs, on rebuilt engine data."""
    from scipy.optimize import minimize_scalar

    from study import config, data

    fit = config.make_setting(data_kind="function", data_function="abs", data_dim=1)
    targets = data.setting_data(dict(fit.values), seed=0).targets
    best = minimize_scalar(lambda c: np.mean((targets - c) ** 2))
    assert data.constant_loss(targets, "mse") == pytest.approx(best.fun, rel=1e-9)
    labels = data.setting_data(dict(config.make_setting().values), seed=0).targets
    labels = labels[: len(labels) * 3 // 4]  # not balanced: mean label 1/3 or so
    best = minimize_scalar(lambda c: np.mean(np.logaddexp(0, c) - labels * c))
    assert data.constant_loss(labels, "bce") == pytest.approx(best.fun, rel=1e-9)
    assert data.constant_loss(np.array([0.0, 1.0]), "bce") == pytest.approx(np.log(2))
    assert data.constant_loss(np.ones(4), "bce") == 0.0


def _block_diagonal(*blocks):
    size = sum(len(b) for b in blocks)
    r, start = np.zeros((size, size)), 0
    for block in blocks:
        r[start : start + len(block), start : start + len(block)] = block
        start += len(block)
    return r


def _equicorrelated(d, rho):
    return np.full((d, d), rho) + (1 - rho) * np.eye(d)


def test_orthant_probability_known_values():
    """2^-d for independence, 1/(d+1) for correlation 1/2, products of independent blocks."""
    for d in range(1, 6):
        assert theory.orthant_probability(np.eye(d))[0] == pytest.approx(2.0**-d, abs=1e-12)
        assert theory.orthant_probability(_equicorrelated(d, 0.5))[0] == pytest.approx(
            1 / (d + 1), abs=1e-12
        )
    pair, triple = (
        _equicorrelated(2, -0.7),
        np.array([[1, 0.3, -0.4], [0.3, 1, 0.6], [-0.4, 0.6, 1]]),
    )
    p2, p3 = theory.orthant_probability(pair)[0], theory.orthant_probability(triple)[0]
    assert theory.orthant_probability(_block_diagonal(pair, pair))[0] == pytest.approx(
        p2**2, abs=1e-12
    )
    assert theory.orthant_probability(_block_diagonal(triple, pair))[0] == pytest.approx(
        p2 * p3, abs=1e-12
    )
    both = np.stack([_equicorrelated(4, 0.5), np.eye(4)])
    assert theory.orthant_probability(both)[0] == pytest.approx(0.2 + 1 / 16, abs=1e-12)


def _polar_cases():
    rng = np.random.default_rng(12)
    cases = {}
    for d in (3, 4, 5):
        for offset, n in ((0.5, 12), (2.0, 64)):
            cases[f"cloud_{d}d_offset{offset}"] = rng.uniform(-1, 1, (n, d)) + offset
    cases["simplicial_4d"] = rng.normal(size=(4, 4)) + np.array([2.0, 0, 0, 0])
    cases["square_pyramid_3d"] = np.array([[1, 1, 2], [1, -1, 2], [-1, 1, 2], [-1, -1, 2.0]])
    center = rng.normal(size=5)
    cases["mixed_sign_5d"] = center + 0.6 * rng.normal(size=(40, 5))
    rotation = np.linalg.qr(rng.normal(size=(4, 4)))[0]
    flat = np.hstack([rng.uniform(0.5, 2, (20, 3)), np.zeros((20, 1))])
    cases["in_a_subspace_4d"] = flat @ rotation
    cases["duplicated_rays_3d"] = (
        np.repeat(rng.uniform(0.2, 1, (6, 3)), 2, axis=0)
        * np.repeat([[1.0], [3.0]], 6, axis=0).ravel()[:, None]
    )
    cases["half_space_3d"] = np.array([[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, 0, 1]])
    return cases


POLAR_CASES = _polar_cases()


@pytest.mark.parametrize("case", list(POLAR_CASES))
def test_polar_cone_matches_simulation(case):
    """P(w in the polar cone) against 200k Gaussian draws, at 4 standard errors."""
    inputs = POLAR_CASES[case]
    rng = np.random.default_rng(13)
    w = rng.normal(0, 0.3, (N_DRAWS, inputs.shape[1]))
    p = theory.p_dead_polar_cone(inputs)
    assert abs(_mc_dead(inputs, w, rng) - p) <= 4 * standard_errors(p, N_DRAWS)


def test_polar_cone_agrees_with_the_exact_special_cases():
    rng = np.random.default_rng(14)
    for d in (3, 4, 5):
        orthant = np.vstack([np.eye(d), rng.uniform(0, 1, (10, d))])
        assert theory.p_dead_polar_cone(orthant) == pytest.approx(2.0**-d, abs=1e-9)
        assert theory.p_dead_polar_cone(rng.uniform(-1, 1, (50, d))) == 0.0
        assert theory.p_dead_polar_cone(np.outer([1.0, 2.0], rng.normal(size=d))) == 0.5
    planar = rng.uniform(0.5, 2, (30, 2))
    embedded = np.hstack([planar, np.zeros((30, 2))])
    assert theory.p_dead_polar_cone(embedded) == pytest.approx(
        theory.p_dead_relu_2d(planar, "normal"), abs=1e-12
    )


@pytest.mark.parametrize(("dim", "offset"), [(3, 0.5), (3, 2.0), (4, 2.0), (5, 2.0)])
def test_polar_cone_on_the_engine_data(dim, offset):
    """The engine's own data set (study.data), one layer of width 2: exact, at 4 standard errors."""
    from study import config, data

    setting = config.make_setting(data_dim=dim, data_offset=offset, data_n_samples=16)
    inputs = data.setting_inputs(dict(setting.values), seed=3)
    values = _values(model__width=2, model__init="normal")
    result = theory.p_dead_init_theory(values, inputs)
    assert result.name in ("polar_cone", "whole_space")
    estimate = _mc_network_dead(inputs, values, np.random.default_rng(15), N_DRAWS)
    assert abs(estimate - result.exact) <= 4 * standard_errors(result.exact, N_DRAWS)
