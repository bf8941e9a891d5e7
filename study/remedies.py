"""Remedies for dead units: the contract a remedy follows, and the remedies the engine has.

A remedy acts on one initialization's training at one of three moments; the compiled loop of
:mod:`study.train` calls each through one function here, chosen by the (static) structure, with
its strengths traced from the :class:`~study.config.Numeric` values:

* at initialization, on the drawn parameters: :func:`flip_dead_units` (``model.flip_dead``);
* at every optimizer step, a term added to the gradient: :func:`gradient_term` (``l2_init``),
  or a change after the update: :func:`step_noise` (``noise``; continual backprop's is in
  :mod:`study.continual_backprop`);
* at a death check, every ``train.intervention_every`` steps: :func:`make_intervention`
  (``redo``, ``shrink_perturb``).

An intervention is ``intervene(state, data, step) -> (state, reset_units)``: a pure function of
the :class:`TrainState`, the inputs the check ran on (``data``) and the step. It keeps every
shape and dtype of the state; per-parameter optimizer state (the leaves shaped like the flat
parameters) belongs to the parameters, so a remedy that replaces parameters clears theirs. Its
fresh random draws come from ``fold_in(key_fresh, step)`` only, so a result depends on the seed,
the initialization's index and its draw id (the setting's under independent pairing; shared
ones draw alike), never on chunking. ``reset_units: int32[L]`` counts
the units it re-drew per hidden layer (Metrics' ``reset_units``). The loop checks the network
again right after an intervention, so that a revival it causes is told from one training causes.

A new remedy: a choice in :data:`study.config.INTERVENTIONS` with its strengths as numeric keys,
then a branch in one of the three functions here (an intervention: an entry in
:data:`AT_CHECKS`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from study import model
from study.config import Number, Numeric, Structure
from study.data import Data


class TrainState(NamedTuple):
    """What the optimizer carries from step to step, and what a remedy acts on.

    params: float[n_params], every parameter in one flat vector (:func:`study.model.flatten`).
    opt_state: the optimizer's state for that vector.
    units: what a remedy acting at every step keeps per hidden unit (continual backprop's
      :class:`study.continual_backprop.UnitState`); ``()`` for every other remedy.
    """

    params: jax.Array
    opt_state: optax.OptState
    units: Any = ()


# intervene(state, data, step) -> (state, reset_units int32[L])
Intervention = Callable[[TrainState, Data, jax.Array], tuple[TrainState, jax.Array]]
# A remedy at the checks: (structure, numeric, data, state, fresh) -> (state, reset_units), where
# fresh: float[n_params] is a fresh initialization drawn for this step.
Remedy = Callable[[Structure, Numeric, Data, TrainState, jax.Array], tuple[TrainState, jax.Array]]


def dormant_units(activations: jax.Array, tau: Number, units: int) -> jax.Array:
    """Sokar et al. (2023) dormant neurons of one layer of ``units`` units, ``activations:
    float[outputs, n]``.

    The score of unit i is ``E|h_i| / mean_k E|h_k|`` over the inputs; the unit is dormant when
    its score is <= tau. A CReLU unit's ``E|h_i|`` is its two outputs' added,
    ``E relu(z) + E relu(-z) = E|z|``. A layer whose units are all exactly 0 has score 0
    everywhere. Returns ``bool[units]``. (ReDo re-draws these units; the health check counts
    them.)
    """
    mean_abs = model.sum_samples(jnp.abs(activations)) / activations.shape[-1]
    mean_abs = model.to_units(mean_abs, units)
    layer_mean = mean_abs.mean()
    score = jnp.where(layer_mean > 0, mean_abs / jnp.where(layer_mean > 0, layer_mean, 1.0), 0.0)
    return score <= tau


def flip_dead_units(
    structure: Structure, numeric: Numeric, data: Data, flat: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """``model.flip_dead``: from the input up, negate the incoming weights and bias of every
    hidden unit dead on the training inputs (each layer judged on the flipped layers below).

    Returns the flipped parameters (flat) and the number of units flipped per layer, ``int32[L]``.
    """
    params, flipped = list(model.unflatten(structure, flat)), []
    hidden = data.inputs
    for index in range(structure.depth):
        layer = params[index]
        derivative = model.hidden_layer(structure, numeric, layer, hidden).derivative
        dead = model.dead_units(derivative, structure.width)
        sign = jnp.where(dead, -1, 1).astype(layer[0].dtype)
        layer = (layer[0] * sign[:, None], layer[1] * sign, *layer[2:])
        params[index] = layer
        hidden = model.hidden_layer(structure, numeric, layer, hidden).output
        flipped.append(jnp.sum(dead, dtype=jnp.int32))
    return model.flatten(params), jnp.stack(flipped)


def gradient_term(
    structure: Structure, numeric: Numeric, initial: jax.Array
) -> Callable[[jax.Array], jax.Array] | None:
    """What a remedy adds to every step's flat gradient, as a function of the flat parameters;
    None without one.

    L2-init (Kumar et al. 2023): ``l2_init * (params - initial)``, the gradient of
    ``(l2_init / 2) |params - initial|^2``, a pull toward the initial parameters ``initial``.
    """
    if structure.intervention != "l2_init":
        return None
    return lambda params: jnp.multiply(numeric.l2_init, params - initial)


# Folded into an initialization's key of fresh draws for the noise of every step (then the step).
NOISE_TAG = 0x6E6F6973


def step_noise(
    structure: Structure, numeric: Numeric, key_fresh: jax.Array
) -> Callable[[TrainState, Any, jax.Array], TrainState] | None:
    """``noise(state, fwd, index) -> state``: after optimizer step ``index``, every parameter
    gains ``noise_std`` times a standard normal draw from ``fold_in(fold_in(key_fresh,
    NOISE_TAG), index)`` (``fwd``, the step's forward pass, is not used); None without
    ``train.intervention = "noise"``. With ``train.weight_decay`` this is Dohare et al.'s
    shrink and perturb as their code runs it (``lop/algos/bp.py``: SGD with weight decay, then
    ``perturb()`` after every step)."""
    if structure.intervention != "noise":
        return None
    key_noise = jax.random.fold_in(key_fresh, NOISE_TAG)

    def add_noise(state: TrainState, fwd: Any, index: jax.Array) -> TrainState:
        del fwd
        draw = jax.random.normal(
            jax.random.fold_in(key_noise, index), state.params.shape, state.params.dtype
        )
        return state._replace(params=state.params + jnp.multiply(numeric.noise_std, draw))

    return add_noise


def redo(
    structure: Structure, numeric: Numeric, data: Data, state: TrainState, fresh: jax.Array
) -> tuple[TrainState, jax.Array]:
    """ReDo (Sokar et al. 2023): every hidden unit whose dormant score on the training set is
    <= ``redo_tau`` gets its incoming parameters from the fresh initialization ``fresh`` (flat)
    and zero outgoing weights; the optimizer's per-parameter state of both is reset to 0.

    Returns the new state and the re-drawn units, ``bool[L, width]``.
    """
    params = model.unflatten(structure, state.params)
    activations = model.forward(structure, numeric, params, data.inputs).activations[1:]
    reset = jnp.stack([dormant_units(h, numeric.redo_tau, structure.width) for h in activations])
    return redraw_units(structure, state, reset, fresh), reset


def redraw_units(
    structure: Structure, state: TrainState, redrawn: jax.Array, fresh: jax.Array
) -> TrainState:
    """Re-draw the hidden units ``redrawn: bool[L, width]``: their incoming weights, bias (and
    normalization gain and shift) from the fresh initialization ``fresh: float[n_params]``,
    their outgoing weights 0, so that the new units add nothing to the output; the optimizer's
    per-parameter state of all of these set to 0, every other parameter's and state's entry
    kept bit for bit (a select, so no redrawn unit at all is the state unchanged)."""
    into_unit, out_of_unit = unit_of_parameters(structure)
    # a gather with constant indices (index L * width: no unit): one select per parameter, which
    # leaves the fused loops of the optimizer's update as they are without a remedy
    units = jnp.concatenate([redrawn.reshape(-1), jnp.zeros((1,), bool)])
    into, out_of = units[into_unit], units[out_of_unit]
    flat = jnp.where(out_of, 0, jnp.where(into, fresh, state.params))
    cleared = into | out_of
    opt_state = jax.tree.map(
        lambda leaf: jnp.where(cleared, 0, leaf) if leaf.shape == flat.shape else leaf,
        state.opt_state,
    )
    return state._replace(params=flat, opt_state=opt_state)


def unit_of_parameters(structure: Structure) -> tuple[np.ndarray, np.ndarray]:
    """``(into, out_of)``, ``int[n_params]`` each: for every flat parameter, the hidden unit
    (``layer * width + unit``) it is an incoming parameter of (weight, bias, normalization gain
    or shift) and the one it is an outgoing weight of (both outputs of a CReLU unit);
    ``depth * width`` where none."""
    none = structure.depth * structure.width
    into, out_of = [], []
    for index, shapes in enumerate(model.leaf_shapes(structure)):
        hidden = index < structure.depth
        units = index * structure.width + np.arange(shapes[0][0])
        for position, shape in enumerate(shapes):
            own = units if hidden else np.full(shape[0], none)
            into.append(np.broadcast_to(own.reshape(-1, *([1] * (len(shape) - 1))), shape))
            below = np.full(shape, none)
            if index > 0 and position == 0:  # the weights from the layer below, per output
                below_units = (index - 1) * structure.width + np.arange(structure.width)
                outputs = np.tile(below_units, model.outputs_per_unit(structure.activation))
                below = np.broadcast_to(outputs[None, :], shape)
            out_of.append(below)
    return (
        np.concatenate([a.reshape(-1) for a in into]),
        np.concatenate([a.reshape(-1) for a in out_of]),
    )


def _redo_remedy(
    structure: Structure, numeric: Numeric, data: Data, state: TrainState, fresh: jax.Array
) -> tuple[TrainState, jax.Array]:
    """:func:`redo` as a remedy at the checks: the re-drawn units counted per layer."""
    state, reset = redo(structure, numeric, data, state, fresh)
    return state, jnp.sum(reset, axis=-1, dtype=jnp.int32)


def shrink_perturb(
    structure: Structure, numeric: Numeric, data: Data, state: TrainState, fresh: jax.Array
) -> tuple[TrainState, jax.Array]:
    """Shrink and perturb (Ash and Adams 2020): ``params <- shrink * params + perturb * fresh``,
    the optimizer's state kept. No unit is re-drawn: ``reset_units`` is 0 in every layer."""
    del data
    params = jnp.multiply(numeric.shrink, state.params) + jnp.multiply(numeric.perturb, fresh)
    return state._replace(params=params), jnp.zeros((structure.depth,), jnp.int32)


# The remedies applied at the death checks, by ``train.intervention``.
AT_CHECKS: dict[str, Remedy] = {"redo": _redo_remedy, "shrink_perturb": shrink_perturb}


def make_intervention(
    structure: Structure, numeric: Numeric, key_fresh: jax.Array
) -> Intervention | None:
    """``intervene(state, data, step) -> (state, reset_units int32[L])`` for the remedy of
    ``train.intervention`` at the checks, or None. Its fresh initialization is drawn from
    ``fold_in(key_fresh, step)``, so it depends on the initialization and the step only."""
    remedy = AT_CHECKS.get(structure.intervention)
    if remedy is None:
        return None

    def intervene(state: TrainState, data: Data, step: jax.Array) -> tuple[TrainState, jax.Array]:
        key = jax.random.fold_in(key_fresh, step)
        fresh = model.flatten(model.init_params(structure, numeric, key))
        return remedy(structure, numeric, data, state, fresh)

    return intervene
