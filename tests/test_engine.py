"""The compiled engine against closed forms, its invariants, determinism and compile count."""

import logging
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest

from study import runtime, simulate, theory
from study.config import load_study, make_setting
from study.data import make_data
from study.engine import Engine, run_group, simulate_curves
from study.errors import ConfigError
from study.host import usable_cpus
from study.train import key_streams, make_train
from tests.helpers import standard_errors

N_LARGE = 20_000  # initializations for the closed-form checks: 4 SE of p = 1/4 is 0.012
AT_INIT = dict(train_steps=1, train_log_every=1)  # only the state at initialization matters
AT_INIT_TOML = {"steps": 1, "log_every": 1}


def engine_data(setting, seed=0):
    """The training set the engine uses for ``setting`` under ``seed``."""
    return make_data(setting.structure, setting.numeric, key_streams(seed)[0], None)


def assert_within_4_se(count, n, p):
    estimate = count / n
    assert abs(estimate - p) <= 4 * standard_errors(p, n), (estimate, p, n)


def test_question_network_is_born_dead_one_time_in_four(tmp_path):
    """2-1-1 ReLU, zero bias, positive data reaching both axes: P(dead at init) = 1/4."""
    rng = np.random.default_rng(0)
    points = rng.uniform(0.1, 2.0, size=(254, 2))
    points = np.vstack([points, [[1.0, 1e-9], [1e-9, 1.0]]])  # the data's cone: whole quadrant
    labels = (points[:, 0] > points[:, 1]).astype(int)
    path = tmp_path / "quadrant.csv"
    pd.DataFrame({"x1": points[:, 0], "x2": points[:, 1], "y": labels}).to_csv(path, index=False)
    setting = make_setting(data_kind="csv", data_path=str(path), **AT_INIT)
    assert theory.p_dead_relu_2d(points) == pytest.approx(0.25, abs=1e-8)
    runs = simulate(setting, n_inits=N_LARGE, seed=1)
    assert_within_4_se(runs["dead_init"].sum(), N_LARGE, 0.25)
    # a dead network predicts one class for every input
    assert runs.loc[runs["dead_init"], "dead_units_init_l1"].eq(1).all()


@pytest.mark.parametrize("init", ["uniform", "normal"])
def test_death_depends_on_the_angle_the_data_span(init):
    """Offset 2: the cloud [1, 3]^2 spans a narrower angle, so P(dead) exceeds 1/4 (theory)."""
    setting = make_setting(data_offset=2.0, model_init=init, **AT_INIT)
    inputs = np.asarray(engine_data(setting).inputs)
    expected = theory.p_dead_relu_2d(inputs, weights=init)
    assert expected > 0.3
    runs = simulate(setting, n_inits=N_LARGE, seed=2)
    assert_within_4_se(runs["dead_init"].sum(), N_LARGE, expected)
    assert runs["dead_init"].eq(runs["inactive_units_init_l1"].eq(1)).all()  # ReLU: same thing


