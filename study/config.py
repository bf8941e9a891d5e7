"""Settings: the config schema, its validation, and the grid of settings it names.

A *setting* is one point of a study's grid. It has two parts, kept apart on purpose:

* :class:`Structure` (static): everything that changes array shapes or the compiled program.
  Settings that share a structure share one compiled program.
* :class:`Numeric` (traced): numbers such as the init range or the learning rate. They are a
  pytree argument of the compiled program, so any number of them are vmapped through it and a
  new value never recompiles.

A config is a TOML file (or a dict) with top-level ``name``, ``n_inits``, ``seed`` and
``pairing`` and the sections ``[data]``, ``[model]`` and ``[train]``. A value given as a list is a
sweep axis; the grid is the product of all axes. ``[variants.NAME]`` tables (optional) each set
single values of setting keys and run at every point of that grid; the config without them is
itself a variant, named ``baseline`` or what a top-level ``reference`` says (:func:`load_study`).

:data:`SCHEMA` is the single source of truth: each key is declared there once, and the
validation, ``study/configs/example.toml`` (:func:`render_example`) and the ``study run --help``
text (:func:`describe_keys`) follow from it. :class:`Structure` and :class:`Numeric` are written
out so that a type checker sees their fields, and ``tests/test_config.py`` holds them to
:data:`SCHEMA` (names, order, types, defaults). Adding a key is one entry in :data:`SCHEMA` and
one field in the class the test names.

:func:`flatten` and :func:`nest` turn a config's TOML layout into flat ``section.key`` names and
back.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
import tomllib
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from study.csvfile import load_csv
from study.errors import ConfigError

if TYPE_CHECKING:
    import jax
    import numpy as np

    # A numeric field holds a float in a setting, and an array once batched (``[n_settings]``,
    # NumPy) or traced (JAX). At run time the name is the key's kind, float, which the fields'
    # test reads; the config layer never imports JAX.
    Number = float | np.ndarray | jax.Array
    # The same for a numeric key whose kind is int (a count of steps): traced as a float array of
    # the group's dtype, like every numeric field.
    Count = int | np.ndarray | jax.Array
else:
    Number = float
    Count = int

ACTIVATIONS = (
    "relu",
    "leaky_relu",
    "elu",
    "gelu",
    "silu",
    "softplus",
    "tanh",
    "sigmoid",
    "crelu",
)
WEIGHT_INITS = (
    "uniform",
    "normal",
    "he_uniform",
    "he_normal",
    "glorot_uniform",
    "rai",
    "kaiming_uniform",
    "orthogonal",
)
BIAS_INITS = ("zeros", "uniform", "normal", "constant")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop")
DATA_KINDS = ("uniform", "gaussian", "csv", "function", "slowly_changing")
# Data kinds whose examples come one per step from a stream drawn inside the compiled program.
STREAMS = ("slowly_changing",)
# A stream's fresh bits per example at most: the target is tabulated over their 2^k values.
MAX_FAST_BITS = 16
TARGET_FUNCTIONS = ("abs", "square", "sin", "linear", "relu", "x_sin5x", "step_sin5x")
LOSSES = ("bce", "mse")
DTYPES = ("float32", "float64")
NORMS = ("none", "batch", "layer")
INTERVENTIONS = ("none", "redo", "shrink_perturb", "l2_init", "cbp", "noise")
# continual backprop's rate times the width, at most: the most its pool of fresh units serves
# without deferring a replacement ((POOL_SIZE - 1) / POOL_BLOCK of study.continual_backprop; a
# test keeps the two in step)
CBP_MAX_RATE_PER_UNIT = 0.12
# train.plasticity_metrics: off, every metric but the singular-value ranks, or all of them
PLASTICITY_METRICS = ("none", "without_ranks", "all")
# the interventions applied at the death checks (study.remedies.AT_CHECKS; a test keeps the two
# alike), which train.intervention_every times
CHECK_INTERVENTIONS = ("redo", "shrink_perturb")
# train.weight_decay's default for adamw, the one optimizer that read the key before it applied to
# every optimizer (then every setting resolved it to this value: Setting.setting_id).
ADAMW_WEIGHT_DECAY = 1e-4
# How the settings of a study share random draws (top-level ``pairing``): "shared", initialization
# i of every setting draws from the same keys (common random numbers, for paired comparisons);
# "independent", each setting has keys of its own (the draws of every study before the key).
PAIRINGS = ("shared", "independent")


# --------------------------------------------------------------------------------------------
# The schema: every key, its type, default, allowed values, and whether it is structural.
# --------------------------------------------------------------------------------------------


def _positive(v: float) -> str | None:
    return None if v > 0 else "must be > 0"


def _non_negative(v: float) -> str | None:
    return None if v >= 0 else "must be >= 0"


def _unit_interval(v: float) -> str | None:
    return None if 0 <= v < 1 else "must be in [0, 1)"


@dataclasses.dataclass(frozen=True)
class Key:
    """One config key, declared once.

    Attributes:
      name: ``section.key``, or a bare name for a top-level key (which is in no setting).
      kind: its Python type (``list`` for a list of column names).
      default: its value when the config leaves it out; None when it is derived (see ``derive``).
      doc: one line of meaning, for ``--help`` and ``example.toml``.
      structural: True for a :class:`Structure` field (static), False for a :class:`Numeric` one.
      choices: the allowed values, if only some are.
      check: returns why a value is refused, or None.
      derive: for a key without a default, its value from the setting's other values.
      field_name: its attribute in Structure or Numeric when that is not the name after the dot.
      in_id_at_default: False for keys added after results were committed: such a key enters a
        setting's id (and so, under ``pairing = "independent"``, its random draws) only when its
        value differs from the default, so that every setting that existed before draws the same
        networks as before.
      phase: for a structural key, ``"start"`` when the start (the training data and the drawn
        parameters, :func:`study.train.make_start`) may read it, ``"train"`` when only training
        does: structures that differ only in ``"train"`` keys share one compiled start.
    """

    name: str
    kind: type
    default: Any
    doc: str
    structural: bool = True
    choices: tuple[str, ...] | None = None
    check: Callable[[Any], str | None] | None = None
    derive: Callable[[Mapping[str, Any]], Any] | None = None
    field_name: str = ""
    in_id_at_default: bool = True
    phase: str = "start"

    @property
    def field(self) -> str:
        """Its attribute in Structure or Numeric ("" for a top-level key)."""
        return self.field_name or self.name.partition(".")[2]

    @property
    def nullable(self) -> bool:
        """Whether the key may be left unset (None) to take a value derived from other keys."""
        return self.derive is not None


SCHEMA: tuple[Key, ...] = (
    Key("name", str, "default", "name of the study; results go to results/<name>/"),
    Key("n_inits", int, 2000, "independent initializations per setting", check=_positive),
    Key(
        "seed",
        int,
        0,
        "study seed; with the index (and the setting, if pairing is independent) it fixes "
        "every random draw",
        check=lambda v: None if 0 <= v < 2**32 else "must be in [0, 2^32)",
    ),
    Key(
        "pairing",
        str,
        "shared",
        "shared: initialization i of every setting draws the same numbers (paired "
        "comparisons); independent: each setting its own (as every folder before this key)",
        choices=PAIRINGS,
    ),
    # data
    Key(
        "data.kind",
        str,
        "uniform",
        "synthetic base cloud, a CSV file, or a 1-D regression target",
        choices=DATA_KINDS,
        field_name="data_kind",
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
    Key(
        "data.path",
        str,
        "",
        "CSV file (data.kind = 'csv'); relative to the config file",
        field_name="csv_path",
    ),
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
    Key(
        "data.flipping_bits",
        int,
        15,
        "slowly_changing: input bits that change slowly (one flips every data.flip_every "
        "examples); the other data.dim - flipping_bits are fresh for every example",
        check=_positive,
        in_id_at_default=False,
    ),
    Key(
        "data.flip_every",
        int,
        10_000,
        "slowly_changing: examples between flips",
        check=_positive,
        in_id_at_default=False,
    ),
    Key(
        "data.teacher_width",
        int,
        100,
        "slowly_changing: linear threshold units of the target network",
        check=_positive,
        in_id_at_default=False,
    ),
    Key(
        "data.teacher_beta",
        float,
        0.7,
        "slowly_changing: the target units' threshold parameter (Dohare et al. 2024)",
        check=lambda v: None if 0 < v < 1 else "must be in (0, 1)",
        in_id_at_default=False,
    ),
    Key(
        "data.teacher_convention",
        str,
        "paper",
        "slowly_changing: the target units' thresholds as the paper states them (no output "
        "bias), or as the authors' code computes them (code: lop/nets/fix_ltu_net.py, sparser "
        "units where the bias is -1, an output bias +-1); docs/continual.md",
        choices=("paper", "code"),
        in_id_at_default=False,
    ),
    Key(
        "data.flip_one",
        bool,
        True,
        "slowly_changing: at every change one slow bit flips (the paper); false: every slow bit "
        "is redrawn (the authors' code's default)",
        in_id_at_default=False,
    ),
    Key(
        "data.probe_size",
        int,
        2000,
        "slowly_changing: inputs drawn from the current distribution at each logged step, "
        "on which death is judged",
        check=_positive,
        in_id_at_default=False,
    ),
    # model
    Key(
        "model.depth",
        int,
        1,
        "hidden layers; 0 = a linear model (inputs straight to the output)",
        check=_non_negative,
    ),
    Key(
        "model.width",
        int,
        1,
        "units (pre-activations) per hidden layer; under crelu each has two outputs",
        check=_positive,
    ),
    Key(
        "model.activation",
        str,
        "relu",
        "hidden activation; crelu = [relu(z), relu(-z)] per unit (Shang et al. 2016): a layer "
        "of width units has 2 * width outputs, the next layer 2 * width inputs; a unit is dead "
        "only where z = 0 on every input",
        choices=ACTIVATIONS,
        # (the drawn parameters read it where it sets a gain or crelu's shapes: see
        # study.train.start_structure)
        phase="train",
    ),
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
        "normal = N(0, init_range^2), he_*, glorot_uniform, rai (Lu et al. 2019), "
        "kaiming_uniform = U(-b, b), b = gain sqrt(3 / fan_in) with the activation's gain, "
        "orthogonal = orthonormal rows or columns times the activation's gain (Saxe et al. "
        "2014; the output layer's gain 1)",
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
    Key(
        "model.bias",
        bool,
        True,
        "whether the layers have (trainable) biases",
        field_name="use_bias",
    ),
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
        derive=lambda values: values["model.init_range"],
    ),
    Key(
        "model.norm",
        str,
        "none",
        "normalize every hidden layer's pre-activations, with a trained gain (init 1) and "
        "shift (init 0): batch = per unit over the batch's samples, layer = per sample over "
        "the layer's units (width >= 2)",
        choices=NORMS,
        in_id_at_default=False,
    ),
    Key(
        "model.flip_dead",
        bool,
        False,
        "at init, from the input up, negate the incoming weights and bias of every hidden "
        "unit dead on the training inputs (a data-dependent sign flip)",
        in_id_at_default=False,
        phase="train",
    ),
    # train
    Key("train.optimizer", str, "adam", "optax optimizer", choices=OPTIMIZERS, phase="train"),
    Key(
        "train.loss",
        str,
        None,
        "bce (sigmoid output) or mse (linear output); default: bce, mse for regression "
        "(data.kind = 'function' or a stream)",
        choices=LOSSES,
        derive=lambda values: (
            "bce" if values["data.kind"] in ("uniform", "gaussian", "csv") else "mse"
        ),
        phase="train",
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
        None,
        "weight decay for every optimizer: adam and adamw decoupled (AdamW: update = -rate * "
        "(adam's + weight_decay * param)), sgd, momentum, nesterov and rmsprop L2 "
        "(weight_decay * param added to the gradient); 0 = off; default: 1e-4 for adamw, 0 "
        "for the others",
        structural=False,
        check=_non_negative,
        derive=lambda values: ADAMW_WEIGHT_DECAY if values["train.optimizer"] == "adamw" else 0.0,
    ),
    Key(
        "train.warmup_steps",
        int,
        0,
        "linear learning-rate warmup: step t (from 0) uses rate * min(1, (t + 1) / "
        "warmup_steps) (Goyal et al. 2017); 0 = off (1 is the same); at most train.steps",
        structural=False,
        check=_non_negative,
        in_id_at_default=False,
    ),
    Key("train.steps", int, 1000, "optimizer steps", check=_positive, phase="train"),
    Key(
        "train.batch_size",
        int,
        0,
        "minibatch size; 0 = full batch (a stream: 1, one new example per step)",
        check=_non_negative,
        phase="train",
    ),
    Key(
        "train.log_every",
        int,
        10,
        "steps between death checks on the full training set; left out: min(10, train.steps)",
        check=_positive,
        phase="train",
    ),
    Key(
        "train.log_first",
        int,
        0,
        "check at every step for the first log_first steps, then every train.log_every (where "
        "early deaths happen: a denser survival curve); 0 = off; a multiple of train.log_every "
        "(past the run: every step)",
        check=_non_negative,
        phase="train",
        in_id_at_default=False,
    ),
    Key(
        "train.dormant_tau",
        float,
        0.0,
        "threshold of the dormant-neuron score (Sokar et al. 2023)",
        structural=False,
        check=_non_negative,
    ),
    Key(
        "train.curves",
        bool,
        False,
        "record curves.parquet: error and units dead under each definition at every logged "
        "step (always on for streams)",
        in_id_at_default=False,
        phase="train",
    ),
    # The plasticity metrics and the trainability probe (study.plasticity, study.probe).
    Key(
        "train.plasticity_metrics",
        str,
        "none",
        "per-network plasticity metrics in runs (at the end) and curves (every logged step): "
        "all = effective rank, srank, stable rank (singular values of each layer's features), "
        "weight magnitude, distance from start, gradient norm, grad-dormant and always-active "
        "units; "
        "without_ranks = all but the three ranks; none = off",
        choices=PLASTICITY_METRICS,
        in_id_at_default=False,
        phase="train",
    ),
    Key(
        "train.probe_steps",
        int,
        0,
        "trainability probe: at the end, each network and a fresh one train this many steps "
        "on a fresh task of the same kind, the same for every setting at an index (runs: "
        "probe_loss_drop, probe_ratio, ...); 0 = off",
        check=_non_negative,
        in_id_at_default=False,
        phase="train",
    ),
    Key(
        "train.intervention",
        str,
        "none",
        "a remedy applied during training: redo = re-draw dormant units (Sokar et al. 2023), "
        "shrink_perturb (Ash and Adams 2020), l2_init = L2 pull toward the initial parameters "
        "(Kumar et al. 2023), cbp = continual backprop: the lowest-utility mature units "
        "re-drawn at every step (Dohare et al. 2024), noise = Gaussian noise of std "
        "train.noise_std added to every parameter after every step (with train.weight_decay: "
        "Dohare et al.'s online shrink and perturb)",
        choices=INTERVENTIONS,
        in_id_at_default=False,
        phase="train",
    ),
    Key(
        "train.intervention_every",
        int,
        100,
        "steps between redo or shrink_perturb interventions; a multiple of train.log_every",
        check=_positive,
        in_id_at_default=False,
        phase="train",
    ),
    Key(
        "train.redo_tau",
        float,
        0.0,
        "redo re-draws the units whose dormant score is <= redo_tau (0: units silent on "
        "every training input)",
        structural=False,
        check=_non_negative,
        in_id_at_default=False,
    ),
    Key(
        "train.shrink",
        float,
        0.8,
        "shrink_perturb: parameters <- shrink * parameters + perturb * a fresh initialization",
        structural=False,
        check=_non_negative,
        in_id_at_default=False,
    ),
    Key(
        "train.perturb",
        float,
        0.1,
        "see train.shrink",
        structural=False,
        check=_non_negative,
        in_id_at_default=False,
    ),
    Key(
        "train.l2_init",
        float,
        0.01,
        "l2_init: every step's gradient gains l2_init * (parameters - initial parameters), "
        "the gradient of (l2_init / 2) |parameters - initial|^2 (Kumar et al.'s lambda is "
        "l2_init / 2)",
        structural=False,
        check=_non_negative,
        in_id_at_default=False,
    ),
    Key(
        "train.cbp_replacement_rate",
        float,
        1e-4,
        "cbp: replacements per mature unit and step, accumulated per layer (rho of Dohare et "
        "al. 2024; 1e-4: the default of the authors' code, lop/algos/gnt.py)",
        structural=False,
        check=lambda v: None if 0 <= v <= 1 else "must be in [0, 1]",
        in_id_at_default=False,
    ),
    Key(
        "train.cbp_maturity",
        int,
        100,
        "cbp: a unit younger than this many steps is never replaced (m of Dohare et al. 2024; "
        "100 as in their slowly-changing regression, cfg/sgd/cbp/relu.json)",
        structural=False,
        check=_non_negative,
        in_id_at_default=False,
    ),
    Key(
        "train.cbp_decay",
        float,
        0.99,
        "cbp: decay of the running average of each unit's contribution utility (eta of Dohare "
        "et al. 2024, 0.99 in all their experiments)",
        structural=False,
        check=_unit_interval,
        in_id_at_default=False,
    ),
    Key(
        "train.noise_std",
        float,
        0.0,
        "noise: the standard deviation of the Gaussian noise added to every parameter after "
        "every optimizer step (perturb_scale of Dohare et al.'s code, lop/algos/bp.py)",
        structural=False,
        check=_non_negative,
        in_id_at_default=False,
    ),
    Key("train.dtype", str, "float32", "floating-point precision", choices=DTYPES),
)

KEYS: dict[str, Key] = {key.name: key for key in SCHEMA}
TOP_LEVEL = tuple(key.name for key in SCHEMA if not key.field)
SETTING_KEYS = tuple(key.name for key in SCHEMA if key.field)
SECTIONS = tuple(dict.fromkeys(name.partition(".")[0] for name in SETTING_KEYS))
_STRUCTURAL = tuple(key for key in SCHEMA if key.field and key.structural)
_NUMERIC = tuple(key for key in SCHEMA if key.field and not key.structural)


# --------------------------------------------------------------------------------------------
# Structure (static) and Numeric (traced): the setting keys' fields in schema order, written out
# so that a type checker sees them; tests/test_config.py holds them to SCHEMA (names, order,
# types, defaults and the structural/numeric split), so SCHEMA stays the source of truth.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Structure:
    """The static part of a setting: all that changes shapes or the compiled program.

    One field per structural key of :data:`SCHEMA`, in its order (``data.kind`` is
    ``data_kind``, ``data.path`` is ``csv_path``, ``model.bias`` is ``use_bias``).
    """

    data_kind: str = "uniform"
    dim: int = 2
    n_samples: int = 256
    standardize: bool = False
    resample: bool = False
    csv_path: str = ""
    features: tuple[str, ...] = ()
    target: str = "y"
    function: str = "abs"
    flipping_bits: int = 15
    flip_every: int = 10_000
    teacher_width: int = 100
    teacher_beta: float = 0.7
    teacher_convention: str = "paper"
    flip_one: bool = True
    probe_size: int = 2000
    depth: int = 1
    width: int = 1
    activation: str = "relu"
    init: str = "uniform"
    use_bias: bool = True
    bias_init: str = "zeros"
    norm: str = "none"
    flip_dead: bool = False
    optimizer: str = "adam"
    loss: str = "bce"  # derived: bce for the default (classification) data
    steps: int = 1000
    batch_size: int = 0
    log_every: int = 10
    log_first: int = 0
    curves: bool = False
    plasticity_metrics: str = "none"
    probe_steps: int = 0
    intervention: str = "none"
    intervention_every: int = 100
    dtype: str = "float32"

    @property
    def full_batch(self) -> bool:
        """Whether every step sees the whole training set."""
        return self.batch_size in (0, self.n_samples)


class Numeric(NamedTuple):
    """The traced part of a setting; each field a scalar, or ``[n_settings]`` when batched.

    One field per numeric key of :data:`SCHEMA`, in its order. A NamedTuple, so that it is a
    pytree that JAX maps and vmaps through without registration.
    """

    offset: Number = 2.0
    target_scale: Number = 1.0
    target_shift: Number = 0.0
    leaky_slope: Number = 0.01
    init_range: Number = 0.05
    bias_scale: Number = 0.05  # derived: model.init_range
    learning_rate: Number = 0.01
    momentum: Number = 0.9
    weight_decay: Number = 0.0  # derived: 1e-4 for adamw, 0 for the other optimizers
    warmup_steps: Count = 0
    dormant_tau: Number = 0.0
    redo_tau: Number = 0.0
    shrink: Number = 0.8
    perturb: Number = 0.1
    l2_init: Number = 0.01
    cbp_replacement_rate: Number = 1e-4
    cbp_maturity: Count = 100
    cbp_decay: Number = 0.99
    noise_std: Number = 0.0


@dataclasses.dataclass(frozen=True)
class Setting:
    """One point of the grid: its flat config values, structure and numeric part, and the
    variant it belongs to ("" when the config has no ``[variants.NAME]`` tables).

    The variant is a label: it is not in ``values`` and not in :attr:`setting_id`, so it never
    changes a setting's random draws (under shared pairing they follow from the seed and the
    index, under independent pairing from the values too).
    """

    values: tuple[tuple[str, Any], ...]
    structure: Structure
    numeric: Numeric
    variant: str = ""

    @property
    def as_dict(self) -> dict[str, Any]:
        return dict(self.values)

    @property
    def setting_id(self) -> int:
        """A stable 31-bit hash of the values; under ``pairing = "independent"`` it is folded
        into every initialization's key (under "shared", a constant is: study.train.draw_ids_of).

        A float64 setting has the id of its float32 twin, so it draws the same networks and data
        and checks precision, not luck. Keys added since results were first committed count only
        away from their defaults (``Key.in_id_at_default``), and ``train.weight_decay`` counts as
        it did when adamw alone read it (:func:`_weight_decay_in_id`).
        """
        as_dict = self.as_dict
        values = tuple(
            (name, _value_in_id(name, value, as_dict))
            for name, value in self.values
            if KEYS[name].in_id_at_default or value != KEYS[name].default
        )
        text = json.dumps(values, sort_keys=True, default=str)
        return zlib.crc32(text.encode()) & 0x7FFFFFFF


def _value_in_id(name: str, value: Any, values: Mapping[str, Any]) -> Any:
    """What :attr:`Setting.setting_id` hashes for one key of a setting's ``values``."""
    if name == "train.dtype":
        return "float32"
    if name == "train.weight_decay":
        return _weight_decay_in_id(value, values["train.optimizer"])
    return value


