"""Streams in the engine: online learning of Dohare et al.'s slowly-changing regression, its
curves, the definitions of death side by side, and the learners the paper uses."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest

import study
from study import cli, engine, model, results, stream
from study.config import load_study, make_setting
from study.data import key_streams
from study.train import SHARED_DRAWS, STREAM_DRAWS
from tests.helpers import STREAM_SMALL, assert_refused, run_cli


@pytest.fixture(scope="module")
def small_tables():
    """STREAM_SMALL's ``(runs, curves)`` (20 initializations, seed 5), shared by the tests that
    read them."""
    return study.simulate_curves(make_setting(**STREAM_SMALL), n_inits=20, seed=5)


def _reference_errors(setting, index: int, convention="paper", flip_one=True) -> np.ndarray:
    """The binned online error of initialization ``index`` of ``setting`` (seed 5) in a plain
    loop: one example of the stream per step, jax.grad of the squared error, optax SGD."""
    structure, numeric = setting.structure, setting.numeric
    optimizer = optax.sgd(0.01)

    @jax.jit
    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(
            lambda p: model.loss_fn(structure, numeric, p, x[:, None], y[None])
        )(params)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    # the keys the engine derives for this initialization (pairing "shared")
    data_root, init_root = key_streams(np.uint32(5))
    key = jax.random.fold_in(jax.random.fold_in(data_root, STREAM_DRAWS), index)
    init_key = jax.random.fold_in(jax.random.fold_in(init_root, SHARED_DRAWS), index)
    params = model.init_params(structure, numeric, jax.random.split(init_key)[0])
    teacher = stream.make_teacher(key, 20, 100, 0.7, convention=convention)
    steps = jnp.arange(300, dtype=jnp.int32)
    _, examples = stream.examples(
        teacher, stream.initial_bits(key, 15), key, steps, 50, flip_one=flip_one
    )
    opt_state = optimizer.init(params)
    losses = []
    for t in range(300):
        params, opt_state, loss = step(
            params, opt_state, examples.inputs[:, t], examples.targets[t]
        )
        losses.append(float(loss))
    return np.asarray(losses).reshape(6, 50).mean(axis=1)


def test_online_learning_matches_a_plain_per_example_reference(small_tables):
    """The engine's binned online error equals a plain loop (float32 rounding apart)."""
    _, curves = small_tables
    for index in range(2):
        ours = curves.loc[curves["init"] == index, "error"].to_numpy()
        assert np.isnan(ours[0]) and len(ours) == 7
        expected = _reference_errors(make_setting(**STREAM_SMALL), index)
        np.testing.assert_allclose(ours[1:], expected, rtol=2e-4)


def test_the_authors_convention_is_their_teacher_and_their_redrawn_bits():
    """data.teacher_convention = "code" and data.flip_one = false: the stream of the authors'
    code (its thresholds and output bias, every slow bit redrawn at a change), learned as the
    plain loop learns stream.examples of that convention."""
    setting = make_setting(**STREAM_SMALL, data_teacher_convention="code", data_flip_one=False)
    _, curves = study.simulate_curves(setting, n_inits=20, seed=5)
    paper = _reference_errors(make_setting(**STREAM_SMALL), 0)
    for index in range(2):
        ours = curves.loc[curves["init"] == index, "error"].to_numpy()
        expected = _reference_errors(setting, index, convention="code", flip_one=False)
        np.testing.assert_allclose(ours[1:], expected, rtol=2e-4)
    assert not np.allclose(_reference_errors(setting, 0, "code", False), paper)


