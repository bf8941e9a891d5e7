"""The MLP: parameter initialization, forward pass and its hand-written backward pass.

Written for ONE initialization and vmapped outside. Parameters are a tuple of layers
``(weights: float[fan_out, fan_in], bias: float[fan_out])``: ``depth`` hidden layers of ``width``
units, then one output unit (a logit for the sigmoid of binary cross-entropy, or a linear output
for the squared error).

For the tiny layers this project is about (fan-in 1 to 4, width 1 to 10), a batched matmul is slow
on CPU; :func:`dense` then writes the product as broadcast-multiply-and-sum, which XLA fuses with
the activation. The backward pass is written by hand in the same form so that a whole training
step is a few fused loops over the samples; ``tests/test_model.py`` checks it against
``jax.grad``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from study.config import Number, Numeric, Structure

# Above this many weights in a layer (fan_in * fan_out) a real matmul beats the elementwise form.
ELEMENTWISE_MAX_WEIGHTS = 64

# Per layer ``(weights, bias)``, and with ``model.norm`` per hidden layer ``(weights, bias, gain,
# shift)``; the output layer last.
Params = tuple[tuple[jax.Array, ...], ...]


def crelu(z: jax.Array) -> jax.Array:
    """Concatenated ReLU (Shang, Sohn, Almeida and Lee 2016, arXiv 1603.05201) of pre-activations
    ``z: float[units, ...]``: ``[relu(z), relu(-z)]`` stacked on the first axis,
    ``float[2 * units, ...]``. Its derivative in z is 1 (first half) where z > 0, -1 (second
    half) where z < 0, and 0 in both at z = 0: a unit is dead only where z = 0 on every input."""
    return jnp.concatenate([jax.nn.relu(z), jax.nn.relu(-z)], axis=0)


def outputs_per_unit(name: str) -> int:
    """How many outputs the activation ``name`` gives each hidden unit: 2 for crelu, else 1."""
    return 2 if name == "crelu" else 1


def activation(name: str, slope: Number) -> Callable[[jax.Array], jax.Array]:
    """The hidden activation ``name`` as a function of the pre-activations ``float[units, n]``
    (``float[units, n]`` out, ``float[2 * units, n]`` for crelu)."""

    def leaky_relu(z: jax.Array) -> jax.Array:
        return jnp.where(z > 0, z, slope * z)

    return {
        "relu": jax.nn.relu,  # relu'(0) = 0: a unit at exactly 0 everywhere is dead
        "leaky_relu": leaky_relu,
        "elu": jax.nn.elu,
        "gelu": jax.nn.gelu,
        "silu": jax.nn.silu,
        "softplus": jax.nn.softplus,
        "tanh": jnp.tanh,
        "sigmoid": jax.nn.sigmoid,
        "crelu": crelu,
    }[name]


def activation_gain(name: str, slope: Number) -> Number:
    """The gain of ``kaiming_uniform`` and ``orthogonal`` for an activation (as PyTorch's
    ``calculate_gain``): sqrt 2 for ReLU and the ReLU-like ELU, SiLU, GELU, softplus and CReLU,
    sqrt(2 / (1 + slope^2)) for leaky ReLU, 5/3 for tanh, 1 for sigmoid.

    For CReLU, sqrt 2 with the next layer's fan-in counted as ``2 * width`` keeps the scale of
    the pre-activations as for ReLU: each of the ``2 * width`` outputs has second moment
    ``E[z^2] / 2`` (``relu(z)^2 + relu(-z)^2 = z^2``), as a ReLU output does."""
    if name == "leaky_relu":
        return jnp.sqrt(2.0 / (1.0 + slope * slope))
    return {"tanh": 5.0 / 3.0, "sigmoid": 1.0}.get(name, 2.0**0.5)


def activation_and_derivative(
    name: str, slope: Number, z: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """``(act(z), act'(z))`` in one pass; the derivative is exactly the one jax.grad uses.

    For crelu both are ``float[2 * units, n]``: the derivative of each output in its unit's z.
    """
    return jax.jvp(activation(name, slope), (z,), (jnp.ones_like(z),))


def to_units(per_output: jax.Array, units: int) -> jax.Array:
    """A hidden layer's per-output values ``[outputs, ...]`` per unit ``[units, ...]``: a CReLU
    layer's two halves (``relu(z)``'s, then ``relu(-z)``'s) added, first + second; another
    layer's as they are (one output per unit)."""
    if per_output.shape[0] == units:
        return per_output
    return per_output[:units] + per_output[units:]


def to_outputs(per_unit: jax.Array, name: str) -> jax.Array:
    """Per-unit values ``[units, ...]`` repeated for each output of their unit under the
    activation ``name`` (``[2 * units, ...]`` for crelu), the inverse layout of :func:`to_units`."""
    return jnp.concatenate([per_unit] * outputs_per_unit(name), axis=0)


def dead_units(derivative: jax.Array, units: int) -> jax.Array:
    """``bool[units]``: the units whose activation's derivative is 0 on every input, from
    ``derivative: float[outputs, n]``; a CReLU unit when both its outputs' are (z = 0 on every
    input)."""
    silent = jnp.all(derivative == 0, axis=-1)
    if silent.shape[0] == units:
        return silent
    return silent[:units] & silent[units:]


def _sum_in_order(values: jax.Array, axis: int) -> jax.Array:
    """Sum a short axis by adding its slices one by one (see :func:`sum_samples` for why)."""
    slices = jnp.moveaxis(values, axis, 0)
    total = slices[0]
    for part in slices[1:]:
        total = total + part
    return total


def dense_output(weights: jax.Array, inputs: jax.Array) -> jax.Array:
    """:func:`dense` for the output layer, its products summed slice by slice as they always
    were (XLA contracts :func:`dense`'s multiply-adds differently, so its last bits differ: this
    keeps the committed results of the continual-learning studies, whose only small layer is
    the output)."""
    if weights.size <= ELEMENTWISE_MAX_WEIGHTS:
        return _sum_in_order(weights[:, :, None] * inputs[None, :, :], axis=1)
    return weights @ inputs


def dense(weights: jax.Array, inputs: jax.Array) -> jax.Array:
    """``weights @ inputs`` for ``weights: [out, in]``, ``inputs: [in, n]`` -> ``[out, n]``: a
    small layer as a fixed-order sum of ``[out, n]`` products, one input at a time (fewer bytes
    than summing the slices of the ``[out, in, n]`` product)."""
    if weights.size <= ELEMENTWISE_MAX_WEIGHTS:
        total = weights[:, 0:1] * inputs[0:1, :]
        for i in range(1, weights.shape[1]):
            total = total + weights[:, i : i + 1] * inputs[i : i + 1, :]
        return total
    return weights @ inputs


def dense_transpose(weights: jax.Array, grads: jax.Array) -> jax.Array:
    """``weights.T @ grads`` for ``weights: [out, in]``, ``grads: [out, n]`` -> ``[in, n]``."""
    if weights.size <= ELEMENTWISE_MAX_WEIGHTS:
        total = weights[0:1, :].T * grads[0:1, :]
        for o in range(1, weights.shape[0]):
            total = total + weights[o : o + 1, :].T * grads[o : o + 1, :]
        return total
    return weights.T @ grads


# Lanes of the fixed-order sample sum (one AVX register of float32).
SUM_LANES = 8


def sum_samples(values: jax.Array) -> jax.Array:
    """Sum over the last (sample) axis in an order that does not depend on the batch shape.

    XLA lowers a reduction in ways that depend on the shapes around it, so a plain
    ``sum(axis=-1)`` can change in the last bit with the number of initializations in a chunk.
    Here the sum is elementwise additions only: the samples (zero-padded to ``SUM_LANES * 2^k``)
    are folded in halves down to ``SUM_LANES`` lanes, which are then added one by one. The same
    bits for any chunking (``tests/test_engine.py`` checks it).
    """
    return sum_lanes(fold_samples(values), values.shape[-1])


def fold_samples(values: jax.Array) -> jax.Array:
    """The first stage of :func:`sum_samples`: ``[..., n]`` folded in halves to ``SUM_LANES``."""
    n = values.shape[-1]
    width = SUM_LANES
    while width < n:
        width *= 2
    if width > n:
        values = jnp.pad(values, [(0, 0)] * (values.ndim - 1) + [(0, width - n)])
    while width > SUM_LANES:
        width //= 2
        values = values[..., :width] + values[..., width:]
    return values


def sum_lanes(lanes: jax.Array, n: int) -> jax.Array:
    """The second stage of :func:`sum_samples`: add the lanes of ``n`` samples one by one."""
    total = lanes[..., 0]
    for lane in range(1, min(SUM_LANES, n)):
        total = total + lanes[..., lane]
    return total


# --------------------------------------------------------------------------------------------
# Initialization.
# --------------------------------------------------------------------------------------------

# Lu et al. (2019), RAI: the symmetric entries of a row are N(0, (RAI_SIGMA_GAIN^2) / fan_in).
RAI_SIGMA_GAIN = 0.6007


def _draw(
    sampler: Callable[..., jax.Array],
    key: jax.Array,
    shape: tuple[int, ...],
    dtype: DTypeLike,
    *bounds: Number,
) -> jax.Array:
    """A float32 draw cast to ``dtype``: a float64 run starts from a float32 run's numbers."""
    return sampler(key, shape, jnp.float32, *bounds).astype(dtype)


def _init_weights(
    scheme: str,
    key: jax.Array,
    fan_in: int,
    fan_out: int,
    init_range: Number,
    dtype: DTypeLike,
    gain: Number = 1.0,
    rows: int | None = None,
) -> jax.Array:
    # ``rows``: draw only that many rows of the layer's (iid) weights, scaled as the layer's
    shape = (fan_out if rows is None else rows, fan_in)
    if scheme == "kaiming_uniform":
        limit = gain * jnp.sqrt(3.0 / fan_in)
        return _draw(jax.random.uniform, key, shape, dtype, -1.0, 1.0) * limit.astype(dtype)
    if scheme == "uniform":
        return _draw(jax.random.uniform, key, shape, dtype, -1.0, 1.0) * init_range
    if scheme == "normal":
        return _draw(jax.random.normal, key, shape, dtype) * init_range
    if scheme == "he_uniform":
        limit = jnp.sqrt(6.0 / fan_in)
        return _draw(jax.random.uniform, key, shape, dtype, -limit, limit)
    if scheme == "he_normal":
        return _draw(jax.random.normal, key, shape, dtype) * jnp.sqrt(2.0 / fan_in)
    if scheme == "glorot_uniform":
        limit = jnp.sqrt(6.0 / (fan_in + fan_out))
        return _draw(jax.random.uniform, key, shape, dtype, -limit, limit)
    if scheme == "orthogonal":
        return _orthogonal(key, fan_in, fan_out).astype(dtype) * jnp.asarray(gain, dtype)
    raise ValueError(f"unknown weight init {scheme!r}")


def _orthogonal(key: jax.Array, fan_in: int, fan_out: int) -> jax.Array:
    """A ``float32[fan_out, fan_in]`` matrix of the orthogonal group's Haar measure (Saxe,
    McClelland and Ganguli 2014, arXiv 1312.6120): orthonormal columns (``W^T W = I``) when
    ``fan_out >= fan_in``, orthonormal rows (``W W^T = I``) otherwise.

    The Q of the QR decomposition of a Gaussian ``[max, min]`` matrix, its columns' signs set by
    R's diagonal so that the law is Haar's (Mezzadri 2007, arXiv math-ph/0609050), as
    ``jax.nn.initializers.orthogonal`` draws it. Drawn and decomposed in float32: a float64 run
    starts from a float32 run's numbers, rounded once.
    """
    rows, columns = max(fan_in, fan_out), min(fan_in, fan_out)
    q, r = jnp.linalg.qr(jax.random.normal(key, (rows, columns), jnp.float32))
    q = q * jnp.where(jnp.diagonal(r) < 0, -1.0, 1.0).astype(jnp.float32)[None, :]
    return q if fan_out >= fan_in else q.T


def _init_bias(
    scheme: str, key: jax.Array, fan_out: int, bias_scale: Number, dtype: DTypeLike
) -> jax.Array:
    if scheme == "zeros":
        return jnp.zeros((fan_out,), dtype)
    if scheme == "uniform":
        return _draw(jax.random.uniform, key, (fan_out,), dtype, -1.0, 1.0) * bias_scale
    if scheme == "normal":
        return _draw(jax.random.normal, key, (fan_out,), dtype) * bias_scale
    if scheme == "constant":
        return jnp.full((fan_out,), bias_scale, dtype)
    raise ValueError(f"unknown bias init {scheme!r}")


def _init_rai(
    key: jax.Array, fan_in: int, fan_out: int, use_bias: bool, dtype: DTypeLike
) -> tuple[jax.Array, jax.Array]:
    """Randomized asymmetric initialization (Lu, Shin, Su and Karniadakis 2019, arXiv 1903.06733).

    Each row of the augmented matrix ``[W, b]`` is N(0, 0.6007^2 / fan_in) except one entry,
    chosen uniformly among the row's ``fan_in + 1`` entries (``fan_in`` without a bias), which is
    drawn from the asymmetric Beta(2, 1) distribution on (0, 1).
    """
    columns = fan_in + 1 if use_bias else fan_in
    key_normal, key_pick, key_beta = jax.random.split(key, 3)
    rows = _draw(jax.random.normal, key_normal, (fan_out, columns), dtype) * (
        RAI_SIGMA_GAIN / jnp.sqrt(float(fan_in))
    )
    picked = jax.random.randint(key_pick, (fan_out,), 0, columns, jnp.int32)
    positive = jax.random.beta(key_beta, 2.0, 1.0, (fan_out,), jnp.float32).astype(dtype)
    rows = jnp.where(
        jnp.arange(columns, dtype=picked.dtype)[None, :] == picked[:, None], positive[:, None], rows
    )
    bias = rows[:, fan_in] if use_bias else jnp.zeros((fan_out,), dtype)
    return rows[:, :fan_in], bias


def layer_sizes(structure: Structure) -> list[tuple[int, int]]:
    """``(fan_in, fan_out)`` of every layer, the output layer last.

    ``model.width`` counts units (pre-activations): a hidden layer has ``fan_out = width``; the
    layer after it reads the units' outputs, ``fan_in = 2 * width`` under crelu (``width``
    otherwise). Scaled inits (he_*, glorot_uniform, kaiming_uniform, RAI) use that fan-in.
    """
    outputs = structure.width * outputs_per_unit(structure.activation)
    fan_ins = [structure.dim] + [outputs] * structure.depth
    fan_outs = [structure.width] * structure.depth + [1]
    return list(zip(fan_ins, fan_outs, strict=True))


def init_unit_rows(
    structure: Structure, numeric: Numeric, key: jax.Array, layer: int
) -> tuple[jax.Array, jax.Array]:
    """Fresh incoming weights and biases for units of hidden layer ``layer`` from the
    initialization's distribution: ``(weights: float[rows, fan_in], bias: float[rows])``, one
    row (``rows = 1``) where units are drawn independently of each other, the whole layer's
    (``rows = width``) under ``orthogonal``, whose rows are drawn together. (What a re-drawn unit
    gets: :mod:`study.continual_backprop`.)"""
    dtype = jnp.dtype(structure.dtype)
    fan_in, fan_out = layer_sizes(structure)[layer]
    rows = fan_out if structure.init == "orthogonal" else 1
    if structure.init == "rai":
        return _init_rai(key, fan_in, rows, structure.use_bias, dtype)
    key_w, key_b = jax.random.split(key)
    gain = activation_gain(structure.activation, numeric.leaky_slope)
    weights = _init_weights(
        structure.init, key_w, fan_in, fan_out, numeric.init_range, dtype, gain, rows
    )
    if not structure.use_bias:
        return weights, jnp.zeros((rows,), dtype)
    return weights, _init_bias(structure.bias_init, key_b, rows, numeric.bias_scale, dtype)


def init_params(structure: Structure, numeric: Numeric, key: jax.Array) -> Params:
    """Draw one initialization: every layer's weights and biases, the output layer last."""
    dtype = jnp.dtype(structure.dtype)
    params: list[tuple[jax.Array, ...]] = []
    for layer_key, (fan_in, fan_out) in zip(
        jax.random.split(key, structure.depth + 1), layer_sizes(structure), strict=True
    ):
        if structure.init == "rai":
            params.append(_init_rai(layer_key, fan_in, fan_out, structure.use_bias, dtype))
            continue
        key_w, key_b = jax.random.split(layer_key)
        # kaiming_uniform, orthogonal: the hidden layers' gain is their activation's, the
        # output's 1 (linear)
        hidden = len(params) < structure.depth
        gain = activation_gain(structure.activation, numeric.leaky_slope) if hidden else 1.0
        weights = _init_weights(
            structure.init, key_w, fan_in, fan_out, numeric.init_range, dtype, gain
        )
        if structure.use_bias:
            bias = _init_bias(structure.bias_init, key_b, fan_out, numeric.bias_scale, dtype)
        else:
            bias = jnp.zeros((fan_out,), dtype)
        params.append((weights, bias))
    if structure.norm != "none":
        # every hidden layer gets the normalization's gain and shift, initialized 1 and 0
        params[:-1] = [
            (weights, bias, jnp.ones_like(bias), jnp.zeros_like(bias))
            for weights, bias in params[:-1]
        ]
    return tuple(params)


# --------------------------------------------------------------------------------------------
# Forward and backward.
# --------------------------------------------------------------------------------------------


class Forward(NamedTuple):
    """One forward pass over ``n`` samples.

    pre_activations: per hidden layer, what the activation sees, ``float[width, n]`` (after the
      normalization's gain and shift when ``model.norm`` is on).
    derivatives: per hidden layer, the derivative of each output in its unit's pre-activation,
      ``float[outputs, n]`` (``outputs = width``, or ``2 * width`` under crelu).
    activations: the input ``float[dim, n]`` then each hidden layer's output
      ``float[outputs, n]``.
    output: ``float[n]``, the logit (bce) or the prediction (mse).
    normalized: per hidden layer, the normalized pre-activations ``float[width, n]`` (empty
      without ``model.norm``).
    inv_std: per hidden layer, ``1 / sqrt(var + eps)`` of the normalization: ``float[width]``
      per unit (batch) or ``float[n]`` per sample (layer); empty without ``model.norm``.
    """

    pre_activations: tuple[jax.Array, ...]
    derivatives: tuple[jax.Array, ...]
    activations: tuple[jax.Array, ...]
    output: jax.Array
    normalized: tuple[jax.Array, ...] = ()
    inv_std: tuple[jax.Array, ...] = ()


# Added to the variance under the square root of batch and layer normalization.
NORM_EPS = 1e-5


def _mean_over(norm: str, values: jax.Array) -> jax.Array:
    """The mean a normalization takes: over the samples per unit (batch, ``[width]``) or over
    the units per sample (layer, ``[n]``), both as fixed-order sums."""
    if norm == "batch":
        return sum_samples(values) / values.shape[-1]
    return _sum_in_order(values, axis=0) / values.shape[0]


def _expand(norm: str, per: jax.Array) -> jax.Array:
    """A batch statistic ``[width]`` or a layer statistic ``[n]`` broadcast to ``[width, n]``."""
    return per[:, None] if norm == "batch" else per[None, :]


def normalize(norm: str, z: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(normalized z, 1 / sqrt(var + eps))`` of pre-activations ``z: float[width, n]``.

    Known limit: with ``"batch"``, results can differ in the last bit between chunk sizes (XLA
    CPU contracts the backward pass's products into FMAs differently as its fusions change with
    the batch shape; optimization barriers did not pin it). Same chunk size, same bits.
    """
    centered = z - _expand(norm, _mean_over(norm, z))
    # 1 / sqrt (each correctly rounded) rather than an rsqrt approximation.
    inv_std = 1.0 / jnp.sqrt(_mean_over(norm, centered * centered) + NORM_EPS)
    return centered * _expand(norm, inv_std), inv_std


class Layer(NamedTuple):
    """One hidden layer's forward pass: what the activation sees, its derivative and output,
    and (with ``model.norm``) the normalized pre-activations and their ``1 / std``."""

    pre_activation: jax.Array
    derivative: jax.Array
    output: jax.Array
    normalized: jax.Array | None
    inv_std: jax.Array | None


def hidden_layer(
    structure: Structure, numeric: Numeric, layer: tuple[jax.Array, ...], hidden: jax.Array
) -> Layer:
    """Run one hidden layer ``(weights, bias[, gain, shift])`` on ``hidden: float[fan_in, n]``."""
    weights, bias = layer[:2]
    z = dense(weights, hidden) + bias[:, None]
    z_hat = inv_std = None
    if structure.norm != "none":
        gain, shift = layer[2:]
        z_hat, inv_std = normalize(structure.norm, z)
        z = gain[:, None] * z_hat + shift[:, None]
    output, derivative = activation_and_derivative(structure.activation, numeric.leaky_slope, z)
    return Layer(z, derivative, output, z_hat, inv_std)


def forward(structure: Structure, numeric: Numeric, params: Params, inputs: jax.Array) -> Forward:
    """Run the MLP on ``inputs: float[dim, n]``, keeping what the backward pass and metrics use."""
    layers: list[Layer] = []
    hidden = inputs
    for layer in params[:-1]:
        layers.append(hidden_layer(structure, numeric, layer, hidden))
        hidden = layers[-1].output
    out_weights, out_bias = params[-1]
    output = dense_output(out_weights, hidden)[0] + out_bias[0]
    # (None for every layer without model.norm, an array for every layer with it)
    return Forward(
        pre_activations=tuple(layer.pre_activation for layer in layers),
        derivatives=tuple(layer.derivative for layer in layers),
        activations=(inputs, *(layer.output for layer in layers)),
        output=output,
        normalized=tuple(layer.normalized for layer in layers if layer.normalized is not None),
        inv_std=tuple(layer.inv_std for layer in layers if layer.inv_std is not None),
    )


def normalize_backward(
    norm: str, grad_hat: jax.Array, z_hat: jax.Array, inv_std: jax.Array
) -> jax.Array:
    """``d loss / d z`` from ``d loss / d z_hat`` through :func:`normalize` (its Jacobian with
    the statistics differentiated too): ``inv_std * (g - mean(g) - z_hat * mean(g * z_hat))``."""
    mean_grad = _expand(norm, _mean_over(norm, grad_hat))
    mean_proj = _expand(norm, _mean_over(norm, grad_hat * z_hat))
    return _expand(norm, inv_std) * (grad_hat - mean_grad - z_hat * mean_proj)


def loss_and_output_grad(
    loss: str, output: jax.Array, targets: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Mean loss and its derivative with respect to each output, ``float[n]``."""
    n = output.shape[-1]
    if loss == "bce":
        # log(1 + e^o) - y o, the binary cross-entropy of sigmoid(o), stable for any o.
        value = sum_samples(jax.nn.softplus(output) - targets * output) / n
        return value, (jax.nn.sigmoid(output) - targets) / n
    if loss == "mse":
        error = output - targets
        return sum_samples(error**2) / n, 2.0 * error / n
    raise ValueError(f"unknown loss {loss!r}")


def flat_gradient(
    params: Params, fwd: Forward, output_grad: jax.Array, use_bias: bool, norm: str = "none"
) -> jax.Array:
    """Gradient of the loss with respect to every parameter, flattened: ``float[n_params]``.

    The order is that of ``jax.flatten_util.ravel_pytree(params)``: layer by layer, the weights
    (row-major), the bias, then (with ``norm``) the normalization's gain and shift. For small
    layers the per-sample terms of every gradient entry, ``d loss / d w_ij = sum_n upstream_in *
    a_jn`` and ``d loss / d b_i = sum_n upstream_in``, are stacked into one ``[rows, n]`` array
    and summed over the samples in ONE fused reduction: a single pass over the samples instead
    of one per parameter array, which on CPU is most of the cost of a training step
    (``docs/performance.md``).
    """
    n = output_grad.shape[-1]
    rows: list[jax.Array] = []  # per-sample terms, summed together at the end
    # per layer, per leaf: a row offset into the summed rows, or a finished gradient
    parts: list[list[int | jax.Array]] = [[0] * len(layer) for layer in params]
    row_count = 0

    def add_rows(terms: jax.Array) -> int:
        nonlocal row_count
        rows.append(terms)
        row_count += terms.shape[0]
        return row_count - terms.shape[0]

    upstream = output_grad[None, :]  # d loss / d (layer output), [fan_out, n]
    for layer in reversed(range(len(params))):
        weights, bias = params[layer][:2]
        if layer < len(params) - 1:
            # through the activation (a CReLU unit's two outputs both depend on its z)
            upstream = to_units(upstream * fwd.derivatives[layer], bias.shape[0])
            if norm != "none":  # through the gain and shift, then the normalization
                gain, z_hat = params[layer][2], fwd.normalized[layer]
                parts[layer][2:] = [add_rows(upstream * z_hat), add_rows(upstream)]
                upstream = normalize_backward(
                    norm, upstream * gain[:, None], z_hat, fwd.inv_std[layer]
                )
        inputs = fwd.activations[layer]
        if weights.size <= ELEMENTWISE_MAX_WEIGHTS:
            parts[layer][0] = add_rows((upstream[:, None, :] * inputs[None, :, :]).reshape(-1, n))
        else:
            parts[layer][0] = (upstream @ inputs.T).reshape(-1)
        parts[layer][1] = add_rows(upstream) if use_bias else jnp.zeros_like(bias)
        if layer > 0:
            upstream = dense_transpose(weights, upstream)
    # Each block is folded on its own (so the per-sample terms need not be stacked in memory);
    # the lanes are then added together, the same additions as sum_samples of the stack.
    if rows:
        totals = sum_lanes(jnp.concatenate([fold_samples(r) for r in rows]), n)
    else:  # every gradient was finished above (large layers, no bias): no row is read
        totals = jnp.zeros((0,), output_grad.dtype)
    pieces = [
        totals[part : part + leaf.size] if isinstance(part, int) else part
        for layer_parts, layer in zip(parts, params, strict=True)
        for part, leaf in zip(layer_parts, layer, strict=True)
    ]
    return jnp.concatenate(pieces)


def leaf_shapes(structure: Structure) -> list[tuple[tuple[int, ...], ...]]:
    """The shapes of every layer's parameters: ``(weights, bias)``, and for a hidden layer with
    ``model.norm`` also ``(gain, shift)``; the output layer last."""
    shapes: list[tuple[tuple[int, ...], ...]] = []
    for layer, (fan_in, fan_out) in enumerate(layer_sizes(structure)):
        normalized = structure.norm != "none" and layer < structure.depth
        shapes.append(((fan_out, fan_in), (fan_out,)) + ((fan_out,), (fan_out,)) * normalized)
    return shapes


def unflatten(structure: Structure, flat: jax.Array) -> Params:
    """Split a flat ``float[n_params]`` (ravel order) into the layers of ``structure``."""
    layers, offset = [], 0
    for shapes in leaf_shapes(structure):
        leaves = []
        for shape in shapes:
            size = math.prod(shape)
            leaves.append(flat[offset : offset + size].reshape(shape))
            offset += size
        layers.append(tuple(leaves))
    return tuple(layers)


def flatten(params: Sequence[Sequence[jax.Array]]) -> jax.Array:
    """All parameters as one vector ``float[n_params]``, the inverse of :func:`unflatten`; also
    any tree of the same layout, e.g. a per-parameter mask (lists of layers of leaves)."""
    return jnp.concatenate([leaf.reshape(-1) for layer in params for leaf in layer])


def backward(
    params: Params, fwd: Forward, output_grad: jax.Array, use_bias: bool, norm: str = "none"
) -> Params:
    """Gradients of the loss with respect to every parameter, given ``d loss / d output``."""
    flat = flat_gradient(params, fwd, output_grad, use_bias, norm)
    layers, offset = [], 0
    for layer in params:
        leaves = []
        for leaf in layer:
            leaves.append(flat[offset : offset + leaf.size].reshape(leaf.shape))
            offset += leaf.size
        layers.append(tuple(leaves))
    return tuple(layers)


def loss_fn(
    structure: Structure,
    numeric: Numeric,
    params: Params,
    inputs: jax.Array,
    targets: jax.Array,
) -> jax.Array:
    """The mean training loss; the reference that :func:`backward` must match under jax.grad."""
    output = forward(structure, numeric, params, inputs).output
    return loss_and_output_grad(structure.loss, output, targets)[0]
