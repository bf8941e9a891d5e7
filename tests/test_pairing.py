"""Shared draws (common random numbers): top-level ``pairing = "shared" | "independent"``.

Under "shared", initialization i of every setting draws from the same keys (study.train's draw
id SHARED_DRAWS in place of the setting's id), so settings that start alike start from the same
network, with the same batch order and fresh draws; "independent" is the draws of every study
before the key, bit for bit (golden tables in tests/data, made by the tree before it). The
studies here are TINY's structures and chunk shapes where they can be, to share its programs.
"""

import json

import jax
import numpy as np
import pandas as pd
import pytest

import study
from study import report, results, runner, train
from study.config import ADAMW_WEIGHT_DECAY, PAIRINGS, load_study, make_setting
from study.data import key_streams
from study.errors import ConfigError
from study.train import (
    FRESH_DRAWS,
    SHARED_DRAWS,
    STREAM_DRAWS,
    draw_ids_of,
    make_start,
    start_structure,
)
from tests.helpers import ROOT, TINY, run_cli, tiny_config

GOLDEN = ROOT / "tests" / "data"
# The configs of the golden tables (tests/data/README.md): TINY itself, and one group with the
# draws TINY lacks: data resampled per initialization, minibatch order. (ReDo's and shrink and
# perturb's fresh draws under independent pairing: scripts/check_identity.py.)
GOLDEN_CONFIGS = {
    "tiny": tiny_config(),
    "draws": tiny_config(
        data__offset=0.0,
        data__resample=True,
        model__width=2,
        model__init_range=0.5,
        train__batch_size=8,
        train__learning_rate=[0.01, 0.1],
    ),
}


def test_pairing_is_a_top_level_key_that_no_setting_id_sees():
    default, independent = load_study(TINY), load_study(tiny_config(pairing="independent"))
    assert default.pairing == default.config["pairing"] == "shared"
    assert independent.pairing == independent.config["pairing"] == "independent"
    assert [s.setting_id for s in default.settings] == [s.setting_id for s in independent.settings]
    assert all("pairing" not in s.as_dict for s in default.settings)
    with pytest.raises(ConfigError, match="pairing = 'paired': allowed: shared, independent"):
        load_study(tiny_config(pairing="paired"))
    assert PAIRINGS == ("shared", "independent")


def test_draw_ids_and_their_constants_never_collide():
    """Independent: the setting ids; shared: SHARED_DRAWS, a value no 31-bit setting id takes and
    no tag either, so a shared resampled-data root is not the streams' root."""
    ids = [0, 5, 2**31 - 1]
    assert draw_ids_of(ids, "independent").tolist() == ids
    assert draw_ids_of(ids, "shared").tolist() == [SHARED_DRAWS] * 3
    assert draw_ids_of(ids, "shared").dtype == np.uint32
    assert SHARED_DRAWS >= 2**31 and SHARED_DRAWS not in (FRESH_DRAWS, STREAM_DRAWS)
    data_root, _ = key_streams(np.uint32(3))
    roots = [jax.random.fold_in(data_root, tag) for tag in (STREAM_DRAWS, np.uint32(SHARED_DRAWS))]
    assert not np.array_equal(*(jax.random.key_data(root) for root in roots))
    with pytest.raises(ConfigError, match="pairing = 'both'"):
        draw_ids_of(ids, "both")


@pytest.fixture(scope="module")
def starts():
    """The start of settings that differ only in training keys (and one in model.init_range),
    drawn by one compiled start under each pairing: ``{pairing: (settings, start, Start)}``,
    the start called with seed 3 and indices 0 to 63."""
    base = dict(model_bias_init="uniform", model_width=2, data_n_samples=32, train_steps=12)
    changes = [
        {},
        {"train_learning_rate": 0.1},
        {"train_optimizer": "sgd"},
        {"train_intervention": "shrink_perturb", "train_intervention_every": 4},
        {"train_steps": 24},
        {"model_init_range": 0.5},
    ]
    settings = [make_setting(**{**base, "train_log_every": 4, **change}) for change in changes]
    (structure,) = {start_structure(s.structure) for s in settings}  # one start program
    start = make_start(structure)
    numerics = jax.tree.map(lambda *v: np.asarray(v, np.float32), *(s.numeric for s in settings))
    indices = np.arange(64, dtype=np.int32)
    ids = [s.setting_id for s in settings]
    return {
        pairing: (
            settings,
            start,
            start(np.uint32(3), numerics, draw_ids_of(ids, pairing), indices, None)[1],
        )
        for pairing in PAIRINGS
    }


def _keys(key: jax.Array) -> np.ndarray:
    return np.asarray(jax.random.key_data(key))


