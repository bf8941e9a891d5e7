"""The compiled engine: train a block of settings x initializations in one ``jax.jit``.

``make_train(structure)`` returns ``train(seed, numerics, draw_ids, init_indices, csv)``:

* ``numerics``: a :class:`~study.config.Numeric` of ``[n_settings]`` arrays (vmapped, traced);
* ``draw_ids``: ``uint32[n_settings]``, each setting's draw id (:func:`draw_ids_of`);
* ``init_indices``: ``int32[n_inits]``, which initializations of each setting to train.

An initialization's key is ``fold_in(fold_in(init_root(seed), draw_id), index)``, so its result
depends only on (seed, draw id, index), never on how initializations are chunked or sharded. The
draw id is the setting's id under ``pairing = "independent"`` and :data:`SHARED_DRAWS` for every
setting under ``pairing = "shared"``: then initialization ``i`` of every setting draws the same
numbers (what a draw makes of them, a scale or a shape, is the setting's), so settings that start
alike start from the same network, with the same batch order and fresh draws (paired
comparisons). One dataset per setting is drawn from the data stream of the seed and broadcast to
all initializations (or, with ``data.resample``, one per initialization, from
``fold_in(fold_in(data_root, draw_id), index)``).

Training is one loop for every kind of data (:func:`run_checks`): a ``lax.scan`` over the death
checks at steps 0, ``log_every``, ... (every step before ``log_first``, when set); each checks the
network's health, records it, applies a remedy when one is due (:mod:`study.remedies`) and trains
to the next check. What the steps learn from and what the checks run on is a :class:`Source`: a
fixed training set (checked whole) or a stream learned one example per step (checked on a probe
of its current distribution).
A unit is *dead* when its activation's derivative is 0 on every input of the check, *inactive*
when its pre-activation is <= 0 on every input (for ReLU the two coincide; a CReLU unit is dead
only where its pre-activation is 0 on every input, and inactive when its relu(z) half is silent,
the unit that would be dead as a ReLU, while its relu(-z) half carries -z); the network is dead when
some hidden layer has all its units dead, so its output is constant on the data. The compiled
run returns a :class:`Result` (metrics and curves; curves over zero checks when they are off).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from study import continual_backprop, model, plasticity, probe, remedies, stream
from study.config import (
    PAIRINGS,
    SCHEMA,
    STREAMS,
    Count,
    Number,
    Numeric,
    Setting,
    Structure,
    check_steps,
)
from study.data import Data, key_streams, make_data
from study.errors import ConfigError
from study.remedies import TrainState


class Metrics(NamedTuple):
    """What one initialization's training recorded (``L`` hidden layers).

    dead_init, dead_end: bool, the network is dead at initialization (after model.flip_dead's
      flips) / at the end.
    death_step: int32, first logged step from which the network stays dead; -1 if alive at end.
    revived: bool, the network was dead at some logged step and alive at a later one.
    revived_by_training, revived_by_intervention: bool, which way it came back: over training
      steps, or at an intervention (checked right after it); ``revived`` is their "or".
    diverged: bool, loss or parameters became non-finite (then dead_end and revived are False).
    initial_loss, final_loss: float, mean training loss.
    final_accuracy: float, training accuracy at the end (NaN for a regression).
    predicted_positive: float, share of training inputs predicted class 1 at the end (NaN for mse).
    dead_units_init, dead_units_end: int32[L], dead units per layer.
    inactive_units_init, inactive_units_end: int32[L], inactive units per layer.
    dormant_units_init, dormant_units_end: int32[L], units whose dormant score is <= tau.
    revived_units: int32[L], units dead at some logged step and alive at a later one (a unit
      ReDo re-drew alive included).
    flipped_units: int32[L], units whose signs ``model.flip_dead`` flipped at initialization.
    reset_units: int32[L], units ReDo re-drew, summed over its interventions.
    replaced_units: int32[L], units continual backprop replaced (0 without it).
    """

    dead_init: jax.Array
    dead_end: jax.Array
    death_step: jax.Array
    revived: jax.Array
    revived_by_training: jax.Array
    revived_by_intervention: jax.Array
    diverged: jax.Array
    initial_loss: jax.Array
    final_loss: jax.Array
    final_accuracy: jax.Array
    predicted_positive: jax.Array
    dead_units_init: jax.Array
    dead_units_end: jax.Array
    inactive_units_init: jax.Array
    inactive_units_end: jax.Array
    dormant_units_init: jax.Array
    dormant_units_end: jax.Array
    revived_units: jax.Array
    flipped_units: jax.Array
    reset_units: jax.Array
    replaced_units: jax.Array


class Health(NamedTuple):
    """The state of one network at one check: on the whole training set, or a stream's probe.

    dead, inactive, dormant: bool[L, width]; loss: float; finite: bool (loss and parameters).
    """

    dead: jax.Array
    inactive: jax.Array
    dormant: jax.Array
    loss: jax.Array
    finite: jax.Array
    output: jax.Array


class History(NamedTuple):
    """What the checks so far imply (carried through the scan over checks, :func:`run_checks`)."""

    ever_dead: jax.Array  # bool[L, width]
    revived_units: jax.Array  # bool[L, width]
    network_dead: jax.Array  # bool
    network_ever_dead: jax.Array  # bool
    network_revived: jax.Array  # bool
    revived_by_training: jax.Array  # bool: dead at one check, alive at the next after steps
    revived_by_intervention: jax.Array  # bool: dead before an intervention, alive after it
    death_step: jax.Array  # int32
    diverged: jax.Array  # bool
    reset_units: jax.Array  # int32[L], units re-drawn by ReDo so far


class ScaleByAdamState(NamedTuple):
    """Adam's moments, and ``b1^t``, ``b2^t`` as running products (scalars)."""

    b1_power: jax.Array
    b2_power: jax.Array
    mu: optax.Updates
    nu: optax.Updates


