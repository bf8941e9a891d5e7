"""The compiled engine: train a block of settings x initializations in one ``jax.jit``.

``make_train(structure)`` returns ``train(seed, numerics, setting_ids, init_indices, csv)``:

* ``numerics``: a :class:`~study.config.Numeric` of ``[n_settings]`` arrays (vmapped, traced);
* ``setting_ids``: ``int32[n_settings]``, each setting's stable hash;
* ``init_indices``: ``int32[n_inits]``, which initializations of each setting to train.

An initialization's key is ``fold_in(fold_in(init_root(seed), setting_id), index)``, so its result
depends only on (seed, setting, index), never on how initializations are chunked or sharded.
One dataset per setting is drawn from the data stream of the seed and broadcast to all
initializations (or, with ``data.resample``, one per initialization).

Training is a ``lax.scan`` over logging intervals, each a ``lax.scan`` over ``log_every`` optimizer
steps; after each interval the full training set is run forward once to record which units are
dead. A unit is *dead* when its activation's derivative is 0 on every training input, *inactive*
when its pre-activation is <= 0 on every input (for ReLU the two coincide); the network is dead when
some hidden layer has all its units dead, so its output is constant on the data.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from study import model, stream
from study.config import STREAMS, Numeric, Structure
from study.data import Data, key_streams, make_data


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


class Health(NamedTuple):
    """The state of one network on the full training set at one logged step.

    dead, inactive, dormant: bool[L, width]; loss: float; finite: bool (loss and parameters).
    """

    dead: jax.Array
    inactive: jax.Array
    dormant: jax.Array
    loss: jax.Array
    finite: jax.Array
    output: jax.Array


class History(NamedTuple):
    """What the logged steps so far imply (carried through the scan over intervals)."""

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


def scale_by_adam(b1, b2: float = 0.999, eps: float = 1e-8) -> optax.GradientTransformation:
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


def make_optimizer(name: str, numeric: Numeric) -> optax.GradientTransformation:
    """The optax optimizer ``name`` with traced hyperparameters from ``numeric``."""
    lr, momentum = numeric.learning_rate, numeric.momentum
    if name == "sgd":
        return optax.sgd(lr)
    if name == "momentum":
        return optax.sgd(lr, momentum=momentum)
    if name == "nesterov":
        return optax.sgd(lr, momentum=momentum, nesterov=True)
    if name == "adam":
        return optax.chain(scale_by_adam(momentum), optax.scale_by_learning_rate(lr))
    if name == "adamw":
        return optax.chain(
            scale_by_adam(momentum),
            optax.add_decayed_weights(numeric.weight_decay),
            optax.scale_by_learning_rate(lr),
        )
    if name == "rmsprop":
        return optax.rmsprop(lr, momentum=momentum)
    raise ValueError(f"unknown optimizer {name!r}")


def dormant_units(activations: jax.Array, tau) -> jax.Array:
    """Sokar et al. (2023) dormant neurons of one layer, ``activations: float[width, n]``.

    The score of unit i is ``E|h_i| / mean_k E|h_k|`` over the inputs; the unit is dormant when
    its score is <= tau. A layer whose units are all exactly 0 has score 0 everywhere.
    """
    mean_abs = model.sum_samples(jnp.abs(activations)) / activations.shape[-1]
    layer_mean = mean_abs.mean()
    score = jnp.where(layer_mean > 0, mean_abs / jnp.where(layer_mean > 0, layer_mean, 1.0), 0.0)
    return score <= tau


def health(structure: Structure, numeric: Numeric, params, data: Data) -> Health:
    """Run the network on the whole training set and classify every hidden unit."""
    fwd = model.forward(structure, numeric, params, data.inputs)
    loss, _ = model.loss_and_output_grad(structure.loss, fwd.output, data.targets)
    dead = _per_layer(structure, [jnp.all(d == 0, axis=-1) for d in fwd.derivatives])
    inactive = _per_layer(structure, [jnp.all(z <= 0, axis=-1) for z in fwd.pre_activations])
    dormant = _per_layer(
        structure, [dormant_units(h, numeric.dormant_tau) for h in fwd.activations[1:]]
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


class TrainState(NamedTuple):
    """What the optimizer carries from step to step.

    params: float[n_params], every parameter in one flat vector (:func:`study.model.flatten`).
    opt_state: the optimizer's state for that vector.
    """

    params: jax.Array
    opt_state: optax.OptState


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
# parameters and the minibatch order come from a split of the same key).
FRESH_DRAWS = 1
# Folded into the data key, then the index, for an initialization's stream.
STREAM_DRAWS = 2


def start_one(structure: Structure, numeric: Numeric, key: jax.Array, key_stream) -> Start:
    """Draw one initialization from its own ``key``: its parameters and its keys."""
    key_init, key_batch = jax.random.split(key)
    params = model.flatten(model.init_params(structure, numeric, key_init))
    return Start(params, key_batch, jax.random.fold_in(key, FRESH_DRAWS), key_stream)


def train_one(structure: Structure, numeric: Numeric, data: Data, start: Start):
    """Train one initialization from its drawn parameters (:func:`start_one`): its Metrics, or
    with ``train.curves`` ``(Metrics, Curves)``. A stream goes to :func:`train_stream_one`.

    The health check runs at steps 0, ``log_every``, ... in ONE place in the program (a scan over
    the checks, each followed by an interval of steps, except the last): every check compiles
    to the same code, and the program holds one copy of it instead of three (compile time).
    An intervention (ReDo, shrink and perturb) falls on a check: after it, the network is
    checked again, so that a revival it causes is told from one that training causes.
    """
    if structure.data_kind in STREAMS:
        return train_stream_one(structure, numeric, start)
    # The optimizer works on all parameters as one flat vector: every optax optimizer used here is
    # elementwise, so this is the same update, but one fused kernel per operation instead of one
    # per parameter array (docs/performance.md).
    optimizer = make_optimizer(structure.optimizer, numeric)
    flipped = jnp.zeros((structure.depth,), jnp.int32)
    initial = start.params
    if structure.flip_dead:
        initial, flipped = flip_dead_units(structure, numeric, data, initial)
    run_steps = _make_run_steps(structure, numeric, data, start.key_batch, optimizer, initial)
    intervene = _make_intervention(structure, numeric, data, start.key_fresh)
    n_intervals, remainder = divmod(structure.steps, structure.log_every)

    def check_then_train(carry: tuple[TrainState, History, Health, Health], index):
        state, history, first, _ = carry
        step = index * structure.log_every
        now = health(structure, numeric, model.unflatten(structure, state.params), data)
        history = _record(history, now, step)
        first = jax.tree.map(lambda old, new: jnp.where(index == 0, new, old), first, now)
        point = None
        if structure.curves:  # the state the check saw, before any intervention
            params = model.unflatten(structure, state.params)
            point = curve_point(structure, numeric, params, data, now, step, now.loss)
        if intervene is not None:
            due = (index > 0) & (step < structure.steps)
            due = due & (step % structure.intervention_every == 0)
            state, history = lax.cond(due, intervene, lambda *args: args[:2], state, history, step)
        state = lax.cond(
            index < n_intervals,
            lambda s: run_steps(s, step, structure.log_every),
            lambda s: s,
            state,
        )
        return (state, history, first, now), point

    params = model.unflatten(structure, initial)
    shapes = jax.eval_shape(functools.partial(health, structure), numeric, params, data)
    placeholder = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
    state = TrainState(initial, optimizer.init(initial))
    carry = (state, _empty_history(placeholder.dead), placeholder, placeholder)
    checks = jnp.arange(n_intervals + 1, dtype=jnp.int32)
    (state, history, first, end), curves = lax.scan(check_then_train, carry, checks)
    if remainder:  # (not with curves: the config refuses it)
        state = run_steps(state, n_intervals * structure.log_every, remainder)
        end = health(structure, numeric, model.unflatten(structure, state.params), data)
        history = _record(history, end, jnp.int32(structure.steps))
    metrics = _metrics(structure, data, first, end, history, flipped)
    return (metrics, curves) if structure.curves else metrics


class Curves(NamedTuple):
    """One initialization's state at every logged step (``C`` checks, ``L`` hidden layers).

    step: int32[C]; error: float[C], the mean loss over the examples since the previous check
    (a stream; NaN at step 0) or the training loss at the check (other data); per layer
    ``int32[C, L]`` counts of units dead (activation derivative 0 on every input of the check),
    inactive (pre-activation <= 0 on every input), dormant (score <= train.dormant_tau) and
    rarely active (pre-activation > 0 on fewer than 1% of the inputs), and ``float[C, L]``
    zero_share, the share of zero entries among the layer's activations.
    """

    step: jax.Array
    error: jax.Array
    dead_units: jax.Array
    inactive_units: jax.Array
    dormant_units: jax.Array
    rarely_active_units: jax.Array
    zero_share: jax.Array


# Dohare et al. (2024)'s rule: a unit active on fewer than this share of inputs is "dormant".
RARELY_ACTIVE_SHARE = 0.01


def curve_point(structure, numeric, params, data: Data, now: Health, step, error) -> Curves:
    """The curves' entries of one check: ``now`` (the health on ``data``) and two definitions
    that need the activations themselves."""
    fwd = model.forward(structure, numeric, params, data.inputs)
    n = data.inputs.shape[-1]
    active = [model.sum_samples((z > 0).astype(z.dtype)) / n for z in fwd.pre_activations]
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
    )


def train_stream_one(structure: Structure, numeric: Numeric, start: Start):
    """Learn one initialization's own stream online, one example per step; ``(Metrics, Curves)``.

    The stream (its teacher, slow bits and examples) comes from ``start.key_stream``. At every
    logged step the network is checked on a probe of ``data.probe_size`` fresh inputs from the
    current distribution, which stands for the training set of the other data kinds.
    """
    optimizer = make_optimizer(structure.optimizer, numeric)
    key, dtype = start.key_stream, jnp.dtype(structure.dtype)
    teacher = stream.make_teacher(
        key, structure.dim, structure.teacher_width, structure.teacher_beta, dtype
    )
    n_intervals = structure.steps // structure.log_every
    learn = _make_online_steps(structure, numeric, optimizer, teacher, key)

    def check_then_learn(carry, index):
        state, bits, targets, total, history, first, _, _ = carry
        step = index * structure.log_every
        probe = stream.probe(teacher, bits, key, step, structure.probe_size)
        params = model.unflatten(structure, state.params)
        now = health(structure, numeric, params, probe)
        history = _record(history, now, step)
        first = jax.tree.map(lambda old, new: jnp.where(index == 0, new, old), first, now)
        error = jnp.where(index > 0, total / structure.log_every, jnp.nan)
        point = curve_point(structure, numeric, params, probe, now, step, error)
        steps = step + jnp.arange(structure.log_every, dtype=jnp.int32)
        state, bits, targets, total = lax.cond(
            index < n_intervals,
            lambda c: learn(c, steps),
            lambda c: c,
            (state, bits, targets, jnp.zeros((), dtype)),
        )
        return (state, bits, targets, total, history, first, now, probe), point

    bits = stream.initial_bits(key, structure.flipping_bits)
    probe = stream.probe(teacher, bits, key, 0, structure.probe_size)
    params = model.unflatten(structure, start.params)
    shapes = jax.eval_shape(functools.partial(health, structure), numeric, params, probe)
    placeholder = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
    state = TrainState(start.params, optimizer.init(start.params))
    history = _empty_history(placeholder.dead)
    targets = stream.exhaustive_probe(teacher, bits).targets
    zero = jnp.zeros((), dtype)
    carry = (state, bits, targets, zero, history, placeholder, placeholder, probe)
    checks = jnp.arange(n_intervals + 1, dtype=jnp.int32)
    (*_, history, first, end, probe), curves = lax.scan(check_then_learn, carry, checks)
    no_flips = jnp.zeros((structure.depth,), jnp.int32)
    return _metrics(structure, probe, first, end, history, no_flips), curves


def _make_online_steps(structure, numeric, optimizer, teacher, key):
    """``learn((state, bits, targets, total), steps) -> the same``: one optimizer step per
    example of the stream of ``key``, adding each example's loss (before its update) to
    ``total``. ``targets`` are the teacher's outputs on the current distribution."""
    examples_key = stream.example_key(key)

    def next_bits(bits, targets, step):
        """The slow bits of ``step`` and the teacher's outputs on their distribution; only on
        a flip (the condition depends on the step alone, so under vmap it stays a branch)."""
        bits = stream.step_bits(bits, key, step, structure.flip_every)
        return bits, stream.exhaustive_probe(teacher, bits).targets

    def online_step(carry, step):
        state, bits, targets, total = carry
        flip = (step > 0) & (step % structure.flip_every == 0)
        bits, targets = lax.cond(flip, next_bits, lambda *a: a[:2], bits, targets, step)
        x, y = stream.fast_example(bits, targets, examples_key, step)
        params = model.unflatten(structure, state.params)
        fwd = model.forward(structure, numeric, params, x[:, None])
        loss, output_grad = model.loss_and_output_grad(structure.loss, fwd.output, y[None])
        grads = model.flat_gradient(params, fwd, output_grad, structure.use_bias, structure.norm)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        state = TrainState(optax.apply_updates(state.params, updates), opt_state)
        return (state, bits, targets, total + loss), None

    return lambda carry, steps: lax.scan(online_step, carry, steps)[0]


