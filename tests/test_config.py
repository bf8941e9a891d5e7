"""The config schema is the single source of truth: Structure, Numeric, example.toml and the
``--help`` text follow from it, and resolving a config gives the same settings as ever."""

import dataclasses
import pickle
import re
import tomllib
import typing

import pandas as pd
import pytest

from study import config
from study.config import (
    EXAMPLE_PATH,
    KEYS,
    SCHEMA,
    ConfigError,
    Numeric,
    Structure,
    check_steps,
    load_study,
    make_setting,
)

CONFIGS = EXAMPLE_PATH.parent

# Field names that the engine, model, data and train modules use; they must not change.
STRUCTURE_FIELDS = (
    "data_kind",
    "dim",
    "n_samples",
    "standardize",
    "resample",
    "csv_path",
    "features",
    "target",
    "function",
    "flipping_bits",
    "flip_every",
    "teacher_width",
    "teacher_beta",
    "teacher_convention",
    "flip_one",
    "probe_size",
    "depth",
    "width",
    "activation",
    "init",
    "use_bias",
    "bias_init",
    "norm",
    "flip_dead",
    "optimizer",
    "loss",
    "steps",
    "batch_size",
    "log_every",
    "log_first",
    "curves",
    "plasticity_metrics",
    "probe_steps",
    "intervention",
    "intervention_every",
    "dtype",
)
NUMERIC_FIELDS = (
    "offset",
    "target_scale",
    "target_shift",
    "leaky_slope",
    "init_range",
    "bias_scale",
    "learning_rate",
    "momentum",
    "weight_decay",
    "warmup_steps",
    "dormant_tau",
    "redo_tau",
    "shrink",
    "perturb",
    "l2_init",
    "cbp_replacement_rate",
    "cbp_maturity",
    "cbp_decay",
    "noise_std",
)


def _example_keys() -> dict:
    """example.toml parsed, its commented-out nullable keys (``# key = ...``) read as set."""
    text = re.sub(r"^# (\w+) = \.\.\.", r'\1 = "derived"', EXAMPLE_PATH.read_text(), flags=re.M)
    return config.flatten(tomllib.loads(text))


def test_example_lists_every_key_with_its_default():
    example = _example_keys()
    assert list(example) == list(KEYS)
    for key in SCHEMA:
        assert example[key.name] == ("derived" if key.nullable else key.default), key.name


def test_example_is_the_rendering_of_the_schema():
    assert EXAMPLE_PATH.read_text() == config.render_example(), (
        "example.toml is out of date: config.EXAMPLE_PATH.write_text(config.render_example())"
    )


def test_example_is_the_default_setting():
    (setting,) = load_study(EXAMPLE_PATH).settings
    assert setting == make_setting()


def test_nest_and_flatten_are_inverses():
    nested = {"seed": 3, "model": {"width": [1, 4], "depth": 2}, "train": {"steps": 5}}
    flat = {"seed": 3, "model.width": [1, 4], "model.depth": 2, "train.steps": 5}
    assert config.flatten(nested) == flat and config.nest(flat) == nested
    assert list(config.nest(flat)) == ["seed", "model", "train"]  # the order given
    with pytest.raises(ConfigError, match=r"^unknown section \[optim\]; allowed: \[data\]"):
        config.flatten({"optim": {"lr": 1}})
    with pytest.raises(ConfigError, match=r"^unknown key 'model.widht'; allowed: name, "):
        config.flatten({"model": {"widht": 4}})


def test_help_describes_every_key():
    lines = config.describe_keys().splitlines()
    assert [line.split()[0] for line in lines] == [*KEYS, "reference", "[variants.NAME]"]


def test_structure_and_numeric_fields_are_the_schemas():
    structure_fields = tuple(field.name for field in dataclasses.fields(Structure))
    assert structure_fields == STRUCTURE_FIELDS
    assert structure_fields == tuple(k.field for k in SCHEMA if k.field and k.structural)
    assert Numeric._fields == NUMERIC_FIELDS
    assert Numeric._fields == tuple(k.field for k in SCHEMA if k.field and not k.structural)


def _schema_field(key) -> tuple:
    """What SCHEMA says a setting key's field is: name, type, default and the default's type
    (a derived default from the other keys' defaults; a list key is a tuple of column names)."""
    if key.derive is not None:
        default = key.derive({other.name: other.default for other in SCHEMA})
    else:
        default = tuple(key.default) if key.kind is list else key.default
    kind = tuple[str, ...] if key.kind is list else key.kind
    return key.field, kind, default, type(default)


def test_structure_and_numeric_are_declared_as_the_schema_says():
    """The classes are written out for the type checker; SCHEMA stays the source of truth, so
    a key added, moved, retyped or given another default in one place only fails here."""
    hints = typing.get_type_hints(Structure)
    declared = [
        (field.name, hints[field.name], field.default, type(field.default))
        for field in dataclasses.fields(Structure)
    ]
    assert declared == [_schema_field(k) for k in SCHEMA if k.field and k.structural]
    assert Structure.__dataclass_params__.frozen  # hashable: a compiled program per structure

    hints = typing.get_type_hints(Numeric)
    defaults = Numeric._field_defaults
    declared = [
        (name, hints[name], defaults[name], type(defaults[name])) for name in Numeric._fields
    ]
    assert declared == [_schema_field(k) for k in SCHEMA if k.field and not k.structural]