def scale_by_adam(b1: Number, b2: float = 0.999, eps: float = 1e-8) -> optax.GradientTransformation:
    """``optax.scale_by_adam`` with the bias corrections' ``b^t`` kept as running products.

    optax computes ``b1 ** t`` with ``pow``; on CPU, XLA's ``pow`` can round differently in the
    vectorized body and the scalar tail of a loop, which would make an initialization's result
    depend on its position in a chunk. Multiplying by ``b`` once per step is the same quantity
    (to float rounding) with the same bits wherever it runs.
    """

    def init_fn(params):
        one = jnp.ones([], jax.tree.leaves(params)[0].dtype)
        zeros = jax.tree.map(jnp.zeros_like, params)
        return ScaleByAdamState(one, one, zeros, zeros)

    def update_fn(updates, state, params=None):
        del params
        mu = jax.tree.map(lambda g, m: (1 - b1) * g + b1 * m, updates, state.mu)
        nu = jax.tree.map(lambda g, v: (1 - b2) * (g * g) + b2 * v, updates, state.nu)
        b1_power, b2_power = state.b1_power * b1, state.b2_power * b2
        updates = jax.tree.map(
            lambda m, v: (m / (1 - b1_power)) / (jnp.sqrt(v / (1 - b2_power)) + eps), mu, nu
        )
        return updates, ScaleByAdamState(b1_power, b2_power, mu, nu)

    return optax.GradientTransformation(init_fn, update_fn)


def warmup_schedule(learning_rate: Number, warmup_steps: Count) -> Callable[[jax.Array], jax.Array]:
    """The learning rate of update ``t`` (0, 1, ...) under linear warmup over ``W`` steps:
    ``rate * min(1, (t + 1) / max(W, 1))``.

    The gradual warmup of Goyal et al. (2017, arXiv 1706.02677): the rate grows linearly from
    ``rate / W`` at the first update to ``rate`` at update ``W - 1``, then stays there. (optax's
    ``linear_schedule(0, rate, W)`` and the common ``rate * t / W`` start at 0, an update that
    does nothing.) ``W = 0`` is no warmup (and ``W = 1`` the same): the factor is exactly 1, and
    ``rate * 1`` is ``rate`` in IEEE arithmetic, so the updates are those without the schedule
    bit for bit (after a warmup, too, the factor is exactly 1).
    """

    dtype = jnp.result_type(learning_rate)  # the group's float dtype
    length = jnp.maximum(jnp.asarray(warmup_steps, dtype), 1)

    def rate(count: jax.Array) -> jax.Array:
        return jnp.multiply(learning_rate, jnp.minimum(1, (count + 1).astype(dtype) / length))

    return rate


def add_weight_decay(weight_decay: Number) -> optax.GradientTransformation:
    """``updates + weight_decay * params``, and the updates untouched where ``weight_decay`` is 0.

    A select rather than an add of ``0 * params``: a ``-0`` update and non-finite parameters stay
    as they were, so decay 0 is the optimizer without decay bit for bit. (optax's
    ``add_decayed_weights`` skips a Python 0, but not a traced one.)
    """

    def update_fn(updates, state, params=None):
        decayed = jax.tree.map(
            lambda g, p: jnp.where(weight_decay == 0, g, g + weight_decay * p), updates, params
        )
        return decayed, state

    return optax.GradientTransformation(optax.init_empty_state, update_fn)


def make_optimizer(name: str, numeric: Numeric) -> optax.GradientTransformation:
    """The optax optimizer ``name`` with traced hyperparameters from ``numeric``.

    The learning rate follows :func:`warmup_schedule` (``train.warmup_steps``), where optax's
    aliases put it. ``train.weight_decay``: adam and adamw decoupled, as ``optax.adamw``
    (update ``-rate * (adam + weight_decay * params)``, Loshchilov and Hutter 2019); sgd,
    momentum, nesterov and rmsprop L2 (``weight_decay * params`` added to the gradient, before
    the optimizer). adamw keeps ``optax.add_decayed_weights``, its form before the key applied
    to every optimizer; the others :func:`add_weight_decay`, so that 0 changes nothing.
    """
    rate = warmup_schedule(numeric.learning_rate, numeric.warmup_steps)
    momentum, weight_decay = numeric.momentum, numeric.weight_decay
    if name in ("adam", "adamw"):
        decoupled = (
            optax.add_decayed_weights(weight_decay)
            if name == "adamw"
            else add_weight_decay(weight_decay)
        )
        return optax.chain(scale_by_adam(momentum), decoupled, optax.scale_by_learning_rate(rate))
    optimizers = {
        "sgd": lambda: optax.sgd(rate),
        "momentum": lambda: optax.sgd(rate, momentum=momentum),
        "nesterov": lambda: optax.sgd(rate, momentum=momentum, nesterov=True),
        "rmsprop": lambda: optax.rmsprop(rate, momentum=momentum),
    }
    if name not in optimizers:
        raise ValueError(f"unknown optimizer {name!r}")
    return optax.chain(add_weight_decay(weight_decay), optimizers[name]())


def health(structure: Structure, numeric: Numeric, params: model.Params, data: Data) -> Health:
    """Run the network on the whole training set and classify every hidden unit."""
    fwd = model.forward(structure, numeric, params, data.inputs)
    loss, _ = model.loss_and_output_grad(structure.loss, fwd.output, data.targets)
    units = structure.width
    dead = _per_layer(structure, [model.dead_units(d, units) for d in fwd.derivatives])
    inactive = _per_layer(structure, [jnp.all(z <= 0, axis=-1) for z in fwd.pre_activations])
    dormant = _per_layer(
        structure,
        [remedies.dormant_units(h, numeric.dormant_tau, units) for h in fwd.activations[1:]],
    )
    finite = jnp.isfinite(loss) & jnp.all(
        jnp.stack([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(params)])
    )
    return Health(dead, inactive, dormant, loss, finite, fwd.output)