def _weight_decay_in_id(weight_decay: float, optimizer: str) -> Any:
    """``train.weight_decay`` in a setting id. Before it applied to every optimizer, only adamw
    read it and every setting resolved it to :data:`ADAMW_WEIGHT_DECAY` unless given: so another
    optimizer's 0 (off: the run every such setting made then) counts as that value, keeping
    those settings' ids and draws; a decay that such an optimizer now applies counts tagged, so
    that its id is not the id of the same setting without decay."""
    if optimizer == "adamw":
        return weight_decay
    if weight_decay == 0:
        return ADAMW_WEIGHT_DECAY
    return ["decay for every optimizer", weight_decay]


@dataclasses.dataclass(frozen=True)
class Study:
    """A resolved config: its name, size, seed, the grid's settings and the resolved config.

    ``axes`` are the base config's sweep axes; ``variants`` the names of the variants, the
    base config's first (its name is :attr:`reference`), or () when the config has none. The
    settings are the base config's grid, then each variant's in the order of ``variants``.
    ``pairing``: whether the settings share their random draws (:data:`PAIRINGS`); a top-level
    key, so it is in ``config`` and in no setting (nor its id).
    """

    name: str
    n_inits: int
    seed: int
    settings: tuple[Setting, ...]
    config: dict[str, Any]
    axes: tuple[str, ...]
    variants: tuple[str, ...] = ()
    pairing: str = "shared"

    @property
    def reference(self) -> str:
        """The base config's variant name ("" without variants)."""
        return self.variants[0] if self.variants else ""

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


