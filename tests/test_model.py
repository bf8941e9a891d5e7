"""The MLP: hand-written backward pass against jax.grad, dead units' gradients, init schemes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from study import model
from study.config import make_setting


def _random_problem(setting, seed=0, n=37):
    key_params, key_x, key_y = jax.random.split(jax.random.key(seed), 3)
    # a scale that puts pre-activations on both sides of 0 (and of the kinks)
    numeric = setting.numeric._replace(init_range=0.7, bias_scale=0.3)
    params = model.init_params(setting.structure, numeric, key_params)
    inputs = jax.random.normal(key_x, (setting.structure.dim, n))
    if setting.structure.loss == "bce":
        targets = (jax.random.uniform(key_y, (n,)) < 0.5).astype(jnp.float32)
    else:
        targets = jax.random.normal(key_y, (n,))
    return numeric, params, inputs, targets


STRUCTURES = [
    dict(model_depth=1, model_width=1),
    dict(model_depth=2, model_width=3, model_activation="leaky_relu", model_leaky_slope=0.1),
    dict(model_depth=3, model_width=4, model_activation="elu", data_dim=5),
    dict(model_depth=2, model_width=12, model_activation="gelu"),  # matmul path (144 weights)
    dict(model_depth=1, model_width=5, model_activation="silu", data_dim=3),
    dict(model_depth=2, model_width=2, model_activation="softplus"),
    dict(model_depth=2, model_width=3, model_activation="tanh"),
    dict(model_depth=2, model_width=3, data_kind="function", data_dim=1),  # mse
    # normalization: its statistics are differentiated too
    dict(model_depth=1, model_width=1, model_norm="batch"),
    dict(model_depth=2, model_width=3, model_norm="batch", model_activation="leaky_relu"),
    dict(model_depth=2, model_width=12, model_norm="batch", model_activation="elu"),  # matmul
    dict(model_depth=2, model_width=3, model_norm="layer"),
    dict(model_depth=3, model_width=4, model_norm="layer", data_kind="function", data_dim=1),
    # crelu: two outputs per unit, so the next layer's fan-in doubles
    dict(model_depth=1, model_width=1, model_activation="crelu"),
    dict(model_depth=3, model_width=3, model_activation="crelu", data_dim=4),
    dict(model_depth=2, model_width=6, model_activation="crelu"),  # matmul path (72 weights)
    dict(model_depth=2, model_width=3, model_activation="crelu", model_norm="batch"),
]


@pytest.mark.parametrize("values", STRUCTURES)
def test_backward_matches_jax_grad(values):
    setting = make_setting(model_bias_init="uniform", **values)
    numeric, params, inputs, targets = _random_problem(setting)
    structure = setting.structure

    @jax.jit
    def hand_written(params):
        fwd = model.forward(structure, numeric, params, inputs)
        _, output_grad = model.loss_and_output_grad(structure.loss, fwd.output, targets)
        return model.backward(params, fwd, output_grad, use_bias=True, norm=structure.norm)

    ours = hand_written(params)
    reference = jax.jit(jax.grad(lambda p: model.loss_fn(structure, numeric, p, inputs, targets)))(
        params
    )
    # Rounding is relative to the gradient's size as a whole: a bias before a normalization has
    # gradient 0 in exact arithmetic, and both sides give float32 noise there.
    scale = max(float(jnp.max(jnp.abs(leaf))) for leaf in jax.tree.leaves(reference)) + 1e-12
    for mine, theirs in zip(jax.tree.leaves(ours), jax.tree.leaves(reference), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=2e-5, atol=2e-6 * scale)


@pytest.mark.parametrize("norm, axis", [("batch", 1), ("layer", 0)])
def test_normalization_standardizes_over_its_axis(norm, axis):
    """Batch norm: each unit over the samples; layer norm: each sample over the units; mean 0
    and variance var / (var + eps), before the gain (1) and shift (0) at init."""
    setting = make_setting(model_depth=1, model_width=5, model_norm=norm, data_dim=3)
    numeric, params, inputs, _ = _random_problem(setting)
    fwd = model.forward(setting.structure, numeric, params, inputs)
    z = np.asarray(model.dense(params[0][0], inputs) + params[0][1][:, None], np.float64)
    var = z.var(axis=axis)
    np.testing.assert_allclose(fwd.pre_activations[0], fwd.normalized[0])  # gain 1, shift 0
    np.testing.assert_allclose(np.asarray(fwd.normalized[0]).mean(axis=axis), 0, atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(fwd.normalized[0]).var(axis=axis), var / (var + model.NORM_EPS), rtol=1e-4
    )


def test_dense_forms_agree():
    key_w, key_x = jax.random.split(jax.random.key(1))
    weights, inputs = jax.random.normal(key_w, (3, 4)), jax.random.normal(key_x, (4, 9))
    np.testing.assert_allclose(model.dense(weights, inputs), weights @ inputs, rtol=1e-6)
    np.testing.assert_allclose(
        model.dense_transpose(weights, inputs[:3]), weights.T @ inputs[:3], rtol=1e-6
    )
    values = jnp.arange(37.0)[None, :] * inputs[:1, :1]
    np.testing.assert_allclose(model.sum_samples(values), values.sum(axis=-1), rtol=1e-6)


def test_dead_unit_gets_exactly_zero_gradient():
    """A ReLU unit that is <= 0 on every input: its incoming weights and bias get 0, exactly."""
    setting = make_setting(model_width=2)
    structure, numeric = setting.structure, setting.numeric
    inputs = jnp.array([[0.5, 1.0, 2.0, 3.0], [1.0, 0.2, 2.5, 0.1]])  # positive features
    targets = jnp.array([0.0, 1.0, 1.0, 0.0])
    params = (
        (jnp.array([[-0.3, -0.1], [0.4, 0.2]]), jnp.array([0.0, 0.1])),  # unit 0 is dead
        (jnp.array([[0.7, -0.5]]), jnp.array([0.2])),
    )
    fwd = model.forward(structure, numeric, params, inputs)
    _, output_grad = model.loss_and_output_grad("bce", fwd.output, targets)
    grads = model.backward(params, fwd, output_grad, use_bias=True)
    assert np.all(np.asarray(grads[0][0][0]) == 0.0)
    assert float(grads[0][1][0]) == 0.0
    assert np.all(np.asarray(grads[0][0][1]) != 0.0)  # the live unit learns
    reference = jax.grad(lambda p: model.loss_fn(structure, numeric, p, inputs, targets))(params)
    assert np.all(np.asarray(reference[0][0][0]) == 0.0)


@pytest.mark.parametrize(
    "init, fan_in, expected_var",
    [
        ("uniform", 3, 0.05**2 / 3),
        ("normal", 3, 0.05**2),
        ("he_uniform", 3, 2 / 3),
        ("he_normal", 3, 2 / 3),
        ("glorot_uniform", 3, 2 / (3 + 50)),
        ("kaiming_uniform", 3, 2 / 3),  # ReLU's gain sqrt 2: U(-sqrt 2, sqrt 2) on fan-in 3
    ],
)
def test_weight_init_variances(init, fan_in, expected_var):
    """Sample variance of 50 x 3 weights over many keys matches each scheme's variance."""
    setting = make_setting(model_init=init, data_dim=fan_in, model_width=50)
    keys = jax.random.split(jax.random.key(0), 400)
    draws = jax.jit(
        jax.vmap(lambda k: model.init_params(setting.structure, setting.numeric, k)[0][0])
    )(keys)
    draws = np.asarray(draws).ravel()  # 60,000 values
    # sd of a sample variance: var * sqrt((kurtosis - 1) / n); kurtosis 3 (normal), 9/5 (uniform)
    kurtosis = 3.0 if "normal" in init else 1.8
    assert abs(draws.var() - expected_var) < 4 * expected_var * np.sqrt((kurtosis - 1) / draws.size)
    assert abs(draws.mean()) < 4 * np.sqrt(expected_var / draws.size)


