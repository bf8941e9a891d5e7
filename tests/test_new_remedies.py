"""The engine's remedies of issue 24: learning-rate warmup, weight decay for every optimizer,
the concatenated ReLU (CReLU) and the orthogonal init.

Cheap by design: the optimizers are called directly on known gradients, the model's pieces on
hand-made networks, and the few engine runs use TINY-sized structures.
"""

import json
import logging
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest

from study import analysis, model, remedies, theory, train
from study.config import ADAMW_WEIGHT_DECAY, OPTIMIZERS, ConfigError, load_study, make_setting
from study.data import Data
from study.train import make_train, scale_by_adam
from tests.helpers import assert_refused, run_cli, tiny_config, with_change

# --------------------------------------------------------------------------------------------
# Warmup and weight decay: 0 is today's engine, bit for bit.
# --------------------------------------------------------------------------------------------


def todays_optimizer(name, numeric):
    """``study.train.make_optimizer`` as it was before warmup and weight decay for every
    optimizer (adamw alone decayed), written out to compare the engine against."""
    lr, momentum = numeric.learning_rate, numeric.momentum
    return {
        "sgd": lambda: optax.sgd(lr),
        "momentum": lambda: optax.sgd(lr, momentum=momentum),
        "nesterov": lambda: optax.sgd(lr, momentum=momentum, nesterov=True),
        "adam": lambda: optax.chain(scale_by_adam(momentum), optax.scale_by_learning_rate(lr)),
        "adamw": lambda: optax.chain(
            scale_by_adam(momentum),
            optax.add_decayed_weights(numeric.weight_decay),
            optax.scale_by_learning_rate(lr),
        ),
        "rmsprop": lambda: optax.rmsprop(lr, momentum=momentum),
    }[name]()


def _train_tiny(optimizer: str, **changes):
    """The metrics of a tiny group (two init ranges, 16 initializations, a fresh program)."""
    config = tiny_config(
        model__width=2,
        data__offset=1.0,
        train__optimizer=optimizer,
        train__learning_rate=0.2,
        **changes,
    )
    ((structure, settings),) = load_study(config).groups().items()
    numerics = jax.tree.map(lambda *v: np.asarray(v, np.float32), *(s.numeric for s in settings))
    ids = np.asarray([s.setting_id for s in settings], np.int32)
    result = make_train(structure)(np.uint32(5), numerics, ids, np.arange(16, dtype=np.int32), None)
    return settings, result.metrics


# momentum and nesterov take sgd's path through the decay (L2 on the gradient) and optax's own
# momentum: slow only, sgd stands for them by default (two compiles per case)
SGD_ALIKE = ("momentum", "nesterov")


@pytest.mark.parametrize(
    "optimizer",
    [pytest.param(o, marks=pytest.mark.slow) if o in SGD_ALIKE else o for o in OPTIMIZERS],
)
def test_warmup_and_decay_off_are_todays_engine_bit_for_bit(optimizer, monkeypatch):
    """The compiled engine with warmup 0 and weight decay 0 (adamw: its default 1e-4, as
    before) against the same engine with today's optimizer: every metric, bit for bit."""
    settings, ours = _train_tiny(optimizer, train__warmup_steps=0)
    assert all(s.numeric.warmup_steps == 0 for s in settings)
    expected_decay = ADAMW_WEIGHT_DECAY if optimizer == "adamw" else 0.0
    assert all(s.numeric.weight_decay == expected_decay for s in settings)
    monkeypatch.setattr(train, "make_optimizer", todays_optimizer)
    _, todays = _train_tiny(optimizer)
    for name, mine, theirs in zip(ours._fields, ours, todays, strict=True):
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs), err_msg=name)
    assert not np.asarray(ours.diverged).any()


def test_keys_given_at_their_defaults_are_the_setting_without_them():
    """Warmup 0 and weight decay 0 written out are the same settings, with the same ids (the
    draws of every result so far)."""
    plain = load_study(tiny_config()).settings
    explicit = load_study(tiny_config(train__warmup_steps=0, train__weight_decay=0.0)).settings
    assert plain == explicit
    assert [s.setting_id for s in plain] == [s.setting_id for s in explicit]
    assert make_setting().setting_id == 1731988536  # the default setting's id since the start