def flatten(nested: Mapping[str, Any]) -> dict[str, Any]:
    """A config in its TOML layout as flat keys, checked against the schema.

    ``{"seed": 1, "model": {"width": 4}}`` becomes ``{"seed": 1, "model.width": 4}``: a section's
    keys are written ``section.key``, top-level keys as they are; :func:`nest` is the inverse.
    Raises a one-line ConfigError for a section or key that :data:`SCHEMA` does not name.
    """
    flat = {}
    for name, value in nested.items():
        if isinstance(value, Mapping):
            if name not in SECTIONS:
                allowed = ", ".join(f"[{section}]" for section in SECTIONS)
                raise ConfigError(f"unknown section [{name}]; allowed: {allowed}")
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


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Flat keys in a config's TOML layout, the inverse of :func:`flatten`.

    ``{"seed": 1, "model.width": 4}`` becomes ``{"seed": 1, "model": {"width": 4}}``; sections
    and their keys keep the order in which they first appear. The keys are not checked here:
    :func:`load_study` checks what it is given.
    """
    nested: dict[str, Any] = {}
    for name, value in flat.items():
        section, dot, key = name.partition(".")
        if dot:
            nested.setdefault(section, {})[key] = value
        else:
            nested[name] = value
    return nested


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
    checked = [_check_value(key, v) for v in values]
    for i, v in enumerate(checked):
        if v in checked[:i]:
            raise ConfigError(
                f"{key.name} = {value!r}: {v!r} is listed twice; a sweep lists each value once, "
                "so that every setting runs n_inits initializations"
            )
    return checked


def _resolve(
    values: Mapping[str, Any], base_dir: Path, given: frozenset[str], variant: str = ""
) -> Setting:
    """Fill the defaults that depend on other keys and build the Structure and Numeric parts.

    The values of the returned setting are the resolved ones (a CSV's absolute path, its
    sample count and dimension, the loss, bias scale and log interval that follow from other
    keys).

    Args:
      values: one value per setting key, in schema order.
      base_dir: the folder a relative ``data.path`` is relative to.
      given: the keys the user gave; the others may take defaults that depend on the data.
      variant: the name of the variant the setting belongs to ("" without variants).
    """
    values, features = _read_data_file(values, base_dir, given)
    values = _derived_values(values, given)
    _check_consistent(values)
    structure = Structure(**_structure_fields(values, features))
    numeric = Numeric(**{key.field: values[key.name] for key in _NUMERIC})
    return Setting(tuple(values.items()), structure, numeric, variant)


def _read_data_file(
    values: Mapping[str, Any], base_dir: Path, given: frozenset[str]
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """For CSV data: the values with the file's absolute path, sample count and dimension, and
    the feature columns the file resolves to; other data are returned as they are, with ()."""
    values = dict(values)
    if values["data.kind"] != "csv":
        return values, ()
    if not values["data.path"]:
        raise ConfigError("data.path is required when data.kind = 'csv'")
    path = Path(values["data.path"])
    if not path.is_absolute():
        try:
            path = (base_dir / path).resolve()
        except (OSError, RuntimeError) as err:  # a symbolic link loop, on Python 3.11
            raise ConfigError(f"data.path = {str(path)!r}: cannot resolve it ({err})") from None
    features, inputs, _ = load_csv(
        str(path), values["data.features"], values["data.target"], values["train.dtype"]
    )
    values["data.n_samples"], values["data.dim"] = inputs.shape
    values["data.path"] = str(path)
    if "data.offset" not in given:
        values["data.offset"] = 0.0  # data from a file are used as given unless told otherwise
    return values, tuple(features)


def _derived_values(values: Mapping[str, Any], given: frozenset[str]) -> dict[str, Any]:
    """The values with every unset (None) key derived from the others."""
    values = dict(values)
    for key in SCHEMA:
        if key.derive is not None and values[key.name] is None:
            values[key.name] = key.derive(values)
    if "train.log_every" not in given:
        # The default interval adapts to a short run; an explicit one longer than it is refused.
        values["train.log_every"] = min(values["train.log_every"], values["train.steps"])
    # Dense checks past the last whole interval mean every step is checked: say so in the value.
    steps, every = values["train.steps"], values["train.log_every"]
    if 0 < every <= steps:
        values["train.log_first"] = min(values["train.log_first"], steps - steps % every)
    if values["data.kind"] in STREAMS:
        # A stream: online learning (one example per step) from data.dim = 20 bits by default,
        # its curves recorded, death judged on the probe (which stands for the training set).
        defaults = {"data.dim": 20, "train.batch_size": 1, "train.curves": True}
        values.update((name, value) for name, value in defaults.items() if name not in given)
        values["data.n_samples"] = values["data.probe_size"]
    return values


def _check_consistent(values: Mapping[str, Any]) -> None:
    """Raise a one-line ConfigError for values that are valid alone but not together."""
    _check_in_dtype(values)
    kind, n_samples = values["data.kind"], values["data.n_samples"]
    if kind == "function" and values["data.dim"] != 1:
        raise ConfigError(f"data.dim = {values['data.dim']}: data.kind = 'function' needs dim 1")
    if values["train.loss"] == "bce" and kind == "function":
        raise ConfigError("train.loss = 'bce': data.kind = 'function' is a regression; use mse")
    if values["train.batch_size"] > n_samples:
        raise ConfigError(
            f"train.batch_size = {values['train.batch_size']}: larger than data.n_samples = "
            f"{n_samples}; allowed: 0 (full batch) to {n_samples}"
        )
    if values["train.warmup_steps"] > values["train.steps"]:
        raise ConfigError(
            f"train.warmup_steps = {values['train.warmup_steps']}: longer than train.steps = "
            f"{values['train.steps']}, the rate would never reach train.learning_rate; allowed: "
            f"0 (off) to {values['train.steps']}"
        )
    if values["train.log_every"] > values["train.steps"]:
        raise ConfigError(
            f"train.log_every = {values['train.log_every']}: larger than train.steps = "
            f"{values['train.steps']}"
        )
    _check_log_first(values)
    if kind in STREAMS:
        _check_stream(values)
    hidden_only = values["model.norm"] != "none" or values["model.flip_dead"]
    redraws = values["train.intervention"] in ("redo", "cbp")
    if values["model.depth"] == 0 and (hidden_only or redraws):
        raise ConfigError(
            "model.depth = 0: a linear model has no hidden units to normalize, flip or re-draw"
        )
    if values["train.curves"] and values["train.steps"] % values["train.log_every"]:
        raise ConfigError(
            f"train.log_every = {values['train.log_every']}: curves are recorded at every "
            f"logged step, so it must divide train.steps = {values['train.steps']}"
        )
    if values["model.norm"] == "batch" and values["train.batch_size"] == 1:
        raise ConfigError(
            "model.norm = 'batch': a batch of 1 normalizes every pre-activation to 0; use "
            "train.batch_size >= 2 (or 0, full batch), or model.norm = 'layer'"
        )
    if values["model.norm"] == "layer" and values["model.width"] < 2:
        raise ConfigError(
            "model.norm = 'layer': a layer of width 1 normalizes to 0 on every input; "
            "use model.width >= 2, or model.norm = 'batch' or 'none'"
        )
    _check_intervention(values)


def _check_in_dtype(values: Mapping[str, Any]) -> None:
    """Every number of a setting as the run holds it: a float in ``train.dtype``, where it
    must neither overflow (1e39 is inf in float32) nor round to 0 (XLA flushes subnormals); an
    integer (a count of steps or samples) in the engine's integers, 32-bit beside float32."""
    import numpy as np

    dtype = values["train.dtype"]
    floats, ints = np.finfo(dtype), np.iinfo("int32" if dtype == "float32" else "int64")
    largest, smallest = float(floats.max), float(floats.tiny)  # compared as Python floats
    wider = " (or train.dtype = 'float64')" if dtype == "float32" else ""
    for name, value in values.items():
        kind = KEYS[name].kind
        if kind is float and value is not None and abs(value) > largest:
            raise ConfigError(
                f"{name} = {value!r}: beyond {dtype} (train.dtype), whose largest number is "
                f"{largest:.4g}; allowed: at most {largest:.4g} in magnitude{wider}"
            )
        if kind is float and value is not None and 0 < abs(value) < smallest:
            raise ConfigError(
                f"{name} = {value!r}: rounds to 0 in {dtype} (train.dtype); allowed: 0, or at "
                f"least {smallest:.4g} in magnitude{wider}"
            )
        if kind is int and value is not None and not ints.min <= value <= ints.max:
            raise ConfigError(
                f"{name} = {value!r}: beyond the {ints.bits}-bit integers of a {dtype} run; "
                f"allowed: at most {ints.max} ({ints.max:.3g}){wider}"
            )