@pytest.mark.parametrize("activation", ["leaky_relu", "elu", "softplus"])
def test_units_that_cannot_die_never_do(activation):
    setting = make_setting(data_offset=2.0, model_activation=activation, **AT_INIT)
    runs = simulate(setting, n_inits=N_LARGE // 4, seed=3)
    assert not runs["dead_init"].any()
    assert runs["dead_units_init_l1"].eq(0).all()
    if activation == "leaky_relu":  # inactive (z <= 0 everywhere) is not dead
        assert runs["inactive_units_init_l1"].mean() > 0.25


def test_one_relu_layer_on_centered_data_is_not_born_dead():
    """Centered 2-D data surround the origin: every w has w.x > 0 somewhere, so P(dead) = 0."""
    setting = make_setting(data_offset=0.0, model_bias=False, **AT_INIT)
    runs = simulate(setting, n_inits=N_LARGE // 4, seed=4)
    assert not runs["dead_init"].any()


# One structure by default (a deep, wide one: both exponents of the formula matter); the grid of
# 3 widths x 2 depths (6 compiles, ~35 s) when slow.
@pytest.mark.parametrize(
    "widths, depths", [(2, 5), pytest.param([1, 2, 3], [1, 5], marks=pytest.mark.slow)]
)
def test_born_dead_on_a_ray_matches_closed_form(widths, depths):
    """1-D positive inputs lie on one ray: P(dead) = 1 - (1 - 2^-N)^L (Lu et al. 2019)."""
    study = load_study(
        {
            "data": {"dim": 1, "offset": 2.0},
            "model": {"width": widths, "depth": depths, "init": "he_normal"},
            "train": AT_INIT_TOML,
        }
    )
    runs = simulate(study, n_inits=N_LARGE // 2, seed=5)
    for (width, depth), group in runs.groupby(["model.width", "model.depth"]):
        assert_within_4_se(group["dead_init"].sum(), len(group), theory.p_dead_ray(width, depth))


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_born_dead_stays_dead(optimizer):
    setting = make_setting(
        data_offset=2.0,
        train_optimizer=optimizer,
        train_learning_rate=0.1,
        train_steps=200,
    )
    runs = simulate(setting, n_inits=400, seed=6)
    born_dead = runs[runs["dead_init"]]
    assert len(born_dead) > 80  # about a third are born dead
    assert born_dead["dead_end"].all()
    assert not born_dead["revived"].any()
    assert born_dead["death_step"].eq(0).all()
    # the output bias still learns, so a dead network predicts one class for every input
    assert born_dead["predicted_positive"].isin([0.0, 1.0]).all()


FUNCTIONS = {
    "abs": np.abs,
    "square": np.square,
    "sin": lambda x: np.sin(np.pi * x),
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "x_sin5x": lambda x: x * np.sin(5 * x),
    "step_sin5x": lambda x: np.where(x > 0, 1.0, 0.0) + 0.2 * np.sin(5 * x),
}


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_function_targets_are_their_formulas(function):
    """``data.kind = 'function'``: targets = scale * f(x) + shift on x ~ U(-1, 1), f written
    out here in NumPy."""
    setting = make_setting(
        data_kind="function", data_dim=1, data_function=function, data_offset=0.0,
        data_target_scale=2.0, data_target_shift=-0.5,
    )  # fmt: skip
    data = engine_data(setting)
    x = np.asarray(data.inputs[0], np.float64)
    assert x.min() < -0.9 and x.max() > 0.9
    expected = 2.0 * FUNCTIONS[function](x) - 0.5
    np.testing.assert_allclose(np.asarray(data.targets), expected, rtol=1e-5, atol=1e-6)


def test_dense_first_checks_refine_the_step_of_death_and_nothing_else():
    """``train.log_first``: checks at every step before it, then every ``log_every``; training
    is bit for bit the same; the step of death is the first check from which the curves'
    dead-unit counts show a dead layer at every later check."""

    def two_layers(log_first):
        train = {"steps": 60, "log_every": 6, "log_first": log_first, "curves": True}
        train |= {"learning_rate": 0.5, "optimizer": "momentum"}
        model = {"depth": 2, "width": 2}
        return load_study({"data": {"offset": [0.0, 2.0]}, "model": model, "train": train})

    regular, _ = simulate_curves(two_layers(0), n_inits=300, seed=7)
    dense, curves = simulate_curves(two_layers(12), n_inits=300, seed=7)
    for column in ("final_loss", "initial_loss", "dead_init", "dead_end", "dead_units_end_l2"):
        np.testing.assert_array_equal(dense[column], regular[column])
    expected_steps = [*range(12), *range(12, 61, 6)]
    for _, points in curves.groupby(["data.offset", "init"]):
        assert points["step"].tolist() == expected_steps
    assert (dense["death_step"] != regular["death_step"]).sum() > 20  # it does refine
    assert dense["death_step"].between(1, 11).sum() > 20  # deaths inside the dense steps
    # the step of death from the curves alone
    layers = curves[["dead_units_l1", "dead_units_l2"]].eq(2).any(axis=1)
    for (offset, init), points in curves.assign(dead=layers).groupby(["data.offset", "init"]):
        dead = points["dead"].to_numpy()
        stays = np.flip(np.logical_and.accumulate(np.flip(dead)))
        death = int(points["step"].to_numpy()[stays.argmax()]) if stays.any() else -1
        row = dense[(dense["data.offset"] == offset) & (dense["init"] == init)]
        assert int(row["death_step"].iloc[0]) == death


def test_metrics_are_consistent():
    study = load_study(
        {
            "data": {"offset": [0.0, 2.0]},
            "model": {"depth": 2, "width": 2},
            "train": {"steps": 60, "log_every": 6, "learning_rate": 0.5, "optimizer": "momentum"},
        }
    )
    runs = simulate(study, n_inits=300, seed=7)
    alive = ~runs["dead_end"]
    assert runs.loc[alive, "death_step"].eq(-1).all()
    assert runs.loc[runs["dead_end"], "death_step"].between(0, 60).all()
    logged = (runs["death_step"] == -1) | (runs["death_step"] % 6 == 0)
    assert logged.all()
    for stage in ("init", "end"):
        layers = runs[[f"dead_units_{stage}_l1", f"dead_units_{stage}_l2"]]
        assert runs[f"dead_{stage}"].eq(layers.eq(2).any(axis=1)).all()
        # ReLU with tau = 0: dead == inactive == dormant
        for layer in (1, 2):
            dead = runs[f"dead_units_{stage}_l{layer}"]
            assert dead.eq(runs[f"inactive_units_{stage}_l{layer}"]).all()
            assert dead.eq(runs[f"dormant_units_{stage}_l{layer}"]).all()
    assert runs["final_accuracy"].between(0, 1).all()
    assert not runs["diverged"].any()


# (batch norm is left out: its last bits can depend on the chunk size, see model.normalize)
REMEDIES = {"norm": "layer", "flip_dead": True, "intervention": "redo", "redo_tau": 0.2}


@pytest.mark.parametrize(
    "width, remedies",
    # elementwise layers, matmuls (144 weights), remedies (slow: about 45 s, five compiles of
    # the largest program; tests/test_remedies.py checks ReDo's draws by default)
    [(2, {}), (12, {}), pytest.param(2, REMEDIES, marks=pytest.mark.slow)],
)
def test_same_seed_same_bits_and_chunking_does_not_matter(width, remedies):
    """Also with the remedies whose fresh draws happen during training (ReDo)."""
    model = {"init_range": [0.05, 0.5, 1.0], "depth": 2, "width": width}
    model.update((k, v) for k, v in remedies.items() if k in ("norm", "flip_dead"))
    train = {"steps": 20, "log_every": 5, "learning_rate": 0.3}
    if "intervention" in remedies:
        train.update(intervention_every=10, intervention="redo", redo_tau=remedies["redo_tau"])
    study = load_study({"data": {"offset": 1.0}, "model": model, "train": train})
    ((structure, settings),) = study.groups().items()
    reference = run_group(structure, settings, n_inits=12, seed=8, chunk_size=36).runs
    again = run_group(structure, settings, n_inits=12, seed=8, chunk_size=36).runs
    pd.testing.assert_frame_equal(reference, again, check_exact=True)
    # each chunk size is a compile; chunks of one on the small program only
    for chunk_size in (1, 7) if width == 2 else (7,):
        chunked = run_group(structure, settings, n_inits=12, seed=8, chunk_size=chunk_size).runs
        pd.testing.assert_frame_equal(reference, chunked, check_exact=True)
    other_seed = run_group(structure, settings, n_inits=12, seed=9, chunk_size=36).runs
    assert not np.array_equal(reference["final_loss"], other_seed["final_loss"])


def test_more_initializations_extend_rather_than_change_the_first_ones():
    # one chunk size for both: one compile instead of two (chunking is tested on its own above)
    setting = make_setting(train_steps=10, train_log_every=5)
    few = simulate(setting, n_inits=5, seed=10, chunk_size=4)
    many = simulate(setting, n_inits=9, seed=10, chunk_size=4)
    pd.testing.assert_frame_equal(few, many.iloc[:5], check_exact=True)


def test_new_numeric_values_do_not_recompile(caplog):
    """Numeric values are traced: any number of them share one compiled program.

    ``make_train`` makes a new program at each call, so the first call here compiles whatever
    earlier tests compiled."""
    study = load_study({"model": {"init_range": [0.1, 0.2]}, "train": {"steps": 5, "log_every": 5}})
    ((structure, settings),) = study.groups().items()
    train = make_train(structure)
    numerics = jax.tree.map(lambda *v: np.asarray(v, np.float32), *(s.numeric for s in settings))
    ids = np.asarray([s.setting_id for s in settings], np.int32)
    indices = np.arange(4, dtype=np.int32)
    train(np.uint32(0), numerics, ids, indices, None)  # compiles
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        for scale in (3.0, 7.5, 0.001):
            other = numerics._replace(
                init_range=numerics.init_range * scale,
                learning_rate=numerics.learning_rate / 2,
                offset=numerics.offset + scale,
            )
            train(np.uint32(scale), other, ids + 1, indices + 3, None)
    compiles = [r for r in caplog.records if "Compiling" in r.getMessage()]
    assert compiles == []
    # and the log does report a compile when a structure is new (the check can fail)
    new = make_train(structure.__class__(**{**structure.__dict__, "steps": 6}))
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        new(np.uint32(0), numerics, ids, indices, None)
    assert any("Compiling" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
@pytest.mark.usefixtures("standard_dtype_promotion")  # for optax's Adam, the reference
def test_running_power_adam_matches_optax(optimizer):
    """Our Adam (bias corrections as running products) is optax's Adam to float rounding."""
    from study.train import make_optimizer

    decay = 0.01 if optimizer == "adamw" else 0.0  # (adam with decay is adamw: test_new_remedies)
    numeric = make_setting().numeric._replace(learning_rate=0.05, momentum=0.8, weight_decay=decay)
    reference = {
        "adam": optax.adam(0.05, b1=0.8),
        "adamw": optax.adamw(0.05, b1=0.8, weight_decay=0.01),
    }[optimizer]
    ours = make_optimizer(optimizer, numeric)
    params = {"w": jnp.array([0.3, -1.2, 2.0]), "b": jnp.array([0.1])}
    state_ours, state_ref = ours.init(params), reference.init(params)
    p_ours = params
    for step in range(50):
        grads = jax.tree.map(lambda p, s=step: jnp.sin(p * (s + 1)), p_ours)
        update_ours, state_ours = ours.update(grads, state_ours, p_ours)
        update_ref, state_ref = reference.update(grads, state_ref, p_ours)
        for a, b in zip(jax.tree.leaves(update_ours), jax.tree.leaves(update_ref), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
        p_ours = optax.apply_updates(p_ours, update_ours)


def test_history_records_death_revival_and_the_step_of_death():
    """The bookkeeping of logged steps on a hand-made sequence of dead/alive states."""
    from study.train import Health, _empty_history, _record

    def health(dead_units):  # 2 layers x 2 units
        dead = jnp.array(dead_units, bool)
        return Health(dead, dead, dead, jnp.float32(0.5), jnp.bool_(True), jnp.zeros(3))

    alive, layer_two_dead, one_unit_dead = [[0, 0], [0, 0]], [[0, 0], [1, 1]], [[1, 0], [0, 0]]
    history = _empty_history(jnp.zeros((2, 2), bool))
    steps = [
        (0, one_unit_dead),
        (10, layer_two_dead),
        (20, layer_two_dead),
        (30, alive),
        (40, layer_two_dead),
        (50, layer_two_dead),
    ]
    for step, state in steps:
        history = _record(history, health(state), jnp.int32(step))
        if step == 20:
            assert bool(history.network_dead) and int(history.death_step) == 10
        if step == 30:  # the network came back: alive now, revived, no step of death
            assert not bool(history.network_dead) and bool(history.network_revived)
            assert int(history.death_step) == -1
    assert bool(history.network_dead) and int(history.death_step) == 40  # died again, for good
    assert bool(history.network_revived) and bool(history.revived_by_training)
    assert not bool(history.revived_by_intervention)
    # the check right after an intervention records a revival as the intervention's
    after = _record(history, health(alive), jnp.int32(50), after_intervention=True)
    assert bool(after.revived_by_intervention) and int(after.death_step) == -1
    # unit (1, 0) of layer 1 was dead at step 0 and alive at 10; layer 2's units came back at 30
    np.testing.assert_array_equal(history.revived_units, [[True, False], [True, True]])
    assert not bool(history.diverged)


FLOAT64_CASES = [
    dict(data_offset=2.0),  # the question's network on the all-positive cloud
    dict(data_offset=2.0, model_init="normal", model_bias_init="uniform"),
    dict(data_dim=1, model_width=2, model_depth=3, model_init="he_normal"),  # one ray
    dict(data_dim=1, model_width=2, model_depth=3, model_init="rai"),
]


# The question's network by default (2 compiles); all four cases (8 compiles, ~90 s) when slow.
@pytest.mark.parametrize("n_cases", [1, pytest.param(4, marks=pytest.mark.slow)])
def test_float64_makes_the_same_dead_alive_decisions_as_float32(n_cases):
    """Draws are float32 cast to the run's dtype, so both precisions judge the same networks.

    JAX's 64-bit mode is on for the float64 runs only: off again after each."""
    for case in FLOAT64_CASES[:n_cases]:
        decisions = {}
        for dtype in ("float32", "float64"):
            setting = make_setting(train_steps=1, train_log_every=1, train_dtype=dtype, **case)
            runs = simulate(setting, n_inits=3000, seed=11)
            assert not jax.config.jax_enable_x64
            decisions[dtype] = runs["dead_init"].to_numpy()
        assert decisions["float32"].dtype == bool and 0 < decisions["float32"].sum() < 3000, case
        np.testing.assert_array_equal(decisions["float32"], decisions["float64"], err_msg=str(case))


def test_an_engine_keeps_its_most_recently_used_programs():
    def make_double(structure):
        return jax.jit(lambda x: x * 2)

    programs, x = Engine(max_programs=2), np.zeros(3, np.float32)
    first = programs.compiled("a", (x,), make_double)
    programs.compiled("b", (x,), make_double)
    assert programs.compiled("a", (x,), make_double) is first  # kept, now the most recent
    programs.compiled("c", (x,), make_double)  # drops b, the least recently used
    assert len(programs) == 2 and programs.compiles == 3
    assert programs.compiled("a", (x,), make_double) is first
    programs.compiled("b", (x,), make_double)
    assert programs.compiles == 4


def test_compile_cache_folder_follows_jax_then_study_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "jax"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert runtime.compile_cache_dir() == str(tmp_path / "jax")
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR")
    monkeypatch.setenv("STUDY_CACHE_DIR", str(tmp_path / "study"))
    assert runtime.compile_cache_dir() == str(tmp_path / "study" / "jax")
    monkeypatch.delenv("STUDY_CACHE_DIR")
    assert runtime.compile_cache_dir() == str(tmp_path / "xdg" / "study" / "jax")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert runtime.compile_cache_dir() == str(tmp_path / "home" / ".cache" / "study" / "jax")


def test_compile_cache_gives_the_same_bits(tmp_path):
    """study run filling the cache, then loading from it: the same runs, bit for bit. (The
    first run compiles, as a run without the cache does: two fresh processes suffice; that
    --no-compile-cache switches JAX's cache off is the next test.)"""
    config = tmp_path / "tiny.toml"
    config.write_text("n_inits = 24\n[model]\ninit_range = [0.05, 1.0]\n[train]\nsteps = 23\n")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("JAX_COMPILATION_CACHE_DIR", "STUDY_CACHE_DIR")
    }
    env |= {"XDG_CACHE_HOME": str(tmp_path / "xdg"), "JAX_LOG_COMPILES": "1"}
    cache = tmp_path / "xdg" / "study" / "jax"

    def study_run(out, *flags):
        command = [sys.executable, "-m", "study", "run", str(config), "--out", str(tmp_path / out)]
        done = subprocess.run(
            [*command, "--quiet", *flags], env=env, check=True, capture_output=True, text=True
        )
        return pd.read_parquet(tmp_path / out / "runs.parquet"), done.stderr

    cold, log = study_run("cold", "--figures", "none")
    assert "cache hit for 'jit_train'" not in log and any(cache.iterdir())
    warm, log = study_run("warm", "--figures", "none")
    assert "cache hit for 'jit_train'" in log  # loaded, not compiled
    pd.testing.assert_frame_equal(cold, warm, check_exact=True)


def test_no_compile_cache_switches_jax_cache_off_even_where_jax_config_turned_it_on(
    monkeypatch,
):
    """``study run --no-compile-cache`` (and ``--no-cache``) asks for no compile cache, and
    that request turns JAX's own switch off where it was on (before the first compile, in
    ``study run``; here the switch is turned on for the check and put back before anything
    else compiles)."""
    from study import cli, runner

    asked = []
    monkeypatch.setattr(runner, "run_config", lambda config, **a: asked.append(a) or (None, None))
    for flags in ([], ["--no-compile-cache"], ["--no-cache"]):
        assert cli.main(["run", "--quiet", *flags]) == 0
    assert [a["compile_cache"] for a in asked] == [True, False, False]
    assert [a["figure_cache"] for a in asked] == [True, True, False]
    enabled = runtime.setting("jax_enable_compilation_cache")
    try:
        jax.config.update("jax_enable_compilation_cache", True)
        assert runtime.configure(compile_cache=False) == (None, None)
        assert runtime.setting("jax_enable_compilation_cache") is False
    finally:
        jax.config.update("jax_enable_compilation_cache", enabled)


def test_cpu_devices_one_per_core_unless_chosen(tmp_path):
    """``study info`` (as ``study run``) shows the CPU as one device per core and keeps a count
    set in XLA_FLAGS; once JAX runs, the default changes nothing and a count is refused."""

    plain = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}

    def info(*flags, **env):
        done = subprocess.run(
            [sys.executable, "-m", "study", "info", *flags],
            env={**plain, "JAX_PLATFORMS": "cpu", **env},
            capture_output=True,
            text=True,
            check=True,
        )
        return sum(line.strip().startswith("cpu:") for line in done.stdout.splitlines())

    assert info() == usable_cpus()
    assert info(XLA_FLAGS="--xla_force_host_platform_device_count=3") == 3
    jax.devices()  # this process's backend runs: the default changes nothing, a count fails
    assert runtime.configure(devices="auto") == (None, None)
    with pytest.raises(ConfigError, match="--cpu-devices 3"):
        runtime.configure(devices=3)
    with pytest.raises(ConfigError, match="positive"):
        runtime.configure(devices=0)