def test_decay_counts_in_the_setting_id_only_where_it_acts():
    """adam's 0 keeps the id of the runs before the key applied to adam (which resolved it to
    adamw's 1e-4, unread); a decay adam now applies, 1e-4 included, has an id of its own."""
    ids = {
        decay: make_setting(train_weight_decay=decay).setting_id
        for decay in (0.0, ADAMW_WEIGHT_DECAY, 0.01)
    }
    assert len(set(ids.values())) == 3
    assert ids[0.0] == make_setting().setting_id
    adamw = make_setting(train_optimizer="adamw")
    assert adamw.numeric.weight_decay == ADAMW_WEIGHT_DECAY
    assert (
        adamw.setting_id != make_setting(train_optimizer="adamw", train_weight_decay=0.0).setting_id
    )


# --------------------------------------------------------------------------------------------
# Warmup and weight decay: what an update is.
# --------------------------------------------------------------------------------------------

PARAMS = jnp.array([0.3, -1.2, 2.0, 0.0], jnp.float32)


def _numeric(**values):
    numeric = make_setting().numeric._replace(learning_rate=0.05, momentum=0.8)
    return numeric._replace(**values)


def _updates(optimizer, gradients, params=PARAMS):
    """The updates of ``optimizer`` at steps 0, 1, ... for the given gradients."""
    state, found = optimizer.init(params), []
    for gradient in gradients:
        update, state = optimizer.update(gradient, state, params)
        found.append(np.asarray(update))
    return found


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_warmup_scales_the_rate_linearly_over_its_steps(optimizer):
    """Step t uses rate * min(1, (t + 1) / W): for sgd the update is exactly that times the
    gradient; for every optimizer without momentum in the rate, the updates with warmup are
    those without, times the factor (Adam's moments and RMSprop's scaling do not see the
    rate; momentum's trace neither, as optax.sgd puts the rate after it). W = 1 is no
    warmup."""
    warmup = 4
    gradients = [jnp.sin(PARAMS * (t + 1)) + 0.1 for t in range(7)]
    plain = _updates(train.make_optimizer(optimizer, _numeric()), gradients)
    warmed = _updates(train.make_optimizer(optimizer, _numeric(warmup_steps=warmup)), gradients)
    factors = [min(1.0, (t + 1) / warmup) for t in range(7)]
    if optimizer == "sgd":
        for t, (update, gradient) in enumerate(zip(warmed, gradients, strict=True)):
            rate = np.float32(0.05) * np.float32(factors[t])
            np.testing.assert_array_equal(update, -rate * np.asarray(gradient))
    if optimizer != "rmsprop":  # (rmsprop's momentum traces the rate: the next test)
        for t in range(7):
            np.testing.assert_allclose(warmed[t], factors[t] * plain[t], rtol=1e-6)
        # from update W - 1 on, the factor is exactly 1: the plain updates, bit for bit
        for t in range(warmup - 1, 7):
            np.testing.assert_array_equal(warmed[t], plain[t])
    assert np.abs(warmed[0]).sum() < np.abs(plain[0]).sum()
    one = _updates(train.make_optimizer(optimizer, _numeric(warmup_steps=1)), gradients)
    for mine, theirs in zip(one, plain, strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_warmup_with_momentum_schedules_the_rate_where_optax_puts_it():
    """momentum, nesterov, rmsprop: the rate of optax's alias under the same schedule."""
    gradients = [jnp.cos(PARAMS * (t + 2)) for t in range(6)]
    numeric = _numeric(warmup_steps=5)
    schedule = train.warmup_schedule(numeric.learning_rate, 5)
    references = {
        "momentum": optax.sgd(schedule, momentum=0.8),
        "nesterov": optax.sgd(schedule, momentum=0.8, nesterov=True),
        "rmsprop": optax.rmsprop(schedule, momentum=0.8),
    }
    for name, reference in references.items():
        ours = _updates(train.make_optimizer(name, numeric), gradients)
        for mine, theirs in zip(ours, _updates(reference, gradients), strict=True):
            np.testing.assert_array_equal(mine, theirs)
    rates = [float(schedule(jnp.int32(t))) for t in range(6)]
    np.testing.assert_allclose(rates, [0.01, 0.02, 0.03, 0.04, 0.05, 0.05], rtol=1e-6)


@pytest.mark.usefixtures("standard_dtype_promotion")  # for optax's Adam, the reference
def test_weight_decay_on_adam_is_adamw():
    """adam with weight decay is optax.adamw (decoupled: -rate (adam + decay * param)) to float
    rounding, and our adamw of the same decay bit for bit."""
    numeric = _numeric(weight_decay=0.01)
    gradients = [jnp.sin(PARAMS * (t + 1)) for t in range(20)]
    ours = _updates(train.make_optimizer("adam", numeric), gradients)
    reference = _updates(optax.adamw(0.05, b1=0.8, weight_decay=0.01), gradients)
    adamw = _updates(train.make_optimizer("adamw", numeric), gradients)
    for mine, theirs, our_adamw in zip(ours, reference, adamw, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(mine, our_adamw)
    undecayed = _updates(train.make_optimizer("adam", _numeric()), gradients)
    assert not np.array_equal(ours[0], undecayed[0])


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "rmsprop"])
def test_weight_decay_on_the_others_is_l2_on_the_gradient(optimizer):
    """The update of gradient g with decay w is the undecayed optimizer's update of
    g + w * param, bit for bit (the same arithmetic)."""
    gradients = [jnp.sin(PARAMS * (t + 1)) for t in range(5)]
    decayed = _updates(train.make_optimizer(optimizer, _numeric(weight_decay=0.03)), gradients)
    plain = train.make_optimizer(optimizer, _numeric())
    l2 = _updates(plain, [g + jnp.float32(0.03) * PARAMS for g in gradients])
    for mine, theirs in zip(decayed, l2, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    if optimizer == "sgd":
        expected = -np.float32(0.05) * (np.asarray(gradients[0]) + np.float32(0.03) * PARAMS)
        np.testing.assert_allclose(decayed[0], expected, rtol=1e-6)


def test_weight_decay_zero_leaves_the_update_untouched():
    """A select, not an add of 0 * param: a -0 update stays -0 and an infinite parameter does
    not turn the update into NaN."""
    add = train.add_weight_decay(jnp.float32(0.0))
    updates = jnp.array([-0.0, 1.0, -2.0], jnp.float32)
    params = jnp.array([1.0, jnp.inf, -3.0], jnp.float32)
    out, _ = add.update(updates, add.init(params), params)
    assert np.array_equal(np.signbit(out), np.signbit(updates))
    np.testing.assert_array_equal(out, updates)


def test_new_warmup_and_decay_values_do_not_recompile(caplog):
    """Both keys are numeric: other values (warmup on, decay on) reuse the compiled program,
    and they change the training."""
    config = tiny_config(train__optimizer="sgd", train__learning_rate=0.5, model__width=1)
    ((structure, settings),) = load_study(config).groups().items()
    run = make_train(structure)
    numerics = jax.tree.map(lambda *v: np.asarray(v, np.float32), *(s.numeric for s in settings))
    ids = np.asarray([s.setting_id for s in settings], np.int32)
    indices = np.arange(8, dtype=np.int32)
    plain = run(np.uint32(0), numerics, ids, indices, None).metrics  # compiles
    ones = np.ones_like(numerics.learning_rate)
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        warm = run(np.uint32(0), numerics._replace(warmup_steps=12 * ones), ids, indices, None)
        decay = run(np.uint32(0), numerics._replace(weight_decay=0.5 * ones), ids, indices, None)
    assert [r for r in caplog.records if "Compiling" in r.getMessage()] == []
    for other in (warm.metrics, decay.metrics):
        assert not np.array_equal(np.asarray(plain.final_loss), np.asarray(other.final_loss))
        np.testing.assert_array_equal(plain.initial_loss, other.initial_loss)


@pytest.mark.parametrize(
    "key, value, says",
    [
        ("train.weight_decay", -0.1, "train.weight_decay = -0.1: must be >= 0"),
        ("train.warmup_steps", -1, "train.warmup_steps = -1: must be >= 0"),
        ("train.warmup_steps", 2.5, "train.warmup_steps = 2.5: expected an integer"),
        ("train.warmup_steps", 5, "train.warmup_steps = 5: longer than train.steps = 4"),
    ],
)
def test_bad_warmup_and_decay_are_refused_in_one_line(key, value, says, tmp_path, capsys):
    with pytest.raises(ConfigError, match="^" + re.escape(says)):
        load_study(with_change(key, value))
    assert_refused(run_cli(tmp_path, with_change(key, value)), capsys, tmp_path, says)


def test_warmup_as_long_as_the_run_is_allowed():
    assert make_setting(train_steps=4, train_warmup_steps=4).numeric.warmup_steps == 4


# --------------------------------------------------------------------------------------------
# CReLU: width counts units, a unit is dead only where its pre-activation is 0 everywhere.
# --------------------------------------------------------------------------------------------


def _crelu(depth=1, width=3, dim=2, **values):
    setting = make_setting(
        model_activation="crelu", model_depth=depth, model_width=width, data_dim=dim, **values
    )
    return setting.structure, setting.numeric


def test_crelu_layers_read_twice_the_width():
    """model.width counts units (pre-activations); a layer after a CReLU layer has fan-in
    2 * width: dim 2, width 3, depth 2 has 3 (2 + 1) + 3 (6 + 1) + (6 + 1) = 37 parameters."""
    structure, numeric = _crelu(depth=2)
    assert model.layer_sizes(structure) == [(2, 3), (6, 3), (6, 1)]
    params = model.init_params(structure, numeric, jax.random.key(0))
    assert [leaf.shape for layer in params for leaf in layer] == [
        (3, 2), (3,), (3, 6), (3,), (1, 6), (1,)
    ]  # fmt: skip
    assert model.flatten(params).size == 37
    inputs = jax.random.normal(jax.random.key(1), (2, 5))
    fwd = model.forward(structure, numeric, params, inputs)
    z = fwd.pre_activations[0]
    np.testing.assert_array_equal(
        fwd.activations[1], jnp.concatenate([jnp.maximum(z, 0), jnp.maximum(-z, 0)])
    )
    assert fwd.derivatives[0].shape == (6, 5)


# Three CReLU units on positive inputs: z > 0 everywhere, z < 0 everywhere, z = 0 everywhere.
HAND_MADE = (
    (jnp.array([[1.0, 0.5], [-1.0, -0.5], [0.0, 0.0]]), jnp.array([0.1, -0.1, 0.0])),
    (jnp.array([[0.3, -0.2, 0.5, 0.4, -0.1, 0.2]]), jnp.array([0.0])),
)
POSITIVE = Data(jnp.array([[0.5, 1.0, 2.0, 3.0], [1.0, 0.2, 2.5, 0.1]]), jnp.array([0.0, 1, 1, 0]))


def test_crelu_dead_inactive_dormant_on_a_hand_made_layer():
    """Dead: only the unit with z = 0 on every input (a ReLU would lose the negative one too);
    inactive (z <= 0 everywhere, the unit a ReLU would lose): the negative and the zero unit;
    dormant at tau 0: the zero unit (E|z| = 0)."""
    structure, numeric = _crelu()
    now = train.health(structure, numeric, HAND_MADE, POSITIVE)
    np.testing.assert_array_equal(now.dead, [[False, False, True]])
    np.testing.assert_array_equal(now.inactive, [[False, True, True]])
    np.testing.assert_array_equal(now.dormant, [[False, False, True]])
    relu = make_setting(model_width=3)
    relu_params = (HAND_MADE[0], (HAND_MADE[1][0][:, :3], HAND_MADE[1][1]))
    relu_now = train.health(relu.structure, relu.numeric, relu_params, POSITIVE)
    np.testing.assert_array_equal(relu_now.dead, [[False, True, True]])
    # one unit of three dead: the network is not
    assert not bool(train._network_dead(now.dead))


def test_crelu_unit_is_never_dead_where_its_pre_activation_is_not_zero():
    """Random networks (some ReLU units dead on the data) on positive inputs: every CReLU unit
    with a nonzero pre-activation on some input is alive, exactly; the same networks as ReLU
    lose the units that are <= 0 everywhere."""
    structure, numeric = _crelu(depth=2, width=4, model_bias_init="uniform")
    numeric = numeric._replace(init_range=1.0, bias_scale=0.5)
    inputs = 2.0 + jax.random.uniform(jax.random.key(7), (2, 16), minval=-1, maxval=1)
    dead_relu = 0
    for seed in range(30):
        params = model.init_params(structure, numeric, jax.random.key(seed))
        now = train.health(structure, numeric, params, Data(inputs, jnp.zeros(16)))
        fwd = model.forward(structure, numeric, params, inputs)
        zero_everywhere = np.stack(
            [np.all(np.asarray(z) == 0, axis=-1) for z in fwd.pre_activations]
        )
        np.testing.assert_array_equal(now.dead, zero_everywhere)
        assert not np.asarray(now.dead).any()
        dead_relu += int(np.asarray(now.inactive).sum())
    assert dead_relu > 0  # the same pre-activations would have killed ReLU units


def test_crelu_gradient_reaches_a_unit_that_is_negative_everywhere():
    """The unit with z < 0 on every input learns through its relu(-z) half (a ReLU unit there
    gets exactly 0); the unit with z = 0 everywhere gets exactly 0, as jax.grad says."""
    structure, numeric = _crelu()
    fwd = model.forward(structure, numeric, HAND_MADE, POSITIVE.inputs)
    _, output_grad = model.loss_and_output_grad("bce", fwd.output, POSITIVE.targets)
    grads = model.backward(HAND_MADE, fwd, output_grad, use_bias=True)
    reference = jax.grad(
        lambda p: model.loss_fn(structure, numeric, p, POSITIVE.inputs, POSITIVE.targets)
    )(HAND_MADE)
    for mine, theirs in zip(jax.tree.leaves(grads), jax.tree.leaves(reference), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=2e-6, atol=1e-7)
    assert np.all(np.asarray(grads[0][0][1]) != 0) and float(grads[0][1][1]) != 0
    assert np.all(np.asarray(grads[0][0][2]) == 0) and float(grads[0][1][2]) == 0


def test_redo_on_crelu_clears_both_outputs_of_a_redrawn_unit():
    """The zero unit is dormant (tau 0): re-drawn, and both its outputs' outgoing weights zeroed;
    the other units and their outgoing weights are kept."""
    structure, numeric = _crelu()
    flat = model.flatten(HAND_MADE)
    optimizer = train.make_optimizer("adam", numeric)
    fresh = model.flatten(model.init_params(structure, numeric, jax.random.key(5)))
    state, reset = remedies.redo(
        structure, numeric, POSITIVE, remedies.TrainState(flat, optimizer.init(flat)), fresh
    )
    np.testing.assert_array_equal(reset, [[False, False, True]])
    new, drawn = model.unflatten(structure, state.params), model.unflatten(structure, fresh)
    np.testing.assert_array_equal(new[0][0][:2], HAND_MADE[0][0][:2])
    np.testing.assert_array_equal(new[0][0][2], drawn[0][0][2])
    kept = np.asarray(HAND_MADE[1][0][0]) * [1, 1, 0, 1, 1, 0]  # relu(z_2), relu(-z_2): 0
    np.testing.assert_array_equal(new[1][0][0], kept)


def test_crelu_rows_get_no_relu_theory():
    """CReLU is not ReLU: no closed form of P(dead at init), with a note saying why."""
    values = dict(make_setting(model_activation="crelu").values)
    found = theory.p_dead_init_theory(values, np.ones((4, 2)))
    assert np.isnan([found.exact, found.lower, found.upper]).all() and found.name == ""
    assert "crelu" in found.note and "exactly 0" in found.note
    runs = pd.DataFrame([values, dict(make_setting().values)])
    table = analysis.theory_per_setting(runs, lambda setting: np.ones((4, 2)))
    crelu = table[table["model.activation"] == "crelu"].iloc[0]
    assert np.isnan(crelu["p_dead_init_theory"]) and np.isnan(crelu["p_dead_init_lower"])
    relu = table[table["model.activation"] == "relu"].iloc[0]
    assert not np.isnan(relu["p_dead_init_theory"])  # (ReLU, the same data: a closed form)


def test_crelu_in_the_engine_is_never_born_dead():
    """A small CReLU run on all-positive data: no unit dead at init or at the end, while some
    units sit <= 0 on every input (inactive)."""
    config = tiny_config(model__activation="crelu", model__width=2, data__offset=2.0)
    ((structure, settings),) = load_study(config).groups().items()
    assert train.start_structure(structure).activation == "crelu"  # its shapes are crelu's
    numerics = jax.tree.map(lambda *v: np.asarray(v, np.float32), *(s.numeric for s in settings))
    ids = np.asarray([s.setting_id for s in settings], np.int32)
    metrics = make_train(structure)(
        np.uint32(1), numerics, ids, np.arange(64, dtype=np.int32), None
    ).metrics
    assert not np.asarray(metrics.dead_init).any() and not np.asarray(metrics.dead_end).any()
    assert np.asarray(metrics.dead_units_init).sum() == 0
    assert np.asarray(metrics.inactive_units_init).sum() > 0


# --------------------------------------------------------------------------------------------
# Orthogonal init.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fan_in, fan_out", [(2, 1), (1, 1), (1, 5), (3, 3), (4, 7), (7, 4), (12, 12), (20, 50)]
)
def test_orthogonal_weights_have_orthonormal_rows_or_columns(fan_in, fan_out):
    """W W^T = I (fan_out <= fan_in: orthonormal rows) or W^T W = I (orthonormal columns),
    to float32 precision, for several keys; other keys, other matrices."""
    draws = [
        np.asarray(model._orthogonal(jax.random.key(seed), fan_in, fan_out), np.float64)
        for seed in range(5)
    ]
    for w in draws:
        assert w.shape == (fan_out, fan_in)
        gram = w @ w.T if fan_out <= fan_in else w.T @ w
        np.testing.assert_allclose(gram, np.eye(min(fan_in, fan_out)), atol=2e-6)
    assert not np.array_equal(draws[0], draws[1])
    np.testing.assert_array_equal(draws[0], model._orthogonal(jax.random.key(0), fan_in, fan_out))


