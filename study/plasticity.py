"""Plasticity metrics: what the field measures of a network besides its dead units.

Written for ONE network at one moment (its parameters, its parameters at the start of training and
the inputs of a check) and vmapped outside, like :mod:`study.model`. Per hidden layer ``K``, on
the layer's features ``Phi: float[n, outputs]`` (its activations on the check's ``n`` inputs,
``outputs = width``, or ``2 * width`` under crelu) with singular values ``s_1 >= s_2 >= ...``:

* effective rank (Roy and Vetterli 2007, "The effective rank: a measure of effective
  dimensionality", EUSIPCO): ``exp(-sum_k p_k log p_k)`` with ``p_k = s_k / sum_j s_j`` (0 for a
  layer whose features are all 0);
* srank (Kumar et al. 2021, "Implicit under-parameterization inhibits data-efficient deep
  reinforcement learning", ICLR, eq. 1 with delta = 0.01): the smallest ``k`` with
  ``s_1 + ... + s_k >= 0.99 (s_1 + s_2 + ...)`` (0 for all-zero features);
* stable rank: ``||Phi||_F^2 / ||Phi||_2^2 = sum_k s_k^2 / s_1^2`` (0 for all-zero features);

and, without singular values:

* weight magnitude: the mean ``|w|`` of the layer's incoming weights (the bias left out);
* distance from start: the Euclidean norm of the change of all the layer's parameters (weights,
  bias, and with model.norm its gain and shift) since the start of training;
* grad-dormant units: units whose incoming weights' mean ``|d loss / d w|`` on the check's data
  is at most ``tau`` times the layer's mean of it (the gradient analogue of Sokar et al.'s
  dormant score, :func:`study.remedies.dormant_units`; a layer whose gradient is all 0 has every
  unit grad-dormant), ``tau = train.dormant_tau``;
* always-active units: units whose pre-activation is > 0 on at least 99% of the check's inputs,
  the high tail of the firing rate (a ReLU unit on nearly every input is nearly linear). The same
  sign rule for every activation: for tanh and sigmoid it is the share of inputs on the upper
  half of the curve, not saturation;

and for the whole network ``grad_norm``, the Euclidean norm of the loss's gradient on the check's
data with respect to every parameter (a remedy's gradient term, l2_init's pull, left out).

Sums over units, parameters and (for the always-active shares) samples are
:func:`study.model.sum_samples`' fixed-order folds, which do not change with the number of
networks vmapped together. Two parts use XLA's own reductions for speed (docs/performance.md),
whose last bits may change with the batch shape: the gradient (``jax.grad`` of
:func:`_matmul_loss`) and the singular values (a Gram matrix and its eigenvectors,
:func:`singular_values`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from study import model
from study.config import Numeric, Structure
from study.data import Data

# Kumar et al.'s delta: srank counts the singular values that carry 1 - delta of their sum.
SRANK_SHARE = 0.99
# A unit positive on at least this share of the inputs is always active.
ALWAYS_ACTIVE_SHARE = 0.99


class Plasticity(NamedTuple):
    """One network's plasticity metrics at one moment (``L`` hidden layers).

    effective_rank, stable_rank: float[L]; srank: int32[L] (float[0] / int32[0] when the
      singular-value metrics are off, ``train.plasticity_metrics = "without_ranks"``).
    weight_magnitude, distance_from_start: float[L].
    grad_norm: float[], the whole network's.
    grad_dormant_units, always_active_units: int32[L].
    """

    effective_rank: jax.Array
    srank: jax.Array
    stable_rank: jax.Array
    weight_magnitude: jax.Array
    distance_from_start: jax.Array
    grad_norm: jax.Array
    grad_dormant_units: jax.Array
    always_active_units: jax.Array


def _total(values: jax.Array) -> jax.Array:
    """The sum of every entry of ``values`` in a fixed order (flattened, then
    :func:`study.model.sum_samples`' fold)."""
    flat = values.reshape(-1)
    return model.sum_samples(flat) if flat.shape[0] else jnp.zeros((), values.dtype)


def singular_values(features: jax.Array) -> jax.Array:
    """The singular values of ``features: float[outputs, n]``, largest first: ``float[outputs]``
    (with ``outputs - n`` zeros when ``n < outputs``).

    ``s_i = ||features.T v_i||`` for the eigenvectors ``v_i`` of the Gram matrix
    ``features @ features.T`` (``outputs x outputs``): on CPU ``jnp.linalg.svd`` of one
    64 x 2000 matrix took 0.4 s and this a few ms (docs/performance.md). The eigenvalues alone
    would lose half the digits of the small singular values (squaring); the norms, Rayleigh
    quotients, keep them to float rounding where the spectrum is well separated, and otherwise
    to about ``sqrt(eps) * s_1`` (an eigenvector known to ``eps * s_1^2 / gap``). Values at most
    ``outputs * eps * s_1`` are numerical zeros and set to 0 (the tolerance of NumPy's
    ``matrix_rank``), and so are the ``z + max(outputs - n, 0)`` smallest for ``z`` rows that
    are 0 on every input (dead units' outputs): the rank they bound is exact, so a layer with
    ``k`` live units has at most ``k`` non-zero singular values.
    """
    outputs, n = features.shape
    gram = jnp.matmul(features, features.T, precision="highest")
    _, vectors = jnp.linalg.eigh(gram)
    projected = jnp.matmul(vectors.T, features, precision="highest")
    norms = jnp.sort(jnp.sqrt(model.sum_samples(projected * projected)))[::-1]
    tolerance = norms[0] * outputs * jnp.finfo(features.dtype).eps
    zero_rows = jnp.sum(jnp.all(features == 0, axis=-1), dtype=jnp.int32)
    rank_bound = jnp.minimum(outputs - zero_rows, n)
    keep = (norms > tolerance) & (jnp.arange(outputs) < rank_bound)
    return jnp.where(keep, norms, 0)


def effective_rank(singular: jax.Array) -> jax.Array:
    """Roy and Vetterli's effective rank ``exp(H(p))``, ``p = s / sum(s)``, of singular values
    ``singular: float[k]``; ``0 log 0 = 0``, and 0 when every value is 0."""
    total = _total(singular)
    share = singular / jnp.where(total > 0, total, 1)
    terms = jnp.where(share > 0, share * jnp.log(jnp.where(share > 0, share, 1)), 0)
    return jnp.where(total > 0, jnp.exp(-_total(terms)), 0).astype(singular.dtype)


def srank(singular: jax.Array, share: float = SRANK_SHARE) -> jax.Array:
    """Kumar et al.'s srank: the fewest of the largest singular values (``singular: float[k]``,
    largest first) whose sum reaches ``share`` of the total; ``int32``, 0 when all are 0."""
    total = _total(singular)
    partial = jnp.cumsum(singular)
    reached = jnp.sum(partial < share * total, dtype=jnp.int32) + 1
    return jnp.where(total > 0, jnp.minimum(reached, singular.shape[0]), 0).astype(jnp.int32)


def stable_rank(singular: jax.Array) -> jax.Array:
    """``sum(s^2) / max(s)^2`` of ``singular: float[k]`` (largest first); 0 when all are 0."""
    top = singular[0] ** 2
    return jnp.where(top > 0, _total(singular**2) / jnp.where(top > 0, top, 1), 0)


def _ranks(structure: Structure, activations) -> tuple[jax.Array, ...]:
    """The three ranks of every hidden layer's features, each ``[L]`` (``[0]`` when off)."""
    dtype = jnp.dtype(structure.dtype)
    if structure.plasticity_metrics != "all" or not activations:
        return jnp.zeros((0,), dtype), jnp.zeros((0,), jnp.int32), jnp.zeros((0,), dtype)
    values = [singular_values(h) for h in activations]
    return (
        jnp.stack([effective_rank(s) for s in values]),
        jnp.stack([srank(s) for s in values]),
        jnp.stack([stable_rank(s) for s in values]),
    )


def grad_dormant_units(weight_grad: jax.Array, tau) -> jax.Array:
    """``bool[units]``: the units of one layer whose incoming weights' gradient
    ``weight_grad: float[units, fan_in]`` has a mean ``|.|`` at most ``tau`` times the layer's
    mean of it (every unit when the layer's gradient is all 0)."""
    per_unit = model.sum_samples(jnp.abs(weight_grad)) / weight_grad.shape[-1]
    layer_mean = model.sum_samples(per_unit) / per_unit.shape[0]
    score = jnp.where(layer_mean > 0, per_unit / jnp.where(layer_mean > 0, layer_mean, 1), 0)
    return score <= tau


def _matmul_loss(
    structure: Structure, numeric: Numeric, params: model.Params, data: Data
) -> jax.Array:
    """The mean loss of :func:`study.model.forward`'s network written with plain matmuls, for
    ``jax.grad``: the engine's hand-written backward pass (``model.flat_gradient``) sums the
    per-sample terms of small layers in a fixed order, which over a stream's 2,000 probe inputs
    cost about 7 times this (docs/performance.md). The gradient is the same to float rounding
    (``tests/test_plasticity.py`` checks it against ``jax.grad`` of ``model.loss_fn``)."""
    hidden = data.inputs
    act = model.activation(structure.activation, numeric.leaky_slope)
    for layer in params[:-1]:
        z = jnp.matmul(layer[0], hidden) + layer[1][:, None]
        if structure.norm != "none":
            gain, shift = layer[2:]
            z = gain[:, None] * model.normalize(structure.norm, z)[0] + shift[:, None]
        hidden = act(z)
    output = jnp.matmul(params[-1][0], hidden)[0] + params[-1][1][0]
    return model.loss_and_output_grad(structure.loss, output, data.targets)[0]


def _per_layer(values: list[jax.Array], dtype) -> jax.Array:
    return jnp.stack(values) if values else jnp.zeros((0,), dtype)


def plasticity(
    structure: Structure,
    numeric: Numeric,
    params: model.Params,
    initial: model.Params,
    data: Data,
) -> Plasticity:
    """The metrics of the network ``params`` on the check's ``data`` (inputs ``float[dim, n]``),
    ``initial`` its parameters at the start of training (see the module's docstring)."""
    dtype = jnp.dtype(structure.dtype)
    hidden = range(structure.depth)
    fwd = model.forward(structure, numeric, params, data.inputs)
    grads = jax.grad(_matmul_loss, argnums=2)(structure, numeric, params, data)
    if not structure.use_bias:  # the biases stay 0 and are not trained: no gradient of theirs
        grads = tuple((layer[0], jnp.zeros_like(layer[1]), *layer[2:]) for layer in grads)
    n = data.inputs.shape[-1]
    positive = [model.sum_samples((z > 0).astype(dtype)) / n for z in fwd.pre_activations]
    count = jnp.int32
    ranks = _ranks(structure, fwd.activations[1:])
    distance = [
        jnp.sqrt(_total(jnp.stack([_total((a - b) ** 2) for a, b in zip(now, then, strict=True)])))
        for now, then in zip(params[:-1], initial[:-1], strict=True)
    ]
    return Plasticity(
        effective_rank=ranks[0],
        srank=ranks[1],
        stable_rank=ranks[2],
        weight_magnitude=_per_layer(
            [_total(jnp.abs(params[k][0])) / params[k][0].size for k in hidden], dtype
        ),
        distance_from_start=_per_layer(distance, dtype),
        grad_norm=jnp.sqrt(_total(jnp.stack([_total(g**2) for layer in grads for g in layer]))),
        grad_dormant_units=_per_layer(
            [
                jnp.sum(grad_dormant_units(grads[k][0], numeric.dormant_tau), dtype=count)
                for k in hidden
            ],
            count,
        ),
        always_active_units=_per_layer(
            [jnp.sum(share >= ALWAYS_ACTIVE_SHARE, dtype=count) for share in positive], count
        ),
    )