def flip_dead_units(structure: Structure, numeric: Numeric, data: Data, flat: jax.Array):
    """``model.flip_dead``: from the input up, negate the incoming weights and bias of every
    hidden unit dead on the training inputs (each layer judged on the flipped layers below).

    Returns the flipped parameters (flat) and the number of units flipped per layer, ``int32[L]``.
    """
    params, flipped = list(model.unflatten(structure, flat)), []
    hidden = data.inputs
    for index in range(structure.depth):
        layer = params[index]
        dead = jnp.all(model.hidden_layer(structure, numeric, layer, hidden).derivative == 0, -1)
        sign = jnp.where(dead, -1, 1).astype(layer[0].dtype)
        layer = (layer[0] * sign[:, None], layer[1] * sign, *layer[2:])
        params[index] = layer
        hidden = model.hidden_layer(structure, numeric, layer, hidden).output
        flipped.append(jnp.sum(dead, dtype=jnp.int32))
    return model.flatten(params), jnp.stack(flipped)


def _make_intervention(structure: Structure, numeric: Numeric, data: Data, key_fresh):
    """``intervene(state, history, step) -> (state, history)`` for ``train.intervention`` redo
    or shrink_perturb, or None. Its fresh draws come from ``fold_in(key_fresh, step)``, so they
    depend on the initialization and the step only."""
    if structure.intervention not in ("redo", "shrink_perturb"):
        return None

    def intervene(state: TrainState, history: History, step) -> tuple[TrainState, History]:
        key = jax.random.fold_in(key_fresh, step)
        fresh = model.flatten(model.init_params(structure, numeric, key))
        if structure.intervention == "shrink_perturb":
            state = state._replace(params=numeric.shrink * state.params + numeric.perturb * fresh)
        else:
            state, reset = redo(structure, numeric, data, state, fresh)
            history = history._replace(
                reset_units=history.reset_units + jnp.sum(reset, axis=-1, dtype=jnp.int32)
            )
        after = health(structure, numeric, model.unflatten(structure, state.params), data)
        return state, _record(history, after, step, after_intervention=True)

    return intervene