def test_orthogonal_directions_are_uniform():
    """Haar: a 1 x 2 layer's row is a uniform direction on the circle (sign-corrected QR), so
    each entry has mean 0 and its angle is uniform, within 4 standard errors."""
    rows = np.asarray(
        jax.vmap(lambda k: model._orthogonal(k, 2, 1)[0])(jax.random.split(jax.random.key(2), 4000))
    )
    angle = np.arctan2(rows[:, 1], rows[:, 0])
    share = (angle > 0).mean()
    assert abs(share - 0.5) < 4 * np.sqrt(0.25 / rows.shape[0])
    for entry in rows.T:
        assert abs(entry.mean()) < 4 * entry.std() / np.sqrt(entry.size)
    # E[cos^2] = 1/2 for a uniform angle (sd of cos^2 is 1 / sqrt 8)
    assert abs((rows[:, 0] ** 2).mean() - 0.5) < 4 / np.sqrt(8 * rows.shape[0])


@pytest.mark.parametrize("activation, gain", [("relu", 2**0.5), ("tanh", 5 / 3), ("crelu", 2**0.5)])
def test_orthogonal_init_scales_hidden_layers_by_the_gain(activation, gain):
    """init_params: hidden layers orthogonal times the activation's gain, the output layer's
    gain 1; biases as model.bias_init says (zeros by default)."""
    setting = make_setting(
        model_init="orthogonal",
        model_activation=activation,
        model_depth=2,
        model_width=3,
        data_dim=5,
    )
    params = model.init_params(setting.structure, setting.numeric, jax.random.key(4))
    (w1, b1), (w2, b2), (w3, b3) = (
        tuple(np.asarray(leaf, np.float64) for leaf in layer) for layer in params
    )
    np.testing.assert_allclose(w1 @ w1.T, gain**2 * np.eye(3), atol=1e-5)  # 3 x 5: rows
    fan_in = 6 if activation == "crelu" else 3  # 3 x fan_in: rows
    np.testing.assert_allclose(w2 @ w2.T, gain**2 * np.eye(3), atol=1e-5)
    np.testing.assert_allclose(w3 @ w3.T, [[1.0]], atol=1e-6)
    assert w2.shape == (3, fan_in)
    assert not np.concatenate([b1, b2, b3]).any()