def _per_layer(structure: Structure, layers: list[jax.Array]) -> jax.Array:
    """Per-unit values of the hidden layers stacked, ``[L, width]`` (``[0, width]`` if none)."""
    return jnp.stack(layers) if layers else jnp.zeros((0, structure.width), bool)


def _network_dead(dead_units: jax.Array) -> jax.Array:
    return jnp.any(jnp.all(dead_units, axis=-1))


def _record(history: History, now: Health, step, after_intervention: bool = False) -> History:
    """The history with one more observation: a check after training steps, or (with
    ``after_intervention``) the check right after an intervention at the same step."""
    network_dead = _network_dead(now.dead)
    died_now = network_dead & ~history.network_dead
    came_back = history.network_dead & ~network_dead
    by_training, by_intervention = history.revived_by_training, history.revived_by_intervention
    if after_intervention:
        by_intervention = by_intervention | came_back
    else:
        by_training = by_training | came_back
    return history._replace(
        ever_dead=history.ever_dead | now.dead,
        revived_units=history.revived_units | (history.ever_dead & ~now.dead),
        network_dead=network_dead,
        network_ever_dead=history.network_ever_dead | network_dead,
        network_revived=history.network_revived | (history.network_ever_dead & ~network_dead),
        revived_by_training=by_training,
        revived_by_intervention=by_intervention,
        death_step=jnp.where(network_dead, jnp.where(died_now, step, history.death_step), -1),
        diverged=history.diverged | ~now.finite,
    )


def _batch(structure: Structure, data: Data, key: jax.Array, step) -> Data:
    """The training batch of ``step``: the full set, or a slice of this epoch's permutation."""
    if structure.full_batch:
        return data
    per_epoch = structure.n_samples // structure.batch_size
    epoch, position = step // per_epoch, step % per_epoch
    order = jax.random.permutation(jax.random.fold_in(key, epoch), structure.n_samples)
    index = lax.dynamic_slice(order, (position * structure.batch_size,), (structure.batch_size,))
    return Data(data.inputs[:, index], data.targets[index])


class Start(NamedTuple):
    """What training starts from, per initialization (vmapped: leading ``[n_settings, n_inits]``).

    params: float[n_params], the drawn parameters as one flat vector (:func:`study.model.flatten`).
    key_batch: the key of the minibatch order.
    key_fresh: the key of the interventions' fresh draws (folded with the step).
    key_stream: the key of the initialization's stream (data.kind a stream): its teacher and
      examples; it depends on the seed and the index only, so every setting of a sweep learns
      the same streams.
    """

    params: jax.Array
    key_batch: jax.Array
    key_fresh: jax.Array
    key_stream: jax.Array


# Folded into an initialization's key for the stream of its interventions' fresh draws (the
# parameters and the minibatch order come from a split of the same key). Under independent
# pairing it is FRESH_DRAWS, as before the pairing key, which makes the fresh draws' key equal the
# minibatch order's (JAX's fold_in(key, i) is split(key)[i] for i < 2); shared draws fold
# SHARED_FRESH_DRAWS instead, a key of their own.
FRESH_DRAWS = 1
SHARED_FRESH_DRAWS = 3
# Folded into the data key, then the index, for an initialization's stream.
STREAM_DRAWS = 2
# The draw id of every setting under pairing = "shared", folded into the init root and (with
# data.resample) the data root where a setting's id is under "independent". 2^31 is a value no
# setting id takes (31 bits, config.Setting.setting_id) and not STREAM_DRAWS, so a shared
# initialization's keys are never an independent one's, and fold_in(data_root, SHARED_DRAWS), the
# root of the resampled data, is not the streams' root fold_in(data_root, STREAM_DRAWS).
SHARED_DRAWS = 2**31


def draw_ids_of(setting_ids: Sequence[int], pairing: str) -> np.ndarray:
    """``uint32[n_settings]``: what each setting folds into its keys in place of its id.

    ``pairing = "independent"``: the settings' ids, so each draws numbers of its own (the draws
    before the key existed, bit for bit); ``"shared"``: :data:`SHARED_DRAWS` for all, so
    initialization ``i`` draws the same numbers in every setting. Raises ConfigError for another
    pairing.
    """
    if pairing not in PAIRINGS:
        raise ConfigError(f"pairing = {pairing!r}: allowed: {', '.join(PAIRINGS)}")
    ids = np.asarray(setting_ids, dtype=np.int64)
    if pairing == "shared":
        ids = np.full(ids.shape, SHARED_DRAWS, np.int64)
    return ids.astype(np.uint32)


def start_one(
    structure: Structure,
    numeric: Numeric,
    key: jax.Array,
    key_stream: jax.Array,
    fresh_tag: jax.Array | int = SHARED_FRESH_DRAWS,
) -> Start:
    """Draw one initialization from its own ``key``: its parameters and its keys (``fresh_tag``
    is folded into ``key`` for the interventions' fresh draws: :func:`fresh_tag_of`)."""
    key_init, key_batch = jax.random.split(key)
    params = model.flatten(model.init_params(structure, numeric, key_init))
    return Start(params, key_batch, jax.random.fold_in(key, fresh_tag), key_stream)


def fresh_tag_of(draw_id: jax.Array) -> jax.Array:
    """What a setting of this draw id folds in for its fresh draws: :data:`SHARED_FRESH_DRAWS`
    under shared pairing, :data:`FRESH_DRAWS` (the draws before the key) under independent."""
    shared = jnp.asarray(draw_id).astype(jnp.uint32) == np.uint32(SHARED_DRAWS)
    return jnp.where(shared, SHARED_FRESH_DRAWS, FRESH_DRAWS).astype(jnp.uint32)