def test_curves_have_a_row_per_logged_step_and_ordered_definitions(tmp_path):
    config = tmp_path / "scr.toml"
    config.write_text(
        'n_inits = 8\n[data]\nkind = "slowly_changing"\nflip_every = 100\nprobe_size = 64\n'
        '[model]\nwidth = 4\ndepth = 2\ninit = "kaiming_uniform"\n'
        '[train]\noptimizer = "sgd"\nlearning_rate = [0.01, 0.3]\nsteps = 200\nlog_every = 40\n'
    )
    assert cli.main(["run", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    curves = results.read_curves(tmp_path / "out")
    runs = results.read_runs(tmp_path / "out")
    assert not [c for c in runs if c.startswith("curve_")]
    assert len(curves) == 2 * 8 * (200 // 40 + 1)
    assert (
        curves.groupby(["train.learning_rate", "init"])["step"]
        .apply(list)
        .map(lambda s: s == [0, 40, 80, 120, 160, 200])
        .all()
    )
    for layer in (1, 2):
        dead, inactive = curves[f"dead_units_l{layer}"], curves[f"inactive_units_l{layer}"]
        rarely, dormant = curves[f"rarely_active_units_l{layer}"], curves[f"dormant_units_l{layer}"]
        assert (dead == inactive).all() and (dead == dormant).all()  # ReLU, tau 0
        assert (dead <= rarely).all()  # dead: active on no probe input, so on fewer than 1%
        zero = curves[f"zero_share_l{layer}"]
        assert zero.between(0, 1).all() and (zero[dead == 4] == 1).all()
    assert (tmp_path / "out" / "figures" / "curves.png").exists()  # error and dead share
    # the runs' end state is the curves' last point
    last = curves[curves["step"] == 200].reset_index(drop=True)
    np.testing.assert_array_equal(last["dead_units_l1"], runs["dead_units_end_l1"])


def test_chunking_does_not_change_a_stream_run(small_tables):
    """Results do not depend on chunking (that initialization i has one stream whatever the
    setting, under either pairing, is tests/test_pairing.py's)."""
    chunked = study.simulate_curves(make_setting(**STREAM_SMALL), n_inits=20, seed=5, chunk_size=7)
    for whole, parts in zip(small_tables, chunked, strict=True):  # the runs, then the curves
        pd.testing.assert_frame_equal(whole, parts, check_exact=True)


def test_linear_model_and_sigmoid_learners():
    """depth 0 is the linear baseline (no hidden unit, never dead); sigmoid units do not die
    on moderate pre-activations (the stream's learners, here on the cheaper default data)."""
    linear = study.simulate(make_setting(model_depth=0, train_steps=20), n_inits=32)
    assert not linear["dead_end"].any() and not [c for c in linear if "units" in c]
    assert linear["final_accuracy"].mean() > 0.9  # a linear rule separates the default labels
    sigmoid = study.simulate(
        make_setting(model_activation="sigmoid", model_init="kaiming_uniform", train_steps=20),
        n_inits=32,
    )
    assert (sigmoid["dead_units_end_l1"] == 0).all() and (
        sigmoid["inactive_units_init_l1"] > 0
    ).any()


STREAM = {
    "data": {"kind": "slowly_changing", "probe_size": 16},
    "train": {"steps": 4, "log_every": 2},
}


@pytest.mark.parametrize(
    "section, key, value, fragments",
    [
        ("train", "batch_size", 2, ("train.batch_size = 2", "allowed: 1")),
        ("data", "flipping_bits", 21, ("data.flipping_bits = 21", "data.dim = 20")),
        ("data", "probe_size", 0, ("data.probe_size", "> 0")),
        ("train", "log_every", 3, ("train.log_every = 3", "divide")),
        ("train", "loss", "bce", ("train.loss", "regression")),
    ],
)
def test_bad_stream_values_are_refused(tmp_path, capsys, section, key, value, fragments):
    config = {name: dict(table) for name, table in STREAM.items()}
    config[section][key] = value
    assert_refused(run_cli(tmp_path, config), capsys, tmp_path, *fragments)


def test_curves_of_groups_with_different_layers_join_into_one_table():
    """A study mixing depths (or curves on and off) has curve columns some groups lack: the
    joined table has every group's rows, NaN where a group has no such column; a group without
    curves adds no rows (and, as the written tables always had it, makes the columns float)."""
    shallow = pd.DataFrame(
        {"model.depth": [0, 0], "init": [0, 0], "step": np.array([0, 5], np.int32)}
    )
    deep = pd.DataFrame(
        {
            "model.depth": [2, 2, 2],
            "init": [0, 0, 0],
            "step": np.array([0, 5, 10], np.int32),
            "dead_units_l2": np.array([0, 1, 1], np.int32),
        }
    )
    curves = engine.concat_curves([shallow, deep])
    assert list(curves.columns) == ["model.depth", "init", "step", "dead_units_l2"]
    assert list(curves["model.depth"]) == [0, 0, 2, 2, 2]
    assert list(curves["step"]) == [0, 5, 0, 5, 10] and curves["step"].dtype == np.int32
    np.testing.assert_array_equal(curves["dead_units_l2"], [np.nan, np.nan, 0, 1, 1])
    with_none = engine.concat_curves([deep, None])
    assert len(with_none) == 3 and with_none["step"].dtype == np.float64
    assert engine.concat_curves([None, None]) is None


@pytest.mark.slow  # two compiles; concat_curves above and the CLI run above cover it by default
def test_a_study_of_two_depths_has_one_curves_table_in_grid_order():
    """Through the engine: groups of depths 2 and 1 give one table, rows in group order, the
    second layer's columns NaN for the shallow group; the runs hold no curve columns."""
    train = {"steps": 10, "log_every": 5, "curves": True}
    sweep = load_study({"model": {"depth": [2, 1], "width": 3}, "train": train})
    runs, curves = study.simulate_curves(sweep, n_inits=2, seed=1)
    assert not [name for name in runs if name.startswith("curve")]
    assert list(curves["model.depth"]) == [2] * 6 + [1] * 6
    assert list(curves["step"]) == [0, 5, 10] * 4 and curves["step"].dtype == np.int32
    assert curves["dead_units_l2"].isna().tolist() == [False] * 6 + [True] * 6
    assert curves.columns.get_loc("dead_units_l2") == curves.columns.get_loc("dead_units_l1") + 1