def _check_stream(values: Mapping[str, Any]) -> None:
    """A stream trains online on examples drawn inside the program; refuse what does not fit."""
    kind = values["data.kind"]
    if values["train.batch_size"] != 1:
        raise ConfigError(
            f"train.batch_size = {values['train.batch_size']}: data.kind = '{kind}' is a stream "
            "learned one example per step; allowed: 1"
        )
    fast_bits = values["data.dim"] - values["data.flipping_bits"]
    if fast_bits > MAX_FAST_BITS:
        raise ConfigError(
            f"data.dim = {values['data.dim']}: {fast_bits} bits drawn fresh per example; the "
            f"engine tabulates the target over their 2^{fast_bits} values, allowed: at most "
            f"{MAX_FAST_BITS} (raise data.flipping_bits)"
        )
    if values["data.flipping_bits"] > values["data.dim"]:
        raise ConfigError(
            f"data.flipping_bits = {values['data.flipping_bits']}: more than data.dim = "
            f"{values['data.dim']} inputs"
        )
    if values["train.loss"] != "mse":
        raise ConfigError(f"train.loss = 'bce': data.kind = '{kind}' is a regression; use mse")
    if not values["train.curves"]:
        raise ConfigError(f"train.curves = false: a stream ('{kind}') always records its curves")
    # (that train.log_every divides train.steps is checked for every run with curves)
    unsupported = {
        "data.standardize": values["data.standardize"],
        "data.resample": values["data.resample"],
        "model.flip_dead": values["model.flip_dead"],
        "model.norm": values["model.norm"] == "batch",
    }
    for name, used in unsupported.items():
        if used:
            raise ConfigError(
                f"{name} = {values[name]!r}: not available with data.kind = '{kind}' "
                "(every initialization has its own stream, learned one example per step)"
            )