class Curves(NamedTuple):
    """One initialization's state at every logged step (``C`` checks, ``L`` hidden layers).

    step: int32[C]; error: float[C], the mean loss over the examples since the previous check
    (a stream; NaN at step 0) or the training loss at the check (other data); per layer
    ``int32[C, L]`` counts of units dead (activation derivative 0 on every input of the check),
    inactive (pre-activation <= 0 on every input), dormant (score <= train.dormant_tau) and
    rarely active (pre-activation > 0, under crelu != 0, on fewer than 1% of the inputs), and
    ``float[C, L]`` zero_share, the share of zero entries among the layer's activations (its
    ``2 * width`` outputs under crelu, about half of them 0 on any input); ``int32[C, L]``
    replaced_units, the units continual backprop replaced before the check (0 without it).
    """

    step: jax.Array
    error: jax.Array
    dead_units: jax.Array
    inactive_units: jax.Array
    dormant_units: jax.Array
    rarely_active_units: jax.Array
    zero_share: jax.Array
    replaced_units: jax.Array


# Dohare et al. (2024)'s rule: a unit active on fewer than this share of inputs is "dormant".
RARELY_ACTIVE_SHARE = 0.01


def curve_point(
    structure: Structure,
    numeric: Numeric,
    params: model.Params,
    data: Data,
    now: Health,
    step: jax.Array | int,
    error: jax.Array,
    replaced: jax.Array,
) -> Curves:
    """The curves' entries of one check: ``now`` (the health on ``data``) and two definitions
    that need the activations themselves; ``replaced: int32[L]``, the units CBP replaced so
    far."""
    fwd = model.forward(structure, numeric, params, data.inputs)
    n = data.inputs.shape[-1]
    # a CReLU unit is active on an input where either output is: z != 0
    crelu = structure.activation == "crelu"
    active = [
        model.sum_samples(((z != 0) if crelu else (z > 0)).astype(z.dtype)) / n
        for z in fwd.pre_activations
    ]
    zero = [jnp.mean(h == 0) for h in fwd.activations[1:]]
    count = functools.partial(jnp.sum, axis=-1, dtype=jnp.int32)
    rarely = _per_layer(structure, [share < RARELY_ACTIVE_SHARE for share in active])
    return Curves(
        step=jnp.asarray(step, jnp.int32),
        error=jnp.asarray(error, data.inputs.dtype),
        dead_units=count(now.dead),
        inactive_units=count(now.inactive),
        dormant_units=count(now.dormant),
        rarely_active_units=count(rarely),
        zero_share=jnp.stack(zero).astype(data.inputs.dtype) if zero else jnp.zeros((0,)),
        replaced_units=replaced,
    )


class Result(NamedTuple):
    """What the compiled run returns for one initialization, with curves on or off.

    metrics: its :class:`Metrics`.
    curves: its :class:`Curves` over ``C`` checks: every logged step with ``train.curves`` (a
      stream always), ``C = 0`` without (:func:`no_curves`).
    plasticity_end: its :class:`study.plasticity.Plasticity` at the end, on the last check's
      data; None without ``train.plasticity_metrics``.
    plasticity_curves: the same at every check (leading ``[C]``), on the check's data before
      any intervention; None without ``train.plasticity_metrics`` or without curves.
    probe: its trainability probe at the end (:mod:`study.probe`); None without
      ``train.probe_steps``.
    """

    metrics: Metrics
    curves: Curves
    plasticity_end: plasticity.Plasticity | None = None
    plasticity_curves: plasticity.Plasticity | None = None
    probe: probe.Probe | None = None


def no_curves(structure: Structure) -> Curves:
    """Curves over zero checks: the shapes and dtypes of :func:`curve_point`'s, ``C = 0``."""
    dtype = jnp.dtype(structure.dtype)
    counts = jnp.zeros((0, structure.depth), jnp.int32)
    return Curves(
        step=jnp.zeros((0,), jnp.int32),
        error=jnp.zeros((0,), dtype),
        dead_units=counts,
        inactive_units=counts,
        dormant_units=counts,
        rarely_active_units=counts,
        zero_share=jnp.zeros((0, structure.depth), dtype),
        replaced_units=counts,
    )


# step(state, batch, index) -> (state, the batch's loss before the update); index: the step's
# number (int32, the same for every initialization: a remedy may branch on it)
OptimizerStep = Callable[[TrainState, Data, jax.Array], tuple[TrainState, jax.Array]]


class Source(NamedTuple):
    """Where one initialization's examples and checks come from: functions closed over the
    structure and its data or stream (:func:`fixed_source`, :func:`stream_source`).

    feed: the source's state at step 0, advanced with the training (a pytree: ``()`` for a fixed
      training set, :class:`StreamFeed` for a stream).
    check_data(feed, step) -> Data: the inputs the check at ``step`` judges the network on (the
      training set, or a probe of the stream's current distribution).
    learn(state, feed, first_step, n_steps) -> (state, feed): ``n_steps`` optimizer steps.
    error(feed, index, now) -> float: the curves' error at check ``index``, whose health is ``now``.
    """

    feed: Any
    check_data: Callable[[Any, Any], Data]
    learn: Callable[[TrainState, Any, Any, int], tuple[TrainState, Any]]
    error: Callable[[Any, jax.Array, Health], jax.Array]


class Checks(NamedTuple):
    """The carry of the scan over death checks (one initialization; ``L`` hidden layers of ``W``
    units, ``n`` inputs per check).

    state: TrainState, ``params: float[n_params]`` and the optimizer's state for them.
    feed: the source's state (``()``, or a stream's :class:`StreamFeed`).
    history: what the checks so far imply (``bool[L, W]`` masks, scalars, ``int32[L]`` resets).
    first: Health at step 0 (``dead``, ``inactive``, ``dormant: bool[L, W]``; ``loss: float``;
      ``finite: bool``; ``output: float[n]``).
    last: Health at the latest check.
    """

    state: TrainState
    feed: Any
    history: History
    first: Health
    last: Health