def test_orthogonal_draws_do_not_depend_on_the_chunk_and_keep_the_activation():
    """The engine's start program: initializations 0..2 drawn alone are the same bits as in a
    block of 8; the structure the start compiles for keeps the activation (its gain)."""
    from study.train import make_start, start_structure

    setting = make_setting(
        model_init="orthogonal", model_activation="tanh", model_width=4, data_dim=3
    )
    start = make_start(start_structure(setting.structure))
    assert start_structure(setting.structure).activation == "tanh"
    numerics = jax.tree.map(lambda v: np.asarray([v], np.float32), setting.numeric)
    ids = np.asarray([setting.setting_id], np.int32)
    _, block = start(np.uint32(0), numerics, ids, np.arange(8, dtype=np.int32), None)
    _, alone = start(np.uint32(0), numerics, ids, np.arange(3, dtype=np.int32), None)
    np.testing.assert_array_equal(np.asarray(alone.params), np.asarray(block.params)[:, :3])
    w = np.asarray(model.unflatten(setting.structure, block.params[0, 5])[0][0], np.float64)
    np.testing.assert_allclose(w.T @ w, (5 / 3) ** 2 * np.eye(3), atol=1e-5)  # 4 x 3: columns


def test_a_folder_from_when_adamw_alone_read_the_decay_is_refused_with_why(tmp_path, capsys):
    """A manifest from before (no train.warmup_steps; train.weight_decay 1e-4 for adam, unread)
    differs from today's resolution (0) in that key alone: exit 3, one line saying why and that
    --force rewrites it; --force then writes the same runs."""
    config = tiny_config(model__width=2)
    assert run_cli(tmp_path, config, extra=["--no-figures"]) == 0
    folder = tmp_path / "out"
    before = pd.read_parquet(folder / "runs.parquet")
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["config"]["train.warmup_steps"]
    manifest["config"]["train.weight_decay"] = ADAMW_WEIGHT_DECAY
    (folder / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert run_cli(tmp_path, config, extra=["--no-figures"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "was written when only adamw read train.weight_decay (0.0001 there, 0.0 now" in err
    assert "--force" in err
    assert run_cli(tmp_path, config, extra=["--no-figures", "--force"]) == 0
    pd.testing.assert_frame_equal(
        pd.read_parquet(folder / "runs.parquet"), before, check_exact=True
    )


def test_a_folder_from_before_is_refused_where_the_config_now_decays_another_optimizer(
    tmp_path, capsys
):
    """An old folder whose config gave sgd a weight decay (unread then, applied now) records
    the same value the config resolves to today: still refused (exit 3), its runs had none."""
    config = tiny_config(model__width=2, train__optimizer="sgd", train__weight_decay=1e-4)
    assert run_cli(tmp_path, config, extra=["--no-figures"]) == 0
    folder = tmp_path / "out"
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["config"]["train.warmup_steps"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert run_cli(tmp_path, config, extra=["--no-figures"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "only adamw read train.weight_decay" in err