def check_steps(steps: int, log_every: int, log_first: int = 0) -> np.ndarray:
    """The steps of the death checks: 0, 1, ..., ``log_first - 1`` (``train.log_first``, off
    when 0), then every ``log_every`` steps from ``log_first`` to the last whole interval (the
    steps after it, without curves only, are checked once more at ``steps``)."""
    last = steps - steps % log_every
    return np.concatenate([np.arange(log_first), np.arange(log_first, last + 1, log_every)])


def _check_log_first(values: Mapping[str, Any]) -> None:
    """The dense first checks end on the regular grid (past the run they were cut to its last
    whole interval: :func:`_derived_values`), on fixed data."""
    first, every = values["train.log_first"], values["train.log_every"]
    if not first:
        return
    if first % every:
        raise ConfigError(
            f"train.log_first = {first}: allowed: 0 (off) or a multiple of train.log_every = "
            f"{every} (a value past the run checks every step)"
        )
    if values["data.kind"] in STREAMS:
        raise ConfigError(
            f"train.log_first = {first}: not available with data.kind = '{values['data.kind']}' "
            "(a stream's error is averaged over train.log_every examples); use 0"
        )


def _check_intervention(values: Mapping[str, Any]) -> None:
    """An intervention at fixed steps must fall on the death checks, inside the run; continual
    backprop's rate is at most what its pool of fresh units serves."""
    rate, width = values["train.cbp_replacement_rate"], values["model.width"]
    if values["train.intervention"] == "cbp" and rate * width > CBP_MAX_RATE_PER_UNIT:
        bound = CBP_MAX_RATE_PER_UNIT / width
        raise ConfigError(
            f"train.cbp_replacement_rate = {rate}: with model.width = {width} a layer would owe "
            f"more replacements than CBP draws fresh units for; allowed: at most "
            f"{CBP_MAX_RATE_PER_UNIT:g} / width = {bound:g}"
        )
    every, steps = values["train.intervention_every"], values["train.steps"]
    log_every = values["train.log_every"]
    if values["train.intervention"] not in CHECK_INTERVENTIONS:
        return
    if every % log_every:
        raise ConfigError(
            f"train.intervention_every = {every}: must be a multiple of train.log_every = "
            f"{log_every} (interventions happen at the death checks)"
        )
    if every >= steps:
        raise ConfigError(
            f"train.intervention_every = {every}: no intervention would happen within "
            f"train.steps = {steps}; allowed: a multiple of {log_every} below {steps}"
        )


