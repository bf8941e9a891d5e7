"""Settings: the config schema, its validation, and the grid of settings it names.

A *setting* is one point of a study's grid. It has two parts, kept apart on purpose:

* :class:`Structure` (static): everything that changes array shapes or the compiled program.
  Settings that share a structure share one compiled program.
* :class:`Numeric` (traced): numbers such as the init range or the learning rate. They are a
  pytree argument of the compiled program, so any number of them are vmapped through it and a
  new value never recompiles.

A config is a TOML file (or a dict) with top-level ``name``, ``n_inits`` and ``seed`` and the
sections ``[data]``, ``[model]`` and ``[train]``. A value given as a list is a sweep axis; the grid
is the product of all axes.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import tomllib
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from study.csvfile import load_csv
from study.errors import ConfigError

ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "silu", "softplus", "tanh")
WEIGHT_INITS = ("uniform", "normal", "he_uniform", "he_normal", "glorot_uniform", "rai")
BIAS_INITS = ("zeros", "uniform", "normal", "constant")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop")
DATA_KINDS = ("uniform", "gaussian", "csv", "function")
TARGET_FUNCTIONS = ("abs", "square", "sin", "linear", "relu")
LOSSES = ("bce", "mse")
DTYPES = ("float32", "float64")


# --------------------------------------------------------------------------------------------
# The schema: every key, its type, default, allowed values, and whether it is structural.
# --------------------------------------------------------------------------------------------


def _positive(v):
    return None if v > 0 else "must be > 0"


def _non_negative(v):
    return None if v >= 0 else "must be >= 0"


def _unit_interval(v):
    return None if 0 <= v < 1 else "must be in [0, 1)"


@dataclasses.dataclass(frozen=True)
class Key:
    """One config key: ``kind`` is its Python type, ``structural`` whether it is static."""

    name: str
    kind: type
    default: Any
    doc: str
    structural: bool = True
    choices: tuple[str, ...] | None = None
    check: Callable[[Any], str | None] | None = None
    nullable: bool = False


SCHEMA: tuple[Key, ...] = (
    Key("name", str, "default", "name of the study; results go to results/<name>/"),
    Key("n_inits", int, 2000, "independent initializations per setting", check=_positive),
    Key(
        "seed",
        int,
        0,
        "study seed; with the setting and index it fixes every random draw",
        check=lambda v: None if 0 <= v < 2**32 else "must be in [0, 2^32)",
    ),
    # data
    Key(
        "data.kind",
        str,
        "uniform",
        "synthetic base cloud, a CSV file, or a 1-D regression target",
        choices=DATA_KINDS,
    ),
    Key("data.dim", int, 2, "number of input features (synthetic data)", check=_positive),
    Key("data.n_samples", int, 256, "training samples (synthetic data)", check=_positive),
    Key(
        "data.offset",
        float,
        2.0,
        "added to every feature; 0 = centered, >= 1 makes the "
        "uniform cloud all-positive (csv default 0)",
        structural=False,
    ),
    Key("data.standardize", bool, False, "z-score each feature with the training statistics"),
    Key("data.resample", bool, False, "draw a fresh dataset for every initialization"),
    Key("data.path", str, "", "CSV file (data.kind = 'csv'); relative to the config file"),
    Key("data.features", list, [], "CSV feature columns; empty = every column but the target"),
    Key("data.target", str, "y", "CSV 0/1 target column"),
    Key(
        "data.function",
        str,
        "abs",
        "regression target f(x) (data.kind = 'function')",
        choices=TARGET_FUNCTIONS,
    ),
    Key(
        "data.target_scale",
        float,
        1.0,
        "regression targets are target_scale * f(x) + target_shift",
        structural=False,
    ),
    Key("data.target_shift", float, 0.0, "see data.target_scale", structural=False),
    # model
    Key("model.depth", int, 1, "hidden layers", check=_positive),
    Key("model.width", int, 1, "units per hidden layer", check=_positive),
    Key("model.activation", str, "relu", "hidden activation", choices=ACTIVATIONS),
    Key(
        "model.leaky_slope",
        float,
        0.01,
        "negative slope of leaky_relu",
        structural=False,
        check=_non_negative,
    ),
    Key(
        "model.init",
        str,
        "uniform",
        "weight init: uniform = U(-init_range, init_range), "
        "normal = N(0, init_range^2), he_*, glorot_uniform, rai (Lu et al. 2019)",
        choices=WEIGHT_INITS,
    ),
    Key(
        "model.init_range",
        float,
        0.05,
        "a of U(-a, a), or sigma of the normal init",
        structural=False,
        check=_positive,
    ),
    Key("model.bias", bool, True, "whether the layers have (trainable) biases"),
    Key(
        "model.bias_init",
        str,
        "zeros",
        "bias init: zeros, uniform = U(-bias_scale, "
        "bias_scale), normal = N(0, bias_scale^2), constant = bias_scale",
        choices=BIAS_INITS,
    ),
    Key(
        "model.bias_scale",
        float,
        None,
        "scale of the bias init; default: model.init_range",
        structural=False,
        nullable=True,
    ),
    # train
    Key("train.optimizer", str, "adam", "optax optimizer", choices=OPTIMIZERS),
    Key(
        "train.loss",
        str,
        None,
        "bce (sigmoid output) or mse (linear output); default: bce, mse for data.kind = 'function'",
        choices=LOSSES,
        nullable=True,
    ),
    Key("train.learning_rate", float, 0.01, "step size", structural=False, check=_non_negative),
    Key(
        "train.momentum",
        float,
        0.9,
        "first-moment coefficient: momentum/nesterov mu, adam(w) "
        "beta1, rmsprop momentum; unused by sgd",
        structural=False,
        check=_unit_interval,
    ),
    Key(
        "train.weight_decay",
        float,
        1e-4,
        "adamw decoupled weight decay",
        structural=False,
        check=_non_negative,
    ),
    Key("train.steps", int, 1000, "optimizer steps", check=_positive),
    Key("train.batch_size", int, 0, "minibatch size; 0 = full batch", check=_non_negative),
    Key(
        "train.log_every",
        int,
        10,
        "steps between death checks on the full training set",
        check=_positive,
    ),
    Key(
        "train.dormant_tau",
        float,
        0.0,
        "threshold of the dormant-neuron score (Sokar et al. 2023)",
        structural=False,
        check=_non_negative,
    ),
    Key("train.dtype", str, "float32", "floating-point precision", choices=DTYPES),
)

KEYS: dict[str, Key] = {key.name: key for key in SCHEMA}
TOP_LEVEL = ("name", "n_inits", "seed")
SETTING_KEYS = tuple(k.name for k in SCHEMA if k.name not in TOP_LEVEL)


# --------------------------------------------------------------------------------------------
# Structure (static) and Numeric (traced).
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Structure:
    """The static part of a setting: all that changes shapes or the compiled program."""

    data_kind: str = "uniform"
    dim: int = 2
    n_samples: int = 256
    standardize: bool = False
    resample: bool = False
    csv_path: str = ""
    features: tuple[str, ...] = ()
    target: str = "y"
    function: str = "abs"
    depth: int = 1
    width: int = 1
    activation: str = "relu"
    init: str = "uniform"
    use_bias: bool = True
    bias_init: str = "zeros"
    optimizer: str = "adam"
    loss: str = "bce"
    steps: int = 1000
    batch_size: int = 0
    log_every: int = 10
    dtype: str = "float32"

    @property
    def full_batch(self) -> bool:
        return self.batch_size in (0, self.n_samples)


class Numeric(NamedTuple):
    """The traced part of a setting; each field a scalar, or ``[n_settings]`` when batched."""

    offset: Any = 2.0
    target_scale: Any = 1.0
    target_shift: Any = 0.0
    leaky_slope: Any = 0.01
    init_range: Any = 0.05
    bias_scale: Any = 0.05
    learning_rate: Any = 0.01
    momentum: Any = 0.9
    weight_decay: Any = 1e-4
    dormant_tau: Any = 0.0


@dataclasses.dataclass(frozen=True)
class Setting:
    """One point of the grid: its flat config values, structure and numeric part."""

    values: tuple[tuple[str, Any], ...]
    structure: Structure
    numeric: Numeric

    @property
    def as_dict(self) -> dict[str, Any]:
        return dict(self.values)

    @property
    def setting_id(self) -> int:
        """A stable 31-bit hash of the values; it is folded into every initialization's key.

        A float64 setting has the id of its float32 twin, so it draws the same networks and data
        and checks precision, not luck.
        """
        values = tuple(
            (name, "float32" if name == "train.dtype" else value) for name, value in self.values
        )
        text = json.dumps(values, sort_keys=True, default=str)
        return zlib.crc32(text.encode()) & 0x7FFFFFFF


@dataclasses.dataclass(frozen=True)
class Study:
    """A resolved config: its name, size, seed, the grid's settings and the raw config."""

    name: str
    n_inits: int
    seed: int
    settings: tuple[Setting, ...]
    config: dict
    axes: tuple[str, ...]

    def groups(self) -> dict[Structure, list[Setting]]:
        """Settings grouped by structure, in grid order: one compiled program per group."""
        return group_by_structure(self.settings)