def redo(structure: Structure, numeric: Numeric, data: Data, state: TrainState, fresh):
    """ReDo (Sokar et al. 2023): every hidden unit whose dormant score on the training set is
    <= ``redo_tau`` gets its incoming parameters from the fresh initialization ``fresh`` (flat)
    and zero outgoing weights; the optimizer's per-parameter state of both is reset to 0.

    Returns the new state and the re-drawn units, ``bool[L, width]``.
    """
    params = model.unflatten(structure, state.params)
    activations = model.forward(structure, numeric, params, data.inputs).activations[1:]
    reset = jnp.stack([dormant_units(h, numeric.redo_tau) for h in activations])
    incoming, outgoing = [], []
    for index, layer in enumerate(params):
        below = reset[index - 1][None, :] if index > 0 else jnp.zeros((1, 1), bool)
        outgoing.append(
            [jnp.broadcast_to(below, layer[0].shape)]
            + [jnp.zeros(leaf.shape, bool) for leaf in layer[1:]]
        )
        own = reset[index] if index < structure.depth else jnp.zeros(layer[1].shape, bool)
        incoming.append([jnp.broadcast_to(own[:, None], layer[0].shape)] + [own] * len(layer[1:]))
    incoming, outgoing = model.flatten(incoming), model.flatten(outgoing)
    params = jnp.where(outgoing, 0, jnp.where(incoming, fresh, state.params))
    cleared = incoming | outgoing
    opt_state = jax.tree.map(
        lambda leaf: jnp.where(cleared, 0, leaf) if leaf.shape == params.shape else leaf,
        state.opt_state,
    )
    return TrainState(params, opt_state), reset