def _structure_fields(values: Mapping[str, Any], features: tuple[str, ...]) -> dict[str, Any]:
    """The Structure fields of resolved values: only CSV data name a file and its columns
    (the columns resolved from the file, so that all-but-the-target is spelt out)."""
    fields = {key.field: values[key.name] for key in _STRUCTURAL}
    fields["csv_path"] = values["data.path"] if values["data.kind"] == "csv" else ""
    fields["features"] = features
    return fields


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``KEY=VALUE`` (VALUE in TOML syntax; a bare word is a string).

    KEY is a config key, ``reference``, or ``variants.NAME.KEY`` (an override of variant NAME,
    which it adds if the config has none of that name).
    """
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. model.width=[1,4]")
    name, raw = (part.strip() for part in text.split("=", 1))
    if name not in KEYS and name != "reference" and not name.startswith("variants."):
        raise ConfigError(
            f"--set {name}: unknown key; allowed: {', '.join(KEYS)}, reference, "
            "variants.NAME.KEY (a variant's override)"
        )
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return name, value


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a config file, turning every failure into a one-line ConfigError."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} not found") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {str(path)!r} is a directory") from None
    except OSError as err:  # unreadable, a symbolic link loop, ...
        raise ConfigError(f"config file {str(path)!r}: cannot read it ({err.strerror})") from None
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

    A config may hold ``[variants.NAME]`` tables, each overriding single setting keys of the
    rest of the config (the base config, itself the variant that ``reference`` names, by
    default ``baseline``); every variant runs at every point of the base config's grid, its
    settings after the base config's (:attr:`Study.variants`, :attr:`Setting.variant`).

    Args:
      config: path to a TOML file, a nested dict in the same layout, or None for the default
        study shipped in ``study/configs/default.toml``.
      overrides: ``KEY=VALUE`` strings, as given to ``--set`` (also ``reference=NAME`` and
        ``variants.NAME.KEY=VALUE``).
      base_dir: folder that a relative ``data.path`` is relative to (default: the config's).
      **top_level: ``n_inits``, ``seed``, ``name`` or ``pairing`` overriding the config's.
    """
    if config is None:
        config = Path(__file__).parent / "configs" / "default.toml"
    if isinstance(config, str | Path):
        base_dir = Path(config).parent if base_dir is None else base_dir
        config = read_toml(config)
    parsed = [parse_override(text) for text in overrides]
    reference, variants = _given_variants(config, parsed)
    flat = _given_values(config, parsed, top_level)
    base_dir = Path.cwd() if base_dir is None else Path(base_dir)

    top = {name: _check_value(KEYS[name], flat.get(name, KEYS[name].default)) for name in TOP_LEVEL}
    axes_values = {
        name: _axis_values(KEYS[name], flat.get(name, KEYS[name].default)) for name in SETTING_KEYS
    }
    axes = tuple(name for name, values in axes_values.items() if len(values) > 1)
    given = frozenset(flat)
    grids = {reference: _grid(axes_values, base_dir, given, reference if variants else "")}
    for name, changes in variants.items():
        grids[name] = _variant_grid(name, changes, axes_values, base_dir, given)
    _check_distinct(grids, axes, reference, variants)
    resolved = {**top, **_resolved_axes(grids[reference])}
    if variants:
        resolved.update(reference=reference, variants=_resolved_variants(grids, reference))
    return Study(
        name=top["name"],
        n_inits=top["n_inits"],
        seed=top["seed"],
        settings=tuple(setting for grid in grids.values() for setting in grid),
        config=resolved,
        axes=axes,
        variants=tuple(grids) if variants else (),
        pairing=top["pairing"],
    )