def test_structure_and_numeric_defaults_are_the_default_settings():
    setting = make_setting()
    assert Structure() == setting.structure
    assert Numeric() == setting.numeric
    assert Numeric().bias_scale == 0.05  # derived from model.init_range
    assert Structure().loss == "bce" and Structure().full_batch


def test_structure_is_frozen_hashable_and_picklable():
    structure, numeric = Structure(width=4), Numeric(offset=0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        structure.width = 2
    assert {structure: 1}[Structure(width=4)] == 1
    assert pickle.loads(pickle.dumps(structure)) == structure
    assert pickle.loads(pickle.dumps(numeric)) == numeric


def test_log_every_left_out_adapts_to_a_short_run():
    assert make_setting(train_steps=5).structure.log_every == 5
    assert make_setting(train_steps=5).as_dict["train.log_every"] == 5
    assert make_setting(train_steps=10).structure.log_every == 10
    assert make_setting(train_steps=1000).structure.log_every == 10
    assert make_setting(train_steps=5, train_log_every=5).structure.log_every == 5


@pytest.mark.parametrize("log_first", [5, 15])
def test_dense_first_checks_off_the_grid_are_refused(log_first):
    with pytest.raises(ConfigError, match=rf"^train.log_first = {log_first}: allowed: 0 \(off\)"):
        make_setting(train_steps=100, train_log_every=10, train_log_first=log_first)


def test_dense_first_checks_past_the_run_check_every_step():
    """The default study's log_first = 10 on a run of 8 steps checks each of them."""
    setting = make_setting(train_steps=8, train_log_every=4, train_log_first=10)
    assert setting.structure.log_first == 8
    assert setting.as_dict["train.log_first"] == 8
    assert list(check_steps(8, 4, 8)) == list(range(9))


def test_dense_first_checks_are_refused_on_a_stream():
    with pytest.raises(ConfigError, match=r"^train.log_first = 10: not available with data.kind"):
        make_setting(data_kind="slowly_changing", train_steps=100, train_log_first=10)


def test_explicit_log_every_longer_than_the_run_is_refused():
    with pytest.raises(ConfigError, match=r"^train.log_every = 10: larger than train.steps = 5$"):
        make_setting(train_steps=5, train_log_every=10)


def test_csv_fields(tmp_path):
    frame = pd.DataFrame({"x1": [0.0, 1.0, 2.0], "x2": [1.0, 0.0, 3.0], "y": [0, 1, 1]})
    frame.to_csv(tmp_path / "data.csv", index=False)
    raw = {"data": {"kind": "csv", "path": "data.csv"}}
    setting = load_study(raw, base_dir=tmp_path).settings[0]
    path = str((tmp_path / "data.csv").resolve())
    assert setting.structure.csv_path == path == setting.as_dict["data.path"]
    assert setting.structure.features == ("x1", "x2")
    assert setting.as_dict["data.features"] == ()  # as given: every column but the target
    assert (setting.structure.n_samples, setting.structure.dim) == (3, 2)
    assert setting.numeric.offset == 0.0  # data from a file are used as given
    raw["data"].update(features=["x2"], offset=1.0)
    setting = load_study(raw, base_dir=tmp_path).settings[0]
    assert (setting.structure.features, setting.structure.dim) == (("x2",), 1)
    assert setting.numeric.offset == 1.0
    uniform = make_setting(data_path="data.csv", data_features=["x1"])
    assert (uniform.structure.csv_path, uniform.structure.features) == ("", ())


SWEEP = {
    "model": {"bias_scale": [0.1, None]},
    "train": {"loss": [None, "mse"], "dtype": ["float32", "float64"]},
}
FUNCTION = {
    "data": {"kind": "function", "dim": 1, "function": "sin", "target_scale": [1, 2.5]},
    "train": {"steps": 50, "log_every": 5},
}


@pytest.mark.parametrize(
    "source, ids",
    [
        ("example.toml", [1731988536]),
        ("lu2019_abs.toml", [96878372, 1359041188]),
        (
            "two_layers.toml",
            [1080663611, 1638318388, 2128868401, 574127914, 481432864, 621085462]
            + [1748728460, 1240737155, 1454444678, 174758813, 887157143, 223864737],
        ),
        (
            SWEEP,
            [371731778, 371731778, 593535709, 593535709]
            + [1731988536, 1731988536, 1383367591, 1383367591],
        ),
        (FUNCTION, [812113347, 1064084646]),
    ],
)
def test_setting_ids_are_those_of_committed_results(source, ids):
    """Reproducibility regression: the setting ids (hashes of the resolved values, folded into
    every random key) are the ones recorded before the schema drove Structure and Numeric, so
    committed results regenerate byte for byte."""
    raw = CONFIGS / source if isinstance(source, str) else source
    assert [s.setting_id for s in load_study(raw).settings] == ids


@pytest.mark.parametrize(
    "values, setting_id",
    [
        ({}, 1731988536),
        ({"model_width": 4, "data_offset": 0.0}, 1181639491),
        ({"model_activation": "leaky_relu", "model_leaky_slope": 0.2}, 99619099),
        ({"train_optimizer": "sgd", "train_batch_size": 16, "train_steps": 30}, 905714543),
        ({"train_dtype": "float64"}, 1731988536),  # a float64 setting draws as its float32 twin
        ({"model_bias_init": "uniform", "model_bias_scale": 0.3, "model_bias": False}, 526165795),
    ],
)
def test_make_setting_ids_are_those_of_committed_results(values, setting_id):
    """Reproducibility regression, as above, for single settings made from keywords."""
    assert make_setting(**values).setting_id == setting_id
