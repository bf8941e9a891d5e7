"""Remedies in the engine: sign flips at init, ReDo, shrink and perturb, L2-init.

(Batch and layer norm's backward pass is checked against jax.grad in tests/test_model.py.)
"""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import study
from study import model, remedies, train
from study.config import CHECK_INTERVENTIONS, INTERVENTIONS, load_study, make_setting
from study.data import Data
from study.train import make_train
from tests.helpers import assert_refused, run_cli, with_change


def se(values) -> float:
    """Standard error of the mean of independent values."""
    values = np.asarray(values, np.float64)
    return values.std(ddof=1) / np.sqrt(values.size)


def _numpy_forward(params, inputs):
    """Hidden activations of a ReLU MLP without normalization, in NumPy (float64)."""
    hidden, activations = np.asarray(inputs, np.float64), []
    for weights, bias in params[:-1]:
        hidden = np.maximum(np.asarray(weights) @ hidden + np.asarray(bias)[:, None], 0.0)
        activations.append(hidden)
    return activations


def _problem(depth=2, width=4, offset=2.0, seed=0, n=32):
    """Random parameters (some units dead, some alive) and all-positive training inputs."""
    setting = make_setting(
        model_depth=depth, model_width=width, model_bias_init="uniform", data_offset=offset
    )
    key_params, key_x = jax.random.split(jax.random.key(seed))
    numeric = setting.numeric._replace(init_range=1.0, bias_scale=0.2)
    params = model.init_params(setting.structure, numeric, key_params)
    inputs = offset + jax.random.uniform(key_x, (setting.structure.dim, n), minval=-1, maxval=1)
    return setting.structure, numeric, params, Data(inputs, jnp.zeros(n))


def test_the_config_knows_which_remedies_act_at_the_checks():
    """config (JAX-free) names the remedies that act at the death checks, whose interval it
    checks; the engine applies exactly those there."""
    assert set(CHECK_INTERVENTIONS) == set(remedies.AT_CHECKS) < set(INTERVENTIONS)


def test_flip_dead_flips_exactly_the_dead_units_layer_by_layer():
    """Each layer's dead units (judged on the already flipped layers below) are negated; others
    are untouched. Checked against a NumPy re-implementation over many random networks."""
    total_flipped = 0
    for seed in range(40):
        structure, numeric, params, data = _problem(depth=3, width=3, seed=seed)
        flat, flipped = remedies.flip_dead_units(structure, numeric, data, model.flatten(params))
        ours = model.unflatten(structure, flat)
        hidden, expected = np.asarray(data.inputs, np.float64), []
        for (weights, bias), (new_w, new_b) in zip(params[:-1], ours[:-1], strict=True):
            weights, bias = np.asarray(weights, np.float64), np.asarray(bias, np.float64)
            dead = np.all(weights @ hidden + bias[:, None] <= 0, axis=1)
            sign = np.where(dead, -1.0, 1.0)
            np.testing.assert_array_equal(new_w, weights * sign[:, None])
            np.testing.assert_array_equal(new_b, bias * sign)
            hidden = np.maximum(new_w @ hidden + np.asarray(new_b)[:, None], 0.0)
            expected.append(dead.sum())
        np.testing.assert_array_equal(flipped, expected)
        total_flipped += sum(expected)
    assert total_flipped > 0  # the check above saw flips


def test_flip_dead_leaves_no_zero_bias_unit_dead_on_positive_data():
    """With zero biases on all-positive inputs a unit is dead iff w.x <= 0 on every input, and
    then -w.x >= 0 with some > 0 (w != 0): after the flip no first-layer unit is dead."""
    setting = make_setting(model_flip_dead=True, model_width=4, data_offset=2.0, train_steps=10)
    runs = study.simulate(setting, n_inits=200)
    assert runs["dead_units_init_l1"].max() == 0
    assert not runs["dead_init"].any()
    # as many units were flipped as start dead without the flip (other draws, same law)
    unflipped = study.simulate(
        make_setting(model_width=4, data_offset=2.0, train_steps=10), n_inits=200
    )
    flipped, dead = runs["flipped_units_l1"] / 4, unflipped["dead_units_init_l1"] / 4
    assert 0.2 < dead.mean() < 0.5
    assert abs(flipped.mean() - dead.mean()) < 4 * np.hypot(se(flipped), se(dead))