def group_by_structure(settings: Iterable[Setting]) -> dict[Structure, list[Setting]]:
    """Settings grouped by structure, in the order each structure first appears."""
    groups: dict[Structure, list[Setting]] = {}
    for setting in settings:
        groups.setdefault(setting.structure, []).append(setting)
    return groups


# --------------------------------------------------------------------------------------------
# Parsing and validation.
# --------------------------------------------------------------------------------------------


def _flatten(config: Mapping[str, Any]) -> dict[str, Any]:
    flat = {}
    for name, value in config.items():
        if isinstance(value, Mapping):
            if name not in ("data", "model", "train"):
                raise ConfigError(f"unknown section [{name}]; allowed: [data], [model], [train]")
            for sub, sub_value in value.items():
                if isinstance(sub_value, Mapping):
                    raise ConfigError(f"unknown section [{name}.{sub}]")
                flat[f"{name}.{sub}"] = sub_value
        else:
            flat[name] = value
    for name in flat:
        if name not in KEYS:
            raise ConfigError(f"unknown key '{name}'; allowed: {', '.join(KEYS)}")
    return flat


def _check_value(key: Key, value: Any) -> Any:
    """Return ``value`` converted to the key's type, or raise a one-line ConfigError."""

    def bad(why: str) -> ConfigError:
        return ConfigError(f"{key.name} = {value!r}: {why}")

    if value is None and key.nullable:
        return None
    if key.kind is bool:
        if not isinstance(value, bool):
            raise bad("expected true or false")
    elif key.kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("expected an integer")
    elif key.kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("expected a number")
        value = float(value)
        if not math.isfinite(value):
            raise bad("expected a finite number")
    elif key.kind is str:
        if not isinstance(value, str):
            raise bad("expected a string")
    elif key.kind is list:
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise bad("expected a list of column names")
        value = tuple(value)
    if key.choices is not None and value not in key.choices:
        raise bad(f"allowed: {', '.join(key.choices)}")
    if key.check is not None and (why := key.check(value)) is not None:
        raise bad(why)
    return value