def _make_run_steps(structure, numeric, data, key_batch, optimizer, initial):
    """``run_steps(state, first_step, n_steps) -> state``: ``n_steps`` optimizer steps.

    ``initial``: the flat initial parameters, which L2-init pulls the parameters toward.
    """

    def optimizer_step(state: TrainState, step) -> tuple[TrainState, None]:
        params = model.unflatten(structure, state.params)
        batch = _batch(structure, data, key_batch, step)
        fwd = model.forward(structure, numeric, params, batch.inputs)
        _, output_grad = model.loss_and_output_grad(structure.loss, fwd.output, batch.targets)
        grads = model.flat_gradient(params, fwd, output_grad, structure.use_bias, structure.norm)
        if structure.intervention == "l2_init":
            grads = grads + numeric.l2_init * (state.params - initial)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        return TrainState(optax.apply_updates(state.params, updates), opt_state), None

    def run_steps(state: TrainState, first_step, n_steps) -> TrainState:
        steps = first_step + jnp.arange(n_steps, dtype=jnp.int32)
        return lax.scan(optimizer_step, state, steps)[0]

    return run_steps


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
    )


# Structure fields that only training reads: the start (data and drawn parameters) does not
# depend on them, so structures that differ only in these share one compiled start program.
TRAINING_ONLY = dict(
    activation="relu",
    optimizer="sgd",
    loss="bce",
    steps=1,
    batch_size=0,
    log_every=1,
    flip_dead=False,
    intervention="none",
    intervention_every=1,
    curves=False,
)


