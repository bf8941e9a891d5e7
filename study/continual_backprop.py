"""Continual backprop (CBP; Dohare et al., "Loss of plasticity in deep continual learning",
Nature 632, 2024): after every optimizer step, the least useful mature hidden units are re-drawn.

A remedy that acts at every step (``train.intervention = "cbp"``), so its bookkeeping rides in
:class:`study.remedies.TrainState`'s ``units`` as a :class:`UnitState`, and
:func:`make_step_remedy` gives the function that the optimizer step of :mod:`study.train` calls
after each update. Per hidden layer ``l`` and unit ``i``, after the update of step ``t``:

* age: ``a_i <- a_i + 1``;
* utility, the running average of the unit's contribution on the step's batch (the paper's
  eq. 1): ``u_i <- eta u_i + (1 - eta) mean_batch |h_i| sum_k |w_ik|``, ``h_i`` the unit's output
  on the step's inputs (before the update), ``w_ik`` its outgoing weights (after it), a CReLU
  unit's two outputs added; ``eta = train.cbp_decay``;
* bias correction by the age, as Adam's: ``u_hat_i = u_i / (1 - eta^a_i)`` (``eta^a`` kept as
  a running product per unit, not a ``pow``);
* the units with ``a_i > m`` are mature (``m = train.cbp_maturity``); the layer owes
  ``c <- c + rho * #mature`` replacements (``rho = train.cbp_replacement_rate``) and makes
  one when ``c >= 1``, ``c <- c - 1``: its mature unit of lowest ``u_hat`` (ties: the lower
  index). The config keeps ``rho * width <= 0.12``, so a layer never owes 2 and this is
  ``floor(c)`` replacements per step;
* a replaced unit gets incoming weights and bias (and a normalization's gain and shift) drawn
  from the initialization's distribution (:func:`fresh_units`, drawn ahead in a pool for a block
  of steps from ``key_fresh`` and the block's number: :func:`refill`), outgoing weights 0
  (the new unit adds nothing to the network's output; the old one's contribution is gone),
  the optimizer's state of all of
  these 0 (:func:`study.remedies.redraw_units`), age, utility and ``eta^a`` reset (0, 0, 1).

Where this follows the paper and where the authors' code (github.com/shibhansh/loss-of-plasticity,
``lop/algos/gnt.py``, ``lop/algos/cbp_linear.py``) differs: ``docs/continual.md``.

With ``rho = 0`` no layer ever owes a replacement: every select keeps the state, and the run is
the run without CBP bit for bit (tested).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from study import model, remedies
from study.config import Numeric, Structure
from study.remedies import TrainState


class UnitState(NamedTuple):
    """CBP's bookkeeping for one network (``L`` hidden layers of ``W`` units).

    utility: float[L, W], the running average ``u`` of each unit's contribution (not corrected).
    decay_power: float[L, W], ``eta^age``, for the bias correction.
    age: int32[L, W], the updates since the unit was drawn (at initialization or a replacement).
    owed: float[L], replacements accumulated and not yet made (below 1 after each step).
    replaced: int32[L], units replaced so far.
    pool: float[POOL_SIZE, n_params], fresh units drawn for the current block of
      :data:`POOL_BLOCK` steps (:func:`fresh_units`); layer ``l``'s ``k``-th replacement in the
      block takes its units' parameters from ``pool[k]``.
    pool_used: int32[L], the pool's entries each layer has taken in the current block.
    """

    utility: jax.Array
    decay_power: jax.Array
    age: jax.Array
    owed: jax.Array
    replaced: jax.Array
    pool: jax.Array
    pool_used: jax.Array


# Fresh units are drawn POOL_SIZE at a time, at the first step of every block of POOL_BLOCK
# steps (a branch on the step's number, the same for every initialization: it stays a branch
# under vmap, where a branch on a replacement would compute both sides at every step), instead of
# one at every step: the draw was most of CBP's cost. A layer replaces at most one unit per step
# and at most POOL_SIZE per block; it owes fewer than 1 + POOL_BLOCK * rho * width, which the
# config keeps within POOL_SIZE (config.CBP_MAX_RATE_PER_UNIT, held to these by a test), so the
# caps never bind and the rule is the paper's.
POOL_BLOCK = 25
POOL_SIZE = 4


def initial_units(structure: Structure) -> UnitState | tuple[()]:
    """The bookkeeping at initialization (every unit of age 0), or ``()`` without CBP."""
    if structure.intervention != "cbp":
        return ()
    dtype = jnp.dtype(structure.dtype)
    shape = (structure.depth, structure.width)
    n_params = sum(math.prod(leaf) for layer in model.leaf_shapes(structure) for leaf in layer)
    return UnitState(
        utility=jnp.zeros(shape, dtype),
        decay_power=jnp.ones(shape, dtype),
        age=jnp.zeros(shape, jnp.int32),
        owed=jnp.zeros((structure.depth,), dtype),
        replaced=jnp.zeros((structure.depth,), jnp.int32),
        pool=jnp.zeros((POOL_SIZE, n_params), dtype),
        pool_used=jnp.zeros((structure.depth,), jnp.int32),
    )


def replaced_units(structure: Structure, state: TrainState) -> jax.Array:
    """``int32[L]``: the units CBP has replaced so far, per hidden layer (0 without CBP)."""
    if structure.intervention != "cbp":
        return jnp.zeros((structure.depth,), jnp.int32)
    return state.units.replaced


def contribution(structure: Structure, params: model.Params, fwd: model.Forward) -> jax.Array:
    """``float[L, W]``: each hidden unit's contribution on the batch of ``fwd``,
    ``mean_batch |h_i| * sum_k |w_ik|`` with the outgoing weights ``w`` of ``params`` (the
    paper's eq. 1 before the average over time), summed in a fixed order
    (:func:`study.model.sum_samples`)."""
    per_layer = []
    for index in range(structure.depth):
        outputs = fwd.activations[index + 1]  # float[outputs, n]
        mean_abs = model.sum_samples(jnp.abs(outputs)) / outputs.shape[-1]
        outgoing = jnp.abs(params[index + 1][0]).T  # float[outputs, fan_out of the next layer]
        per_output = mean_abs * model.sum_samples(outgoing)
        per_layer.append(model.to_units(per_output, structure.width))
    return jnp.stack(per_layer)


def lowest(scores: jax.Array, eligible: jax.Array, count: jax.Array) -> jax.Array:
    """``bool[L, W]``: in each layer, the ``count[l]`` eligible units of lowest score (ties: the
    lower index first); fewer when fewer are eligible. ``scores: float[L, W]``,
    ``eligible: bool[L, W]``, ``count: int32[L]``. Ranks by pairwise comparison (integer counts,
    exact in any order)."""
    index = jnp.arange(scores.shape[-1])
    below = (scores[:, None, :] < scores[:, :, None]) | (
        (scores[:, None, :] == scores[:, :, None]) & (index[None, :] < index[:, None])[None]
    )  # below[l, i, j]: unit j ranks before unit i
    rank = jnp.sum(below & eligible[:, None, :], axis=-1, dtype=jnp.int32)
    return eligible & (rank < count[:, None])


def track(numeric: Numeric, units: UnitState, contributions: jax.Array) -> UnitState:
    """The bookkeeping after one more update (ages, utilities, ``eta^age``): no replacement."""
    decay = jnp.asarray(numeric.cbp_decay, units.utility.dtype)
    return units._replace(
        utility=decay * units.utility + (1 - decay) * contributions,
        decay_power=units.decay_power * decay,
        age=units.age + 1,
    )


def choose(numeric: Numeric, units: UnitState) -> tuple[jax.Array, jax.Array]:
    """``(replace: bool[L, W], owed: float[L])``: the units to replace now, by bias-corrected
    utility ``u / (1 - eta^age)`` among the mature ones, and what each layer still owes."""
    corrected = units.utility / (1 - units.decay_power)
    mature = units.age > jnp.asarray(numeric.cbp_maturity).astype(jnp.int32)
    n_mature = jnp.sum(mature, axis=-1, dtype=jnp.int32)
    rate = jnp.asarray(numeric.cbp_replacement_rate, units.owed.dtype)
    owed = units.owed + rate * n_mature.astype(units.owed.dtype)
    # at most one unit per layer and step, and no more than the block's pool has left: caps
    # that never bind under the config's bound on rho (see POOL_BLOCK)
    room = jnp.minimum(jnp.minimum(n_mature, 1), POOL_SIZE - units.pool_used)
    now = jnp.minimum(jnp.floor(owed), room.astype(owed.dtype))
    replace = lowest(corrected, mature, now.astype(jnp.int32))
    return replace, owed - now


def replace_units(
    structure: Structure,
    numeric: Numeric,
    state: TrainState,
    fwd: model.Forward,
    key: jax.Array,
    index: jax.Array,
) -> TrainState:
    """One CBP step on the state just updated by the optimizer: track, choose, re-draw.

    ``fwd``: the forward pass of the update's batch (before the update); ``key``: the
    initialization's key of fresh draws; ``index``: the step's number (int32, the same for every
    initialization): at the first step of a block the pool is drawn anew (:func:`refill`).
    """
    units: UnitState = refill(structure, numeric, state.units, key, index)
    params = model.unflatten(structure, state.params)
    units = track(numeric, units, contribution(structure, params, fwd))
    replace, owed = choose(numeric, units)
    state = remedies.redraw_units(structure, state, replace, from_pool(structure, units))
    taken = jnp.sum(replace, axis=-1, dtype=jnp.int32)
    units = units._replace(
        utility=jnp.where(replace, 0, units.utility),
        decay_power=jnp.where(replace, 1, units.decay_power),
        age=jnp.where(replace, 0, units.age),
        owed=owed,
        replaced=units.replaced + taken,
        pool_used=units.pool_used + taken,
    )
    return state._replace(units=units)


def refill(
    structure: Structure, numeric: Numeric, units: UnitState, key: jax.Array, index: jax.Array
) -> UnitState:
    """The bookkeeping with, at the first step of a block of :data:`POOL_BLOCK`, a new pool:
    entry ``k`` drawn by :func:`fresh_units` from ``fold_in(fold_in(key, block), k)``, none
    used. A branch on the step's number alone, so under vmap it stays a branch."""

    def draw(units: UnitState) -> UnitState:
        block_key = jax.random.fold_in(key, index // POOL_BLOCK)
        pool = jnp.stack(
            [
                fresh_units(structure, numeric, jax.random.fold_in(block_key, k))
                for k in range(POOL_SIZE)
            ]
        )
        return units._replace(pool=pool, pool_used=jnp.zeros_like(units.pool_used))

    return lax.cond(index % POOL_BLOCK == 0, draw, lambda units: units, units)


def from_pool(structure: Structure, units: UnitState) -> jax.Array:
    """``float[n_params]``: each hidden layer's parameters from the pool entry it takes next
    (``pool[pool_used[l]]``; the output layer's from entry 0, never taken)."""
    into_unit, _ = remedies.unit_of_parameters(structure)
    layer = np.minimum(into_unit // structure.width, structure.depth - 1)  # (none: any layer)
    entry = jnp.minimum(units.pool_used, POOL_SIZE - 1)[layer]
    return units.pool[entry, np.arange(into_unit.size)]


def fresh_units(structure: Structure, numeric: Numeric, key: jax.Array) -> jax.Array:
    """``float[n_params]``: one entry of the pool, fresh parameters for one replacement per
    hidden layer, in the layout of the flat parameters: in hidden layer ``l``, every unit's
    incoming weights and bias are the row(s) of :func:`study.model.init_unit_rows` drawn from
    ``fold_in(key, l)`` (one row, repeated, for an init that draws units independently: an
    entry serves one replacement per layer), a normalization's gain 1 and shift 0; the output
    layer 0 (never taken)."""
    layers = []
    for index, shapes in enumerate(model.leaf_shapes(structure)):
        if index == structure.depth:
            layers.append([jnp.zeros(shape, jnp.dtype(structure.dtype)) for shape in shapes])
            continue
        weights, bias = model.init_unit_rows(
            structure, numeric, jax.random.fold_in(key, index), index
        )
        leaves = [jnp.broadcast_to(weights, shapes[0]), jnp.broadcast_to(bias, shapes[1])]
        if len(shapes) > 2:  # model.norm: gain and shift
            leaves += [jnp.ones(shapes[2], bias.dtype), jnp.zeros(shapes[3], bias.dtype)]
        layers.append(leaves)
    return model.flatten(layers)


# per_step(state, fwd, index) -> state: after the optimizer's update ``index`` of the batch whose
# forward is fwd
StepRemedy = Callable[[TrainState, model.Forward, jax.Array], TrainState]


def make_step_remedy(
    structure: Structure, numeric: Numeric, key_fresh: jax.Array
) -> StepRemedy | None:
    """``per_step(state, fwd, index) -> state``, CBP's step after each update (:func:`replace_units`
    with fresh draws from ``key_fresh``), or None without CBP."""
    if structure.intervention != "cbp":
        return None
    return lambda state, fwd, index: replace_units(structure, numeric, state, fwd, key_fresh, index)