def se(values):
    """Standard error of the mean of independent values."""
    return values.std(ddof=1) / np.sqrt(values.size)


def test_rai_entry_distribution():
    """RAI: each of a row's fan_in + 1 entries is Beta(2, 1) with probability 1/(fan_in + 1),
    else N(0, 0.6007^2 / fan_in). So P(entry < 0) = fan_in / (2 (fan_in + 1)) and
    E[entry] = (2/3) / (fan_in + 1); every row has at least one positive entry."""
    fan_in, width = 4, 100
    setting = make_setting(model_init="rai", data_dim=fan_in, model_width=width)
    keys = jax.random.split(jax.random.key(3), 200)
    layers = jax.jit(
        jax.vmap(lambda k: model.init_params(setting.structure, setting.numeric, k)[0])
    )(keys)
    rows = np.concatenate([np.asarray(layers[0]), np.asarray(layers[1])[..., None]], axis=-1)
    assert np.all(rows.max(axis=-1) > 0)
    # rows are independent (entries within a row are not): standard errors over rows
    rows = rows.reshape(-1, fan_in + 1)  # 20,000 rows
    negative_share = (rows < 0).mean(axis=1)
    row_mean = rows.mean(axis=1)
    assert abs(negative_share.mean() - fan_in / (2 * (fan_in + 1))) < 4 * se(negative_share)
    assert abs(row_mean.mean() - (2 / 3) / (fan_in + 1)) < 4 * se(row_mean)
    # the symmetric entries' variance: E[entry^2] = (1/2 + fan_in sigma^2) / (fan_in + 1)
    sigma2 = model.RAI_SIGMA_GAIN**2 / fan_in
    row_square = (rows**2).mean(axis=1)
    assert abs(row_square.mean() - (0.5 + fan_in * sigma2) / (fan_in + 1)) < 4 * se(row_square)


@pytest.mark.parametrize("activation, gain", [("tanh", 5 / 3), ("sigmoid", 1.0), ("relu", 2**0.5)])
def test_kaiming_uniform_scale_follows_the_activation_in_the_engine(activation, gain):
    """Drawn by the engine's start program (shared between structures that differ only in
    training fields): hidden weights U(-b, b) with b = gain sqrt(3 / fan_in), the output layer's
    with gain 1. The largest of 8,000 draws is within 0.5% of b."""
    from study.train import make_start, start_structure

    setting = make_setting(
        model_init="kaiming_uniform", model_activation=activation, data_dim=20, model_width=50
    )
    numerics = jax.tree.map(lambda v: np.asarray([v], np.float32), setting.numeric)
    ids = np.asarray([setting.setting_id], np.int32)
    _, drawn = make_start(start_structure(setting.structure))(
        np.uint32(0), numerics, ids, np.arange(8, dtype=np.int32), None
    )
    layers = [model.unflatten(setting.structure, p) for p in np.asarray(drawn.params[0])]
    hidden = np.abs(np.stack([layer[0][0] for layer in layers])).max()
    output = np.abs(np.stack([layer[1][0] for layer in layers])).max()
    assert 0.995 * gain * np.sqrt(3 / 20) < hidden <= gain * np.sqrt(3 / 20)
    assert 0.9 * np.sqrt(3 / 50) < output <= np.sqrt(3 / 50)