def test_redo_redraws_exactly_the_dormant_units_and_clears_their_moments():
    structure, numeric, params, data = _problem(depth=2, width=4, seed=3)
    numeric = numeric._replace(redo_tau=0.3)
    flat = model.flatten(params)
    optimizer = train.make_optimizer("adam", numeric)
    opt_state = optimizer.init(flat)
    # moments that are non-zero everywhere
    opt_state = jax.tree.map(
        lambda leaf: leaf + 0.5 if leaf.shape == flat.shape else leaf, opt_state
    )
    fresh = model.flatten(model.init_params(structure, numeric, jax.random.key(99)))

    state, reset = remedies.redo(
        structure, numeric, data, remedies.TrainState(flat, opt_state), fresh
    )

    activations = _numpy_forward(params, data.inputs)
    expected = []
    for h in activations:
        mean_abs = np.abs(h).mean(axis=1)
        expected.append(mean_abs / mean_abs.mean() <= 0.3 if mean_abs.mean() > 0 else h[:, 0] >= 0)
    np.testing.assert_array_equal(reset, np.stack(expected))
    assert 0 < int(np.sum(reset)) < reset.size  # some units re-drawn, some kept

    new, fresh_layers = model.unflatten(structure, state.params), model.unflatten(structure, fresh)
    cleared = []  # per parameter: re-drawn or zeroed, so its moments must be 0
    for index, (old_layer, new_layer) in enumerate(zip(params, new, strict=True)):
        fan_out, fan_in = old_layer[0].shape
        own = np.asarray(reset[index]) if index < len(reset) else np.zeros(fan_out, bool)
        below = np.asarray(reset[index - 1]) if index > 0 else np.zeros(fan_in, bool)
        weights = np.where(own[:, None], fresh_layers[index][0], old_layer[0])
        np.testing.assert_array_equal(new_layer[0], np.where(below[None, :], 0.0, weights))
        np.testing.assert_array_equal(
            new_layer[1], np.where(own, fresh_layers[index][1], old_layer[1])
        )
        cleared += [(own[:, None] | below[None, :]).ravel(), own]
    cleared = np.concatenate(cleared)
    for leaf in jax.tree.leaves(state.opt_state):
        if leaf.shape == flat.shape:
            leaf = np.asarray(leaf)
            assert np.all(leaf[cleared] == 0) and np.all(leaf[~cleared] == 0.5)


SGD_POSITIVE = dict(
    data_offset=2.0, model_width=1, train_optimizer="sgd", train_learning_rate=0.5, train_steps=200
)


def test_shrink_never_revives_a_first_layer_unit_while_redo_does():
    """On fixed all-positive data a first-layer unit dead at init has zero gradient: training
    never revives it, and neither does a pure shrink (sign(w.x) is kept). ReDo's fresh draw is
    alive as often as any initialization is: P(revived | dead at init) = 1 - P(dead at init)."""
    shrink = study.simulate(
        make_setting(
            train_intervention="shrink_perturb", train_shrink=0.5, train_perturb=0.0, **SGD_POSITIVE
        ),
        n_inits=300,
    )
    assert shrink["dead_init"].sum() > 50
    assert not shrink["revived"].any() and not shrink["revived_by_intervention"].any()
    assert shrink.loc[shrink["dead_init"], "dead_end"].all()

    redo = study.simulate(make_setting(train_intervention="redo", **SGD_POSITIVE), n_inits=600)
    dead = redo[redo["dead_init"]]
    assert not redo["revived_by_training"].any()  # depth 1, SGD, full batch: never by training
    assert (redo["revived"] == redo["revived_by_intervention"]).all()
    # one intervention (step 100) re-draws the dead unit, alive with probability 1 - p_dead
    revived = dead["revived_by_intervention"].astype(float)
    p_alive = 1 - redo["dead_init"].mean()
    assert abs(revived.mean() - p_alive) < 4 * np.hypot(se(revived), se(redo["dead_init"]))
    assert (dead.loc[dead["revived_by_intervention"], "reset_units_l1"] >= 1).all()


def test_l2_init_pulls_toward_the_initial_parameters():
    """L2-init adds l2_init * (theta - theta0) to the gradient: a first-layer unit dead at init
    has zero loss gradient and theta = theta0, so under SGD it never moves and stays dead."""
    runs = study.simulate(
        make_setting(train_intervention="l2_init", train_l2_init=0.1, **SGD_POSITIVE), n_inits=200
    )
    dead = runs[runs["dead_init"]]
    assert len(dead) > 30 and dead["dead_end"].all() and not runs["revived_by_intervention"].any()