def _given_values(
    config: Mapping[str, Any],
    overrides: Iterable[tuple[str, Any]],
    top_level: Mapping[str, Any],
) -> dict[str, Any]:
    """The keys the user gave to the base config, flat: the config's, then ``--set`` overrides,
    then keywords (the variants and the reference are :func:`_given_variants`')."""
    flat = flatten({name: value for name, value in config.items() if name not in _VARIANT_KEYS})
    flat.update((name, value) for name, value in overrides if name in KEYS)
    flat.update((name, value) for name, value in top_level.items() if value is not None)
    return flat


def _grid(
    axes_values: Mapping[str, list[Any]], base_dir: Path, given: frozenset[str], variant: str
) -> list[Setting]:
    """The settings of every combination of ``axes_values`` in grid order (:func:`_resolve`)."""
    return [
        _resolve(dict(zip(axes_values, combo, strict=True)), base_dir, given, variant)
        for combo in itertools.product(*axes_values.values())
    ]


def _resolved_axes(settings: Iterable[Setting]) -> dict[str, Any]:
    """Every setting key with its resolved value, or the list of its values on a sweep axis."""
    seen: dict[str, list[Any]] = {}
    for setting in settings:
        for name, value in setting.values:
            value = list(value) if isinstance(value, tuple) else value
            if value not in seen.setdefault(name, []):
                seen[name].append(value)
    return {name: values[0] if len(values) == 1 else values for name, values in seen.items()}


# --------------------------------------------------------------------------------------------
# Variants: [variants.NAME] tables of overrides, each run at every point of the base grid.
# --------------------------------------------------------------------------------------------

# The top-level names of a config that hold variants rather than keys.
_VARIANT_KEYS = ("reference", "variants")
# The name of the base config's variant when ``reference`` does not name it.
BASELINE = "baseline"
# The column of the runs, curves and summary tables that names a row's variant (only when the
# config has variants).
VARIANT_COLUMN = "variant"
_VARIANT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_EXAMPLE_VARIANT = "e.g. [variants.slow] then train.learning_rate = 0.001"


def _given_variants(
    config: Mapping[str, Any], overrides: Iterable[tuple[str, Any]]
) -> tuple[str, dict[str, dict[str, Any]]]:
    """The base config's variant name and each variant's overrides as flat keys (values not
    checked yet): the config's ``[variants.NAME]`` tables, then ``--set variants.NAME.KEY=``."""
    tables = config.get("variants", {})
    if not isinstance(tables, Mapping):
        raise ConfigError(
            f"variants = {tables!r}: expected [variants.NAME] tables of overrides, "
            f"{_EXAMPLE_VARIANT}"
        )
    variants = {name: _variant_keys(name, table) for name, table in tables.items()}
    reference = config.get("reference")
    for name, value in overrides:
        if name == "reference":
            reference = value
        elif name.startswith("variants."):
            variant, _, key = name.removeprefix("variants.").partition(".")
            if not key:
                raise ConfigError(
                    f"--set {name}: expected variants.NAME.KEY=VALUE, "
                    "e.g. variants.slow.train.learning_rate=0.001"
                )
            variants.setdefault(variant, {})[key] = value
    if reference is not None and not variants:
        raise ConfigError(
            f"reference = {reference!r}: names the base config's variant, but the config has "
            f"no [variants.NAME] table; remove it, or add variants ({_EXAMPLE_VARIANT})"
        )
    reference = BASELINE if reference is None else reference
    _check_variant_name(reference, "reference = ")
    for name in variants:
        _check_variant_name(name, "variant name ")
        if name == reference:
            raise ConfigError(
                f"[variants.{name}]: {name!r} is the name of the base config's variant "
                f"(reference = {reference!r}); give this variant another name"
            )
    return reference, variants


def _check_variant_name(name: Any, what: str) -> None:
    """Refuse a name that is not a plain name: it labels the tables' rows and file names."""
    if not isinstance(name, str) or not _VARIANT_NAME.fullmatch(name):
        raise ConfigError(
            f"{what}{name!r}: a variant's name starts with a letter and holds only letters, "
            "digits, '_' and '-' (64 characters at most)"
        )


def _variant_keys(name: str, table: Any) -> dict[str, Any]:
    """A ``[variants.NAME]`` table as flat ``section.key`` names (checked later)."""
    if not isinstance(table, Mapping):
        raise ConfigError(
            f"variants.{name} = {table!r}: expected a table of overrides, {_EXAMPLE_VARIANT}"
        )
    flat = {}
    for section, value in table.items():
        if not isinstance(value, Mapping):
            flat[section] = value
            continue
        for key, sub_value in value.items():
            if isinstance(sub_value, Mapping):
                raise ConfigError(f"[variants.{name}] unknown section [{section}.{key}]")
            flat[f"{section}.{key}"] = sub_value
    return flat


def _variant_value(name: str, key: str, value: Any, axes_values: Mapping[str, list]) -> Any:
    """One override of variant ``name``, checked and converted as :func:`_check_value` does."""

    def bad(why: str) -> ConfigError:
        return ConfigError(f"[variants.{name}] {why}")

    section, dot, _ = key.partition(".")
    if key in TOP_LEVEL or key in _VARIANT_KEYS:
        raise bad(
            f"{key}: a top-level key; a variant overrides setting keys only "
            f"({', '.join(f'[{s}]' for s in SECTIONS)}); set {key} at the top of the config"
        )
    if dot and section not in SECTIONS:
        raise bad(f"unknown section [{section}]; allowed: {', '.join(f'[{s}]' for s in SECTIONS)}")
    if key not in KEYS:
        raise bad(f"unknown key '{key}'; allowed: {', '.join(SETTING_KEYS)}")
    if len(axes_values[key]) > 1:
        raise bad(
            f"{key} = {value!r}: {key} is a sweep axis of the base config; a variant sets keys "
            "that the sweep does not, and runs at every point of the sweep"
        )
    if isinstance(value, list) and (
        KEYS[key].kind is not list or any(isinstance(v, list) for v in value)
    ):
        raise bad(
            f"{key} = {value!r}: a variant sets single values, not a sweep; sweep {key} in the "
            "base config"
        )
    try:
        return _check_value(KEYS[key], value)
    except ConfigError as err:
        raise bad(str(err)) from None