# What a check adds to the curves: its Curves point, and its plasticity metrics (each None when
# not recorded).
CheckPoint = tuple[Curves | None, plasticity.Plasticity | None]


def run_checks(
    structure: Structure,
    numeric: Numeric,
    source: Source,
    state: TrainState,
    key_fresh: jax.Array,
    flipped: jax.Array,
    probe_of: Callable[[jax.Array], probe.Probe] | None = None,
) -> Result:
    """Train one initialization from ``state``: check its health, record, train to the next
    check, maybe intervene; from step 0 to ``train.steps``.

    The health check runs at the steps of :func:`study.config.check_steps` in ONE place in the
    program (a scan over the checks, each followed by the steps to the next, except the last):
    every check compiles to the same code, and the program holds one copy of it instead of
    three (compile time). An intervention (:func:`study.remedies.make_intervention`, fresh
    draws from ``key_fresh``) falls on a check: after it, the network is checked again, so that
    a revival it causes is told from one that training causes. Steps after the last whole
    interval (never with curves) are trained after the scan and checked once more.
    ``flipped``: ``int32[L]``, the units flipped at initialization. ``probe_of``: the
    trainability probe of the final flat parameters (:func:`probe_one`), or None.
    """
    intervene = remedies.make_intervention(structure, numeric, key_fresh)
    remainder = structure.steps % structure.log_every
    steps = check_steps(structure.steps, structure.log_every, structure.log_first)
    initial = model.unflatten(structure, state.params)  # distance_from_start's origin
    check_then_learn = _make_check_then_learn(
        structure, numeric, source, intervene, initial, len(steps) - 1
    )
    shapes = jax.eval_shape(
        lambda s, f: _check(structure, numeric, s, source.check_data(f, 0)), state, source.feed
    )
    placeholder = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
    carry = Checks(state, source.feed, _empty_history(placeholder.dead), placeholder, placeholder)
    checks = (jnp.arange(len(steps), dtype=jnp.int32), jnp.asarray(steps, jnp.int32))
    carry, (curves, plasticity_curves) = lax.scan(check_then_learn, carry, checks)
    state, feed, history, end = carry.state, carry.feed, carry.history, carry.last
    last_step = structure.steps - remainder
    if remainder:  # (not with curves: the config refuses it)
        state, feed = source.learn(state, feed, last_step, remainder)
        last_step = structure.steps
        end = _check(structure, numeric, state, source.check_data(feed, last_step))
        history = _record(history, end, jnp.int32(last_step))
    data = source.check_data(feed, last_step)
    metrics = _metrics(structure, data, carry.first, end, history, flipped)
    metrics = metrics._replace(replaced_units=continual_backprop.replaced_units(structure, state))
    plasticity_end = None
    if structure.plasticity_metrics != "none":
        params = model.unflatten(structure, state.params)
        plasticity_end = plasticity.plasticity(structure, numeric, params, initial, data)
    curves = no_curves(structure) if curves is None else curves
    probed = None if probe_of is None else probe_of(state.params)
    return Result(metrics, curves, plasticity_end, plasticity_curves, probed)


def _check(structure: Structure, numeric: Numeric, state: TrainState, data: Data) -> Health:
    return health(structure, numeric, model.unflatten(structure, state.params), data)


def _make_check_then_learn(
    structure: Structure,
    numeric: Numeric,
    source: Source,
    intervene: remedies.Intervention | None,
    initial: model.Params,
    n_intervals: int,
) -> Callable[[Checks, tuple[jax.Array, jax.Array]], tuple[Checks, CheckPoint]]:
    """The body of :func:`run_checks`' scan, at check ``index`` of ``n_intervals + 1``, at
    ``step`` (:func:`check_steps`): check, record, the curves' point (with ``train.curves``;
    and the plasticity metrics, with ``train.plasticity_metrics``, ``initial`` the parameters
    training started from), an intervention when one is due, then the steps to the next check
    (none after the last)."""

    def intervene_and_check(state, history, data, step) -> tuple[TrainState, History]:
        assert intervene is not None  # (only called when there is one)
        state, reset = intervene(state, data, step)
        history = history._replace(reset_units=history.reset_units + reset)
        after = _check(structure, numeric, state, data)
        return state, _record(history, after, step, after_intervention=True)

    def check_then_learn(
        carry: Checks, check: tuple[jax.Array, jax.Array]
    ) -> tuple[Checks, CheckPoint]:
        index, step = check
        data = source.check_data(carry.feed, step)
        now = _check(structure, numeric, carry.state, data)
        history = _record(carry.history, now, step)
        first = jax.tree.map(lambda old, new: jnp.where(index == 0, new, old), carry.first, now)
        point = metrics_point = None
        if structure.curves:  # the state the check saw, before any intervention
            params = model.unflatten(structure, carry.state.params)
            error = source.error(carry.feed, index, now)
            replaced = continual_backprop.replaced_units(structure, carry.state)
            point = curve_point(structure, numeric, params, data, now, step, error, replaced)
            if structure.plasticity_metrics != "none":
                metrics_point = plasticity.plasticity(structure, numeric, params, initial, data)
        state = carry.state
        if intervene is not None:
            due = (index > 0) & (step < structure.steps)
            due = due & (step % structure.intervention_every == 0)
            state, history = lax.cond(
                due, intervene_and_check, lambda s, h, *_: (s, h), state, history, data, step
            )
        state, feed = _learn_to_next_check(
            structure, source, n_intervals, index, step, state, carry.feed
        )
        return Checks(state, feed, history, first, now), (point, metrics_point)

    return check_then_learn