def start_structure(structure: Structure) -> Structure:
    """The structure that stands for every structure with the same data and initialization
    (kaiming_uniform's scale depends on the activation, so there the activation is kept)."""
    fields = dict(TRAINING_ONLY)
    if structure.init == "kaiming_uniform":
        del fields["activation"]
    return dataclasses.replace(structure, **fields)


def make_start(structure: Structure):
    """The compiled ``start(seed, numerics, setting_ids, init_indices, csv) -> (data, Start)``.

    ``data``: each setting's training set, leading shape ``[n_settings]`` (or, with
    ``data.resample``, ``[n_settings, n_inits]``); ``Start``: leading shape
    ``[n_settings, n_inits]``. It reads only the fields of ``start_structure(structure)``.
    """

    def start(seed, numerics: Numeric, setting_ids, init_indices, csv: Data | None):
        data_root, init_root = key_streams(seed)
        stream_root = jax.random.fold_in(data_root, STREAM_DRAWS)

        def per_setting(numeric: Numeric, setting_id):
            setting_key = jax.random.fold_in(init_root, setting_id)

            def per_init(index) -> Start:
                key = jax.random.fold_in(setting_key, index)
                return start_one(structure, numeric, key, jax.random.fold_in(stream_root, index))

            def resampled(index) -> Data:
                data_key = jax.random.fold_in(jax.random.fold_in(data_root, setting_id), index)
                return make_data(structure, numeric, data_key, csv)

            if structure.resample:
                data = jax.vmap(resampled)(init_indices)
            else:
                data = make_data(structure, numeric, data_root, csv)
            return data, jax.vmap(per_init)(init_indices)

        return jax.vmap(per_setting)(numerics, setting_ids)

    return jax.jit(start)


def make_run(structure: Structure):
    """The compiled ``run(numerics, data, start) -> Metrics`` that trains what ``make_start`` drew.

    Returns Metrics whose fields have leading shape ``[n_settings, n_inits]`` (with
    ``train.curves``, ``(Metrics, Curves)``, the curves ``[n_settings, n_inits, checks, ...]``).
    One compile per structure and input shape; numeric values are traced.
    """
    data_axis = 0 if structure.resample else None

    def train(numerics: Numeric, data: Data, start: Start) -> Metrics:
        def per_setting(numeric: Numeric, data: Data, start: Start) -> Metrics:
            def per_init(data: Data, start: Start) -> Metrics:
                return train_one(structure, numeric, data, start)

            return jax.vmap(per_init, in_axes=(data_axis, 0))(data, start)

        return jax.vmap(per_setting)(numerics, data, start)

    return jax.jit(train)


def make_train(structure: Structure):
    """``train(seed, numerics, setting_ids, init_indices, csv) -> Metrics``: start, then run.

    Metrics' fields have leading shape ``[n_settings, n_inits]``; numeric values, seeds and
    indices are traced. (The engine calls the two compiled stages itself, to share the start.)
    """
    start, run = make_start(start_structure(structure)), make_run(structure)

    def train(seed, numerics: Numeric, setting_ids, init_indices, csv: Data | None) -> Metrics:
        data, drawn = start(seed, numerics, setting_ids, init_indices, csv)
        return run(numerics, data, drawn)

    return train