def _variant_grid(
    name: str,
    changes: Mapping[str, Any],
    axes_values: Mapping[str, list[Any]],
    base_dir: Path,
    given: frozenset[str],
) -> list[Setting]:
    """Variant ``name``'s settings: the base config's grid with ``changes`` (flat keys) applied
    to every point; a key given to the variant counts as given (for defaults that depend on it)."""
    if not changes:
        raise ConfigError(
            f"[variants.{name}] sets no key; a variant overrides at least one setting key, "
            f"{_EXAMPLE_VARIANT}"
        )
    values = dict(axes_values)
    for key, value in changes.items():
        values[key] = [_variant_value(name, key, value, axes_values)]
    try:
        return _grid(values, base_dir, given | frozenset(changes), name)
    except ConfigError as err:
        raise ConfigError(f"[variants.{name}] {err}") from None


def _check_distinct(
    grids: Mapping[str, Sequence[Setting]],
    axes: Sequence[str],
    reference: str,
    variants: Mapping[str, Mapping[str, Any]],
) -> None:
    """Refuse two settings with the same resolved values: a sweep that names one setting twice,
    or a variant identical (at some grid point) to the base config or to another variant.

    ``grids``: each variant's settings in grid order, the base config's (``reference``) first;
    ``variants``: each variant's overrides as given (named in the message).
    """
    for name, settings in grids.items():
        if len({setting.values for setting in settings}) < len(settings):
            prefix = "" if name == reference else f"[variants.{name}] "
            raise ConfigError(
                f"{prefix}the sweep over {', '.join(axes)} names one setting twice once derived "
                "values are filled in (e.g. model.bias_scale left out is model.init_range); list "
                "each setting once"
            )
    seen: dict[tuple, str] = {}
    for name, settings in grids.items():
        for setting in settings:
            first = seen.setdefault(setting.values, name)
            if first == name:
                continue
            other = f"the base config ('{first}')" if first == reference else f"[variants.{first}]"
            everywhere = all(
                a.values == b.values for a, b in zip(grids[first], settings, strict=True)
            )
            where = ", ".join(f"{axis} = {setting.as_dict[axis]!r}" for axis in axes)
            changes = ", ".join(f"{key} = {value!r}" for key, value in variants[name].items())
            raise ConfigError(
                f"[variants.{name}] ({changes}) is identical to {other}"
                + ("" if everywhere else f" at {where}")
                + " once resolved (a key set to the value it has there, or derived alike); a "
                "variant must change some setting"
            )


def _resolved_variants(
    grids: Mapping[str, Sequence[Setting]], reference: str
) -> dict[str, dict[str, Any]]:
    """Each variant's resolved overrides, for the resolved config: every key whose value differs
    from the base config's at some grid point, with its value (the list of its values, as on a
    sweep axis, when it differs between grid points: a value derived from a swept key)."""
    base = grids[reference]
    resolved = {}
    for name, settings in grids.items():
        if name == reference:
            continue
        changed = {
            key
            for setting, base_setting in zip(settings, base, strict=True)
            for key, value in setting.values
            if value != base_setting.as_dict[key]
        }
        values = _resolved_axes(settings)
        resolved[name] = {key: value for key, value in values.items() if key in changed}
    return resolved


def make_setting(**values: Any) -> Setting:
    """One setting from keyword values, e.g. ``make_setting(model_width=4, data_offset=0.0)``.

    Keyword names are config keys with the dot written as an underscore after the section
    (``model_width`` for ``model.width``). Unnamed keys take their defaults. The setting
    belongs to no variant (``variant == ""``): variants are ``[variants.NAME]`` tables of a
    config, resolved by :func:`load_study`.
    """
    flat = {}
    for name, value in values.items():
        section, _, rest = name.partition("_")
        dotted = f"{section}.{rest}" if section in SECTIONS else name
        if dotted not in KEYS or dotted in TOP_LEVEL:
            raise ConfigError(f"unknown setting {name!r}; use e.g. model_width for model.width")
        flat[dotted] = value
    study = load_study(nest(flat))
    if len(study.settings) != 1:
        raise ConfigError("make_setting takes single values; use load_study for a sweep")
    return study.settings[0]


def describe_keys() -> str:
    """Every config key with its kind, default and meaning, one per line (``study run --help``)."""
    lines = []
    for key in SCHEMA:
        default = "derived" if key.nullable else json.dumps(key.default)
        kind = "structural" if key.structural else "numeric"
        choices = f" ({', '.join(key.choices)})" if key.choices else ""
        lines.append(f"  {key.name} = {default}  [{kind}] {key.doc}{choices}")
    lines += [
        f'  reference = "{BASELINE}"  [variants] the name of the variant that the config without '
        "its [variants.NAME] tables is (only with variants)",
        "  [variants.NAME]  [variants] a variant: single values overriding setting keys, e.g. "
        "train.learning_rate = 0.001, run at every point of the sweep; the tables gain a "
        "variant column",
    ]
    return "\n".join(lines)


EXAMPLE_PATH = Path(__file__).parent / "configs" / "example.toml"
_EXAMPLE_HEADER = """\
# A complete example config: every key, with its default value and meaning.
# Any key may be omitted (it takes the default shown). A value given as a list is a sweep
# axis; the grid is the product of all axes, e.g. init_range = [0.05, 0.5].
# Keys marked (nullable) default to a value derived from other keys; write them to override.
"""


_EXAMPLE_VARIANTS = f"""\
# Variants (optional): each [variants.NAME] table sets single values of setting keys, written
# as above, and runs at every point of the sweep; the config without its variants is itself the
# variant named by reference (default "{BASELINE}"). The tables then gain a variant column.
# reference = "{BASELINE}"   (a top-level key: write it before [data])
#
# [variants.slow]
# train.learning_rate = 0.001\
"""


def render_example() -> str:
    """The text of ``study/configs/example.toml``: every key with its default, meaning and kind.

    Regenerate the file with ``EXAMPLE_PATH.write_text(render_example())`` after a schema edit.
    """
    lines, section = _EXAMPLE_HEADER.splitlines() + [""], ""
    for key in SCHEMA:
        key_section, _, short = key.name.rpartition(".")
        if key_section != section:
            lines += ["", f"[{key_section}]"]
            section = key_section
        # JSON spells these strings, numbers, booleans and lists as TOML does.
        assignment = f"# {short} = ..." if key.nullable else f"{short} = {json.dumps(key.default)}"
        meaning = ("(nullable) " if key.nullable else "") + key.doc
        if key.choices:
            meaning += f"; one of: {', '.join(key.choices)}"
        kind = "structural" if key.structural else "numeric (traced, sweeps share one compile)"
        lines.append(f"{assignment}   # {meaning} [{kind}]")
    return "\n".join(lines + ["", _EXAMPLE_VARIANTS]) + "\n"