def _learn_to_next_check(
    structure: Structure, source: Source, n_intervals: int, index, step, state: TrainState, feed
) -> tuple[TrainState, Any]:
    """The steps from check ``index`` (at ``step``) to the next: ``log_every`` of them, one
    before ``train.log_first``, none after the last check."""

    def learn(n_steps: int) -> Callable[[TrainState, Any], tuple]:
        return lambda s, f: source.learn(s, f, step, n_steps)

    def rest(s: TrainState, f: Any) -> tuple:
        return s, f

    every = structure.log_every
    if not structure.log_first:
        return lax.cond(index < n_intervals, learn(every), rest, state, feed)
    branch = jnp.where(index < structure.log_first, 1, jnp.where(index < n_intervals, 2, 0))
    return lax.switch(branch, [rest, learn(1), learn(every)], state, feed)


def make_step(
    structure: Structure,
    numeric: Numeric,
    optimizer: optax.GradientTransformation,
    initial: jax.Array,
    key_fresh: jax.Array,
) -> OptimizerStep:
    """``step(state, batch, index) -> (state, loss)``: optimizer step ``index`` on ``batch`` (its
    loss before the update), with the gradient term of a remedy
    (:func:`study.remedies.gradient_term`, which pulls toward the flat initial parameters
    ``initial``) and, after the update, the step of a remedy that acts at every step (continual
    backprop or noise, fresh draws from ``key_fresh``).

    The optimizer works on all parameters as one flat vector: every optax optimizer used here is
    elementwise, so this is the same update, but one fused kernel per operation instead of one
    per parameter array (docs/performance.md).
    """
    pull = remedies.gradient_term(structure, numeric, initial)
    per_step = continual_backprop.make_step_remedy(
        structure, numeric, key_fresh
    ) or remedies.step_noise(structure, numeric, key_fresh)

    def step(state: TrainState, batch: Data, index: jax.Array) -> tuple[TrainState, jax.Array]:
        params = model.unflatten(structure, state.params)
        fwd = model.forward(structure, numeric, params, batch.inputs)
        loss, output_grad = model.loss_and_output_grad(structure.loss, fwd.output, batch.targets)
        grads = model.flat_gradient(params, fwd, output_grad, structure.use_bias, structure.norm)
        if pull is not None:
            grads = grads + pull(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        state = state._replace(
            params=optax.apply_updates(state.params, updates), opt_state=opt_state
        )
        if per_step is not None:
            # the barrier keeps the remedy out of the update's fused loops, so that their
            # rounding does not depend on it (rate 0 is the run without it, bit for bit)
            state = per_step(lax.optimization_barrier(state), fwd, index)
        return state, loss

    return step


def fixed_source(
    structure: Structure, data: Data, key_batch: jax.Array, step: OptimizerStep
) -> Source:
    """A fixed training set ``data``: the checks run on all of it, the steps on its minibatches
    (an order per epoch drawn from ``key_batch``), the curves' error is the check's loss."""

    def learn(state: TrainState, feed: tuple, first_step, n_steps: int) -> tuple[TrainState, tuple]:
        def one_step(state: TrainState, index) -> tuple[TrainState, None]:
            return step(state, _batch(structure, data, key_batch, index), index)[0], None

        steps = first_step + jnp.arange(n_steps, dtype=jnp.int32)
        return lax.scan(one_step, state, steps)[0], feed

    return Source((), lambda feed, step: data, learn, lambda feed, index, now: now.loss)


class StreamFeed(NamedTuple):
    """A stream's position (``k`` slow bits, ``f`` fresh bits per example).

    bits: the slow bits now, ``[k]``; targets: ``float[2^f]``, the teacher's outputs on the
    current distribution; loss_sum: float, the examples' losses (each before its update) summed
    since the last check.
    """

    bits: stream.StreamState
    targets: jax.Array
    loss_sum: jax.Array


def stream_source(structure: Structure, key: jax.Array, step: OptimizerStep) -> Source:
    """The stream of ``key`` (its teacher, slow bits and examples), learned online, one example
    per step; each check runs on a probe of ``data.probe_size`` fresh inputs from the current
    distribution, which stands for the training set of the other data kinds. The curves' error
    is the mean loss over the examples since the previous check (NaN at step 0)."""
    dtype = jnp.dtype(structure.dtype)
    teacher = stream.make_teacher(
        key,
        structure.dim,
        structure.teacher_width,
        structure.teacher_beta,
        dtype,
        convention=structure.teacher_convention,
    )
    examples_key = stream.example_key(key)

    def next_bits(bits, targets, step):
        """The slow bits of ``step`` and the teacher's outputs on their distribution; only on
        a flip (the condition depends on the step alone, so under vmap it stays a branch)."""
        bits = stream.step_bits(bits, key, step, structure.flip_every, structure.flip_one)
        return bits, stream.exhaustive_probe(teacher, bits).targets

    def online_step(carry: tuple[TrainState, StreamFeed], index):
        state, feed = carry
        flip = (index > 0) & (index % structure.flip_every == 0)
        bits, targets = lax.cond(flip, next_bits, lambda *a: a[:2], feed.bits, feed.targets, index)
        x, y = stream.fast_example(bits, targets, examples_key, index)
        state, loss = step(state, Data(x[:, None], y[None]), index)
        return (state, StreamFeed(bits, targets, feed.loss_sum + loss)), None

    def learn(state: TrainState, feed: StreamFeed, first_step, n_steps: int):
        steps = first_step + jnp.arange(n_steps, dtype=jnp.int32)
        feed = feed._replace(loss_sum=jnp.zeros((), dtype))
        return lax.scan(online_step, (state, feed), steps)[0]

    def check_data(feed: StreamFeed, step) -> Data:
        return stream.probe(teacher, feed.bits, key, step, structure.probe_size)

    def error(feed: StreamFeed, index, now: Health) -> jax.Array:
        return jnp.where(index > 0, feed.loss_sum / structure.log_every, jnp.nan)

    bits = stream.initial_bits(key, structure.flipping_bits)
    feed = StreamFeed(bits, stream.exhaustive_probe(teacher, bits).targets, jnp.zeros((), dtype))
    return Source(feed, check_data, learn, error)


def train_one(structure: Structure, numeric: Numeric, data: Data, start: Start) -> Result:
    """Train one initialization from its drawn parameters (:func:`start_one`) on the training
    set ``data`` (flipped first with ``model.flip_dead``). A stream goes to
    :func:`train_stream_one`."""
    if structure.data_kind in STREAMS:
        return train_stream_one(structure, numeric, start)
    optimizer = make_optimizer(structure.optimizer, numeric)
    flipped = jnp.zeros((structure.depth,), jnp.int32)
    initial = start.params
    if structure.flip_dead:
        initial, flipped = remedies.flip_dead_units(structure, numeric, data, initial)
    step = make_step(structure, numeric, optimizer, initial, start.key_fresh)
    source = fixed_source(structure, data, start.key_batch, step)
    state = TrainState(
        initial, optimizer.init(initial), continual_backprop.initial_units(structure)
    )
    probe_of = _probe_of(structure, numeric, data, start)
    return run_checks(structure, numeric, source, state, start.key_fresh, flipped, probe_of)


def train_stream_one(structure: Structure, numeric: Numeric, start: Start) -> Result:
    """Learn one initialization's own stream (from ``start.key_stream``) online, one example
    per step (:func:`stream_source`)."""
    optimizer = make_optimizer(structure.optimizer, numeric)
    step = make_step(structure, numeric, optimizer, start.params, start.key_fresh)
    source = stream_source(structure, start.key_stream, step)
    units = continual_backprop.initial_units(structure)
    state = TrainState(start.params, optimizer.init(start.params), units)
    no_flips = jnp.zeros((structure.depth,), jnp.int32)
    probe_of = _probe_of(structure, numeric, None, start)
    return run_checks(structure, numeric, source, state, start.key_fresh, no_flips, probe_of)


def _probe_of(
    structure: Structure, numeric: Numeric, data: Data | None, start: Start
) -> Callable[[jax.Array], probe.Probe] | None:
    """The probe of one initialization's final parameters, or None (``train.probe_steps = 0``)."""
    if not structure.probe_steps:
        return None
    return functools.partial(probe_one, structure, numeric, data, start.key_stream)


def probe_one(
    structure: Structure,
    numeric: Numeric,
    data: Data | None,
    key_stream: jax.Array,
    params: jax.Array,
) -> probe.Probe:
    """The trainability probe (:mod:`study.probe`) of the flat parameters ``params`` of the
    initialization whose stream key is ``key_stream``: they and a fresh network train
    ``train.probe_steps`` steps on its fresh task (``data``'s inputs with fresh labels, or a
    fresh stream when ``data`` is None), with the setting's optimizer, without a remedy."""
    key = probe.task_key(key_stream)
    optimizer = make_optimizer(structure.optimizer, numeric)
    plain = dataclasses.replace(structure, intervention="none")  # no remedy's gradient term
    step = make_step(plain, numeric, optimizer, params, key)  # (no remedy: the key unused)
    if data is None:
        source = stream_source(structure, key, step)
    else:
        order = jax.random.fold_in(key, probe.FRESH_ORDER)
        source = fixed_source(structure, probe.fresh_labels(data, key), order, step)
    drawn = model.init_params(structure, numeric, jax.random.fold_in(key, probe.FRESH_NETWORK))
    n_steps = structure.probe_steps

    def losses(flat: jax.Array) -> tuple[jax.Array, jax.Array]:
        before = _loss(structure, numeric, flat, source.check_data(source.feed, 0))
        state = TrainState(flat, optimizer.init(flat))
        state, feed = source.learn(state, source.feed, 0, n_steps)
        return before, _loss(structure, numeric, state.params, source.check_data(feed, n_steps))

    return probe.from_losses(*jax.vmap(losses)(jnp.stack([params, model.flatten(drawn)])))


def _loss(structure: Structure, numeric: Numeric, flat: jax.Array, data: Data) -> jax.Array:
    """The mean loss of the flat parameters ``flat`` on ``data``."""
    output = model.forward(structure, numeric, model.unflatten(structure, flat), data.inputs).output
    return model.loss_and_output_grad(structure.loss, output, data.targets)[0]


def _empty_history(dead: jax.Array) -> History:
    """The history before the first logged step: nothing dead, revived or diverged yet."""
    no_units = jnp.zeros_like(dead)
    false = jnp.bool_(False)
    no_resets = jnp.zeros(dead.shape[:1], jnp.int32)
    return History(
        no_units, no_units, false, false, false, false, false, jnp.int32(-1), false, no_resets
    )


def _metrics(structure, data: Data, start: Health, end: Health, history, flipped) -> Metrics:
    """What one training recorded, from its health at init and at the end, its history and the
    units flipped at initialization."""
    diverged = history.diverged
    if structure.loss == "bce":
        predicted = end.output > 0
        accuracy = jnp.mean(predicted == (data.targets > 0.5))
        predicted_positive = jnp.mean(predicted)
    else:
        accuracy = predicted_positive = jnp.array(jnp.nan, data.inputs.dtype)
    count = functools.partial(jnp.sum, axis=-1, dtype=jnp.int32)
    return Metrics(
        dead_init=_network_dead(start.dead),
        dead_end=history.network_dead & ~diverged,
        death_step=jnp.where(diverged, -1, history.death_step),
        revived=history.network_revived & ~diverged,
        revived_by_training=history.revived_by_training & ~diverged,
        revived_by_intervention=history.revived_by_intervention & ~diverged,
        diverged=diverged,
        initial_loss=start.loss,
        final_loss=end.loss,
        final_accuracy=accuracy.astype(data.inputs.dtype),
        predicted_positive=predicted_positive.astype(data.inputs.dtype),
        dead_units_init=count(start.dead),
        dead_units_end=count(end.dead),
        inactive_units_init=count(start.inactive),
        inactive_units_end=count(end.inactive),
        dormant_units_init=count(start.dormant),
        dormant_units_end=count(end.dormant),
        revived_units=count(history.revived_units),
        flipped_units=flipped,
        reset_units=history.reset_units,
        replaced_units=jnp.zeros_like(history.reset_units),
    )


# The weight inits whose scale is the activation's gain (study.model.activation_gain).
GAINED_INITS = ("kaiming_uniform", "orthogonal")
# Structure fields that only training reads (SCHEMA's phase "train"): the start (data and drawn
# parameters) does not depend on them, so structures that differ only in these share one
# compiled start program.
TRAINING_ONLY = tuple(key.field for key in SCHEMA if key.structural and key.phase == "train")


def start_structure(structure: Structure) -> Structure:
    """The structure that stands for every structure with the same data and initialization:
    its training-only fields at their defaults. The activation is kept where the drawn
    parameters depend on it: kaiming_uniform's and orthogonal's scale is its gain, and crelu
    doubles the fan-in of the layers after a hidden layer."""
    reads_activation = structure.init in GAINED_INITS or structure.activation == "crelu"
    kept = ("activation",) if reads_activation else ()
    standard = Structure()
    fields = {name: getattr(standard, name) for name in TRAINING_ONLY if name not in kept}
    return dataclasses.replace(structure, **fields)


# The numeric fields the start reads: the data's (data.make_data) and the initialization's
# scales (model.init_params); the gained inits (GAINED_INITS) also read the activation's slope.
START_NUMERICS = ("offset", "target_scale", "target_shift", "init_range", "bias_scale")


def same_start(a: Setting, b: Setting) -> bool:
    """Whether two settings start from the same training data and networks when their draws
    are shared (``pairing = "shared"``): the same start structure and the same numbers where
    the start reads them. False may be cautious (a scale the scheme does not read)."""
    if start_structure(a.structure) != start_structure(b.structure):
        return False
    slope = ("leaky_slope",) if a.structure.init in GAINED_INITS else ()
    return all(getattr(a.numeric, f) == getattr(b.numeric, f) for f in START_NUMERICS + slope)


def make_start(structure: Structure) -> jax.stages.Wrapped:
    """The compiled ``start(seed, numerics, draw_ids, init_indices, csv) -> (data, Start)``.

    ``draw_ids``: ``uint32[n_settings]`` (:func:`draw_ids_of`; a setting's id is its own draw id).
    ``data``: each setting's training set, leading shape ``[n_settings]`` (or, with
    ``data.resample``, ``[n_settings, n_inits]``); ``Start``: leading shape
    ``[n_settings, n_inits]``. It reads only the fields of ``start_structure(structure)``.
    """

    def start(seed, numerics: Numeric, draw_ids, init_indices, csv: Data | None):
        data_root, init_root = key_streams(seed)
        stream_root = jax.random.fold_in(data_root, STREAM_DRAWS)

        def per_setting(numeric: Numeric, draw_id):
            setting_key = jax.random.fold_in(init_root, draw_id)

            def per_init(index) -> Start:
                key = jax.random.fold_in(setting_key, index)
                key_stream = jax.random.fold_in(stream_root, index)
                return start_one(structure, numeric, key, key_stream, fresh_tag_of(draw_id))

            def resampled(index) -> Data:
                data_key = jax.random.fold_in(jax.random.fold_in(data_root, draw_id), index)
                return make_data(structure, numeric, data_key, csv)

            if structure.resample:
                data = jax.vmap(resampled)(init_indices)
            else:
                data = make_data(structure, numeric, data_root, csv)
            return data, jax.vmap(per_init)(init_indices)

        return jax.vmap(per_setting)(numerics, draw_ids)

    return jax.jit(start)


def make_run(structure: Structure) -> jax.stages.Wrapped:
    """The compiled ``run(numerics, data, start) -> Result`` that trains what ``make_start`` drew.

    Returns a :class:`Result` whose fields have leading shape ``[n_settings, n_inits]``: the
    metrics, and the curves ``[n_settings, n_inits, checks, ...]`` (``checks = 0`` without
    ``train.curves``). One compile per structure and input shape; numeric values are traced.
    """
    data_axis = 0 if structure.resample else None

    def train(numerics: Numeric, data: Data, start: Start) -> Result:
        def per_setting(numeric: Numeric, data: Data, start: Start) -> Result:
            def per_init(data: Data, start: Start) -> Result:
                return train_one(structure, numeric, data, start)

            return jax.vmap(per_init, in_axes=(data_axis, 0))(data, start)

        return jax.vmap(per_setting)(numerics, data, start)

    return jax.jit(train)


def make_train(structure: Structure) -> Callable[..., Result]:
    """``train(seed, numerics, draw_ids, init_indices, csv) -> Result``: start, then run.

    The Result's fields have leading shape ``[n_settings, n_inits]``; numeric values, seeds and
    indices are traced. (The engine calls the two compiled stages itself, to share the start.)
    """
    start, run = make_start(start_structure(structure)), make_run(structure)

    def train(seed, numerics: Numeric, draw_ids, init_indices, csv: Data | None) -> Result:
        data, drawn = start(seed, numerics, draw_ids, init_indices, csv)
        return run(numerics, data, drawn)

    return train