def test_settings_that_differ_in_training_start_from_the_same_draws(starts):
    """Learning rate, optimizer, intervention, steps: bit-identical parameters, batch order
    keys and fresh-draw keys for every index under shared pairing; none alike under independent,
    but the streams' keys, which never depend on the setting."""
    _, _, drawn = starts["shared"]
    params = np.asarray(drawn.params)  # [settings, inits, n_params]
    for other in range(1, 5):
        np.testing.assert_array_equal(params[other], params[0])
        for key in (drawn.key_batch, drawn.key_fresh, drawn.key_stream):
            np.testing.assert_array_equal(_keys(key)[other], _keys(key)[0])
    assert len({params[0, i].tobytes() for i in range(64)}) == 64  # indices still differ
    _, _, alone = starts["independent"]
    apart = np.asarray(alone.params)
    for other in range(1, 5):
        assert not np.any(np.all(apart[other] == apart[0], axis=-1))
        assert not np.any(np.all(_keys(alone.key_fresh)[other] == _keys(alone.key_fresh)[0], -1))
        # a stream depends on the seed and the index only, under either pairing
        np.testing.assert_array_equal(_keys(alone.key_stream)[other], _keys(alone.key_stream)[0])


def test_shared_fresh_draws_have_a_key_of_their_own(starts):
    """Under shared pairing an intervention's fresh draws do not come from the minibatch
    order's key; independent pairing keeps the draws from before the key, where they did
    (``fold_in(key, 1)`` is ``split(key)[1]`` in JAX)."""
    _, _, drawn = starts["shared"]
    fresh, batch = _keys(drawn.key_fresh), _keys(drawn.key_batch)
    assert not np.any(np.all(fresh == batch, axis=-1))
    _, _, alone = starts["independent"]
    np.testing.assert_array_equal(_keys(alone.key_fresh), _keys(alone.key_batch))


def test_init_range_scales_the_same_draws(starts):
    """model.init_range 0.5 against 0.05 (bias_scale derived from it): the model draws U(-1, 1)
    and scales it, so under shared pairing every weight and bias is the same number times 10
    (up to float32 rounding)."""
    settings, _, drawn = starts["shared"]
    assert [s.numeric.init_range for s in settings[::5]] == [0.05, 0.5]
    params = np.asarray(drawn.params, np.float64)
    assert np.all(params[0] != 0)
    np.testing.assert_allclose(params[5], 10 * params[0], rtol=1e-6)
    apart = np.asarray(starts["independent"][2].params, np.float64)
    assert np.abs(apart[5] - 10 * apart[0]).max() > 0.1


@pytest.fixture(scope="module")
def shared_runs():
    """TINY's two structures and chunk shapes (four numeric settings each) at offset 2 with a
    learning-rate axis: two learning rates by two init ranges, shared pairing (the default)."""
    config = tiny_config(data__offset=2.0, train__learning_rate=[0.01, 0.1])
    return study.simulate(load_study(config))


def _by(runs: pd.DataFrame, name: str, value) -> pd.DataFrame:
    return runs[runs[name] == value].reset_index(drop=True)


def test_settings_that_differ_in_training_have_the_same_dead_init(shared_runs):
    start = ["init", "dead_init", "initial_loss", "dead_units_init_l1", "inactive_units_init_l1"]
    for width in (1, 2):
        for init_range in (0.05, 0.5):
            setting = _by(_by(shared_runs, "model.width", width), "model.init_range", init_range)
            slow, fast = (_by(setting, "train.learning_rate", lr) for lr in (0.01, 0.1))
            pd.testing.assert_frame_equal(slow[start], fast[start], check_exact=True)
            assert not np.array_equal(slow["final_loss"], fast["final_loss"])
    # zero biases and weights scaled by 10: the same signs, so the same networks born dead
    small, large = (_by(shared_runs, "model.init_range", r) for r in (0.05, 0.5))
    np.testing.assert_array_equal(small["dead_init"], large["dead_init"])
    # under independent pairing (the golden table: init ranges 0.05 and 0.5) they differ
    before = pd.read_parquet(GOLDEN / "pairing_golden_tiny.parquet")
    small, large = (_by(before, "model.init_range", r) for r in (0.05, 0.5))
    assert not np.array_equal(small["dead_init"], large["dead_init"])


def test_chunking_does_not_change_shared_draws(starts):
    """Two of the settings, in the other order, and initializations 40 to 47 alone: the same
    bits as in the whole block (the engine's chunks; the training's own chunk invariance is
    tested under the default pairing, shared, in test_engine and test_reliability)."""
    settings, start, whole = starts["shared"]
    pair = [settings[5], settings[0]]
    numerics = jax.tree.map(lambda *v: np.asarray(v, np.float32), *(s.numeric for s in pair))
    ids = draw_ids_of([s.setting_id for s in pair], "shared")
    indices = np.arange(40, 48, dtype=np.int32)
    _, part = start(np.uint32(3), numerics, ids, indices, None)
    for mine, theirs in zip(jax.tree.leaves(part), jax.tree.leaves(whole), strict=True):
        if jax.dtypes.issubdtype(mine.dtype, jax.dtypes.prng_key):
            mine, theirs = jax.random.key_data(mine), jax.random.key_data(theirs)
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs)[[5, 0], 40:48])