@pytest.mark.slow  # 10 s; test_engine's and test_continual's no-recompile tests stay by default
def test_new_remedy_values_do_not_recompile(caplog):
    """redo_tau, shrink, perturb and l2_init are traced: new values share one program."""
    for intervention in ("redo", "shrink_perturb", "l2_init"):
        config = {"train": {"steps": 20, "intervention": intervention, "intervention_every": 10}}
        ((structure, settings),) = load_study(config).groups().items()
        train = make_train(structure)
        numerics = jax.tree.map(
            lambda *v: np.asarray(v, np.float32), *(s.numeric for s in settings)
        )
        ids, indices = np.asarray([s.setting_id for s in settings], np.int32), np.arange(4)
        train(np.uint32(0), numerics, ids, indices.astype(np.int32), None)  # compiles
        caplog.clear()
        with caplog.at_level(logging.WARNING), jax.log_compiles():
            for value in (0.0, 0.3, 2.0):
                other = numerics._replace(
                    redo_tau=numerics.redo_tau + value,
                    shrink=numerics.shrink * value,
                    perturb=numerics.perturb + value,
                    l2_init=numerics.l2_init + value,
                )
                train(np.uint32(1), other, ids, indices.astype(np.int32), None)
        assert [r for r in caplog.records if "Compiling" in r.getMessage()] == [], intervention


REFUSED = [
    ("train.shrink", -0.5, ("train.shrink", "-0.5", ">= 0")),
    ("train.perturb", -1.0, ("train.perturb", ">= 0")),
    ("train.redo_tau", -0.1, ("train.redo_tau", ">= 0")),
    ("train.l2_init", -0.01, ("train.l2_init", ">= 0")),
    ("model.norm", "group", ("model.norm", "'group'", "batch")),
    ("train.intervention", "reset", ("train.intervention", "'reset'", "redo")),
]


@pytest.mark.parametrize("key,value,fragments", REFUSED, ids=lambda v: str(v)[:20])
def test_bad_remedy_values_are_refused(tmp_path, capsys, key, value, fragments):
    assert_refused(run_cli(tmp_path, with_change(key, value)), capsys, tmp_path, *fragments)


def test_inconsistent_remedy_settings_are_refused(tmp_path, capsys):
    config = with_change("train.intervention", "redo")
    config["train"].update(intervention_every=3)  # log_every is 2
    assert_refused(
        run_cli(tmp_path, config),
        capsys,
        tmp_path,
        "intervention_every = 3",
        "multiple of train.log_every = 2",
    )
    config["train"].update(intervention_every=4)  # = steps: no intervention would happen
    assert_refused(
        run_cli(tmp_path, config), capsys, tmp_path, "intervention_every = 4", "no intervention"
    )
    config["train"].update(intervention_every=2)
    config["model"] = {"depth": 0}  # a linear model has no units to re-draw
    assert_refused(run_cli(tmp_path, config), capsys, tmp_path, "model.depth = 0", "re-draw")
    config = with_change("model.norm", "layer")
    assert_refused(
        run_cli(tmp_path, config), capsys, tmp_path, "model.norm = 'layer'", "width >= 2"
    )


def test_redo_draws_do_not_depend_on_chunking():
    """ReDo's fresh draws come from the initialization's key and the step: the same bits in
    any chunk (the full grid with norm and flips is in test_engine's slow chunking test)."""
    setting = make_setting(
        model_width=2,
        data_offset=1.0,
        train_steps=20,
        train_intervention="redo",
        train_intervention_every=10,
        train_redo_tau=0.2,
    )
    whole = study.simulate(setting, n_inits=8, chunk_size=8)
    chunked = study.simulate(setting, n_inits=8, chunk_size=3)
    assert whole["reset_units_l1"].sum() > 0  # ReDo did re-draw units
    pd.testing.assert_frame_equal(whole, chunked, check_exact=True)


def test_structures_that_differ_only_in_training_keys_share_one_start():
    """SCHEMA's phase: a remedy, the optimizer or the length of training leaves the start (data
    and drawn parameters) alone; kaiming_uniform keeps the activation, whose gain it reads."""
    plain = make_setting(model_width=3).structure
    remedied = make_setting(
        model_width=3,
        model_flip_dead=True,
        train_optimizer="sgd",
        train_steps=40,
        train_log_every=10,
        train_curves=True,
        train_intervention="redo",
        train_intervention_every=20,
        model_activation="tanh",
    ).structure
    assert train.start_structure(plain) == train.start_structure(remedied)
    assert train.start_structure(plain) != train.start_structure(
        make_setting(model_width=4).structure
    )
    relu, tanh = (
        make_setting(model_init="kaiming_uniform", model_activation=name).structure
        for name in ("relu", "tanh")
    )
    assert train.start_structure(relu) != train.start_structure(tanh)