def _axis_values(key: Key, value: Any) -> list[Any]:
    """The values of one key: a list is a sweep axis (a list of lists for data.features)."""
    if key.kind is list:
        if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
            values = value
        else:
            values = [value]
    elif isinstance(value, list):
        if not value:
            raise ConfigError(f"{key.name} = []: a sweep axis needs at least one value")
        values = value
    else:
        values = [value]
    return [_check_value(key, v) for v in values]


def _resolve(values: dict[str, Any], base_dir: Path, offset_given: bool = True) -> Setting:
    """Fill defaults that depend on other keys and build the Structure and Numeric parts.

    The values of the returned setting are the resolved ones (a CSV's absolute path, its
    sample count and dimension, the loss and bias scale that follow from other keys).
    """
    v = dict(values)
    kind = v["data.kind"]
    if kind == "csv":
        if not v["data.path"]:
            raise ConfigError("data.path is required when data.kind = 'csv'")
        path = Path(v["data.path"])
        if not path.is_absolute():
            path = (base_dir / path).resolve()
        features, inputs, _ = load_csv(str(path), v["data.features"], v["data.target"])
        v["data.n_samples"], v["data.dim"] = inputs.shape
        csv_path = v["data.path"] = str(path)
        if not offset_given:
            v["data.offset"] = 0.0  # data from a file are used as given unless told otherwise
        features = tuple(features)
    else:
        csv_path, features = "", ()
    if kind == "function" and v["data.dim"] != 1:
        raise ConfigError(f"data.dim = {v['data.dim']}: data.kind = 'function' needs dim 1")
    if v["train.loss"] is None:
        v["train.loss"] = "mse" if kind == "function" else "bce"
    if v["train.loss"] == "bce" and kind == "function":
        raise ConfigError("train.loss = 'bce': data.kind = 'function' is a regression; use mse")
    if v["model.bias_scale"] is None:
        v["model.bias_scale"] = v["model.init_range"]
    if v["train.batch_size"] > v["data.n_samples"]:
        raise ConfigError(
            f"train.batch_size = {v['train.batch_size']}: larger than data.n_samples = "
            f"{v['data.n_samples']}; allowed: 0 (full batch) to {v['data.n_samples']}"
        )
    if v["train.log_every"] > v["train.steps"]:
        raise ConfigError(
            f"train.log_every = {v['train.log_every']}: larger than train.steps = "
            f"{v['train.steps']}"
        )
    structure = Structure(
        data_kind=kind,
        dim=v["data.dim"],
        n_samples=v["data.n_samples"],
        standardize=v["data.standardize"],
        resample=v["data.resample"],
        csv_path=csv_path,
        features=features,
        target=v["data.target"],
        function=v["data.function"],
        depth=v["model.depth"],
        width=v["model.width"],
        activation=v["model.activation"],
        init=v["model.init"],
        use_bias=v["model.bias"],
        bias_init=v["model.bias_init"],
        optimizer=v["train.optimizer"],
        loss=v["train.loss"],
        steps=v["train.steps"],
        batch_size=v["train.batch_size"],
        log_every=v["train.log_every"],
        dtype=v["train.dtype"],
    )
    numeric = Numeric(
        offset=v["data.offset"],
        target_scale=v["data.target_scale"],
        target_shift=v["data.target_shift"],
        leaky_slope=v["model.leaky_slope"],
        init_range=v["model.init_range"],
        bias_scale=v["model.bias_scale"],
        learning_rate=v["train.learning_rate"],
        momentum=v["train.momentum"],
        weight_decay=v["train.weight_decay"],
        dormant_tau=v["train.dormant_tau"],
    )
    return Setting(tuple(v.items()), structure, numeric)


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``KEY=VALUE`` (VALUE in TOML syntax; a bare word is a string)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. model.width=[1,4]")
    name, raw = (part.strip() for part in text.split("=", 1))
    if name not in KEYS:
        raise ConfigError(f"--set {name}: unknown key; allowed: {', '.join(KEYS)}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return name, value


def read_toml(path: str | Path) -> dict:
    """Read a config file, turning every failure into a one-line ConfigError."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} not found") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {str(path)!r} is a directory") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {first_line}") from None


def load_study(
    config: Mapping[str, Any] | str | Path | None = None,
    overrides: Iterable[str] = (),
    base_dir: str | Path | None = None,
    **top_level: Any,
) -> Study:
    """Resolve a config (a TOML path, a dict, or None for the default study) into a Study.

    Args:
      config: path to a TOML file, a nested dict in the same layout, or None for the default
        study shipped in ``study/configs/default.toml``.
      overrides: ``KEY=VALUE`` strings, as given to ``--set``.
      base_dir: folder that a relative ``data.path`` is relative to (default: the config's).
      **top_level: ``n_inits``, ``seed`` or ``name`` overriding the config's.
    """
    if config is None:
        config = Path(__file__).parent / "configs" / "default.toml"
    if isinstance(config, str | Path):
        base_dir = Path(config).parent if base_dir is None else base_dir
        raw = read_toml(config)
    else:
        raw = dict(config)
    flat = _flatten(raw)
    for text in overrides:
        name, value = parse_override(text)
        flat[name] = value
    for name, value in top_level.items():
        if value is not None:
            flat[name] = value
    base_dir = Path.cwd() if base_dir is None else Path(base_dir)

    top = {name: _check_value(KEYS[name], flat.get(name, KEYS[name].default)) for name in TOP_LEVEL}
    axes_values = {}
    for name in SETTING_KEYS:
        key = KEYS[name]
        axes_values[name] = _axis_values(key, flat.get(name, key.default))
    axes = tuple(name for name, values in axes_values.items() if len(values) > 1)
    settings = []
    for combo in itertools.product(*axes_values.values()):
        values = dict(zip(axes_values, combo, strict=True))
        settings.append(_resolve(values, base_dir, offset_given="data.offset" in flat))
    resolved = {**top, **_resolved_axes(settings)}
    return Study(
        name=top["name"],
        n_inits=top["n_inits"],
        seed=top["seed"],
        settings=tuple(settings),
        config=resolved,
        axes=axes,
    )


def _resolved_axes(settings: Iterable[Setting]) -> dict[str, Any]:
    """Every setting key with its resolved value, or the list of its values on a sweep axis."""
    seen: dict[str, list] = {}
    for setting in settings:
        for name, value in setting.values:
            value = list(value) if isinstance(value, tuple) else value
            if value not in seen.setdefault(name, []):
                seen[name].append(value)
    return {name: values[0] if len(values) == 1 else values for name, values in seen.items()}


def make_setting(**values: Any) -> Setting:
    """One setting from keyword values, e.g. ``make_setting(model_width=4, data_offset=0.0)``.

    Keyword names are config keys with the dot written as an underscore after the section
    (``model_width`` for ``model.width``). Unnamed keys take their defaults.
    """
    flat = {}
    for name, value in values.items():
        section, _, rest = name.partition("_")
        dotted = f"{section}.{rest}" if section in ("data", "model", "train") else name
        if dotted not in KEYS or dotted in TOP_LEVEL:
            raise ConfigError(f"unknown setting {name!r}; use e.g. model_width for model.width")
        flat[dotted] = value
    study = load_study(_nest(flat))
    if len(study.settings) != 1:
        raise ConfigError("make_setting takes single values; use load_study for a sweep")
    return study.settings[0]


def _nest(flat: Mapping[str, Any]) -> dict:
    nested: dict[str, Any] = {}
    for name, value in flat.items():
        section, _, key = name.partition(".")
        nested.setdefault(section, {})[key] = value
    return nested


def describe_keys() -> str:
    """Every config key with its kind, default and meaning, one per line (``study run --help``)."""
    lines = []
    for key in SCHEMA:
        default = "derived" if key.default is None else json.dumps(key.default)
        kind = "structural" if key.structural else "numeric"
        choices = f" ({', '.join(key.choices)})" if key.choices else ""
        lines.append(f"  {key.name} = {default}  [{kind}] {key.doc}{choices}")
    return "\n".join(lines)