@pytest.mark.parametrize("case", GOLDEN_CONFIGS)
def test_independent_pairing_reproduces_the_draws_before_the_key(case):
    """Every column of the golden runs table (made by the tree before the key), bit for bit;
    columns added since are not in it. train.weight_decay was adamw's alone then: the tables
    record its 1e-4 for adam, which did not read it, and the same runs resolve it to 0 (off).
    The final loss alone is compared to float32 rounding (a relative 1e-6, a few units in the
    last place): the small layers' products are summed in another order since (issue 28,
    ``model.dense``), which moves the trained losses in their last bits; every draw and every
    dead/alive decision stays exact."""
    golden = pd.read_parquet(GOLDEN / f"pairing_golden_{case}.parquet")
    config = {**GOLDEN_CONFIGS[case], "pairing": "independent"}
    runs = study.simulate(load_study(config))
    assert set(golden.columns) <= set(runs.columns)
    assert (golden.pop("train.weight_decay") == ADAMW_WEIGHT_DECAY).all()
    assert (runs["train.optimizer"] == "adam").all() and (runs["train.weight_decay"] == 0).all()
    np.testing.assert_allclose(runs["final_loss"], golden.pop("final_loss"), rtol=1e-6, atol=0)
    pd.testing.assert_frame_equal(golden, runs[golden.columns], check_exact=True)


def test_resampled_data_is_shared_too():
    """The golden 'draws' group (resampled data, minibatches, ReDo) under shared pairing: its
    two learning rates draw the same data set and network for each index (the keys of the
    batch order and of ReDo's draws are the start's, compared above)."""
    runs = study.simulate(load_study(GOLDEN_CONFIGS["draws"]))
    slow, fast = (_by(runs, "train.learning_rate", lr) for lr in (0.01, 0.1))
    for name in ("dead_init", "initial_loss", "dead_units_init_l1"):
        np.testing.assert_array_equal(slow[name], fast[name])
    assert not np.array_equal(slow["final_loss"], fast["final_loss"])


def test_a_folder_from_before_the_key_resumes_only_under_independent_pairing(tmp_path, capsys):
    """A manifest without ``pairing`` is a folder of independent draws: rerun under the default
    (shared) it is refused with exit 3 and one line saying what to add; with
    ``pairing = "independent"`` it is up to date."""
    folder = tmp_path / "out"
    runner.run_study(load_study(tiny_config(pairing="independent")), folder, figures=False)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["config"]["pairing"] == "independent"
    del manifest["config"]["pairing"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert results.read_manifest(folder).pairing == "independent"
    before = (folder / "runs.parquet").read_bytes()

    assert run_cli(tmp_path, tiny_config(), extra=["--no-figures"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert 'was written with pairing = "independent"' in err
    assert 'add pairing = "independent" to the config' in err and "--force" in err

    assert run_cli(tmp_path, tiny_config(pairing="independent"), extra=["--no-figures"]) == 0
    assert (folder / "runs.parquet").read_bytes() == before
    report.write_report(results.ResultsFolder.open(folder))
    assert "seed 3, pairing independent" in (folder / "report.md").read_text()
    # another key too: the refusal names the first difference, as for any other config
    changed = tiny_config(seed=4)
    assert run_cli(tmp_path, changed, extra=["--no-figures"]) == 3
    assert "seed: 3 there, 4 now" in capsys.readouterr().err


def test_a_manifest_says_its_pairing():
    assert results.Manifest(config={"pairing": "shared"}).pairing == "shared"
    assert results.Manifest(config={"seed": 0}).pairing == "independent"
    assert results.Manifest(config={"pairing": "independent"}).pairing == "independent"
    assert runner.group_key(*_a_group(), "shared") != runner.group_key(*_a_group(), "independent")


def _a_group():
    setting = make_setting()
    return setting.structure, [setting], 4, 0


def test_same_start_names_every_number_the_start_reads(starts):
    """Every numeric field outside ``START_NUMERICS`` leaves the start (data and networks) bit
    for bit as it is, so ``same_start`` may trust the others; each start number it names does
    change the start (for the uniform scheme; kaiming_uniform's gain also reads the slope)."""
    settings, start, _ = starts["shared"]
    base = settings[0]
    others = [f for f in base.numeric._fields if f not in train.START_NUMERICS]
    numerics = [base.numeric] + [
        base.numeric._replace(**{f: getattr(base.numeric, f) * 0.5 + 0.25}) for f in others
    ]
    stacked = jax.tree.map(lambda *v: np.asarray(v, np.float32), *numerics)
    ids = draw_ids_of([0] * len(numerics), "shared")
    data, drawn = start(np.uint32(3), stacked, ids, np.arange(64, dtype=np.int32), None)
    for i, field in enumerate(others, start=1):
        for leaf in jax.tree.leaves((data, drawn.params)):
            np.testing.assert_array_equal(np.asarray(leaf)[i], np.asarray(leaf)[0], err_msg=field)
    assert all(train.same_start(base, s) for s in settings[:5])
    assert not train.same_start(base, settings[5])  # model.init_range 0.5
    kaiming = make_setting(model_init="kaiming_uniform", model_activation="leaky_relu")
    steeper = make_setting(
        model_init="kaiming_uniform", model_activation="leaky_relu", model_leaky_slope=0.2
    )
    assert not train.same_start(kaiming, steeper)
    assert train.same_start(make_setting(), make_setting(model_leaky_slope=0.2))
