"""A continual-learning stream: Dohare et al.'s slowly-changing regression (SCR) problem.

The stream is written for one example per step inside a ``lax.scan`` (``step`` may be a traced
``int32``), and for ``vmap`` over stream keys outside it. Everything is a pure function of a
*stream key* and integers: each function derives its own key from the stream key with
``fold_in`` (a purpose tag, then the step), so one key can drive a whole stream without a key
ever being reused, and a stream's bits depend only on its key and step, never on how the steps
are chunked or how many streams are vmapped together.

The problem (Dohare et al., "Loss of plasticity in deep continual learning", Nature 632, 2024,
Methods and Extended Data Fig. 2; code: github.com/shibhansh/loss-of-plasticity,
``lop/slowly_changing_regression/``, ``lop/nets/fix_ltu_net.py``):

* an input is ``m`` bits in {0, 1} (``dim = m``, default 20) plus a constant 1: the first
  ``f`` (``n_flipping``, default 15) are *slow* bits, the stream state; the other ``m - f`` are
  drawn fresh for every example;
* every ``flip_every`` examples (T, default 10,000) one slow bit, chosen uniformly, flips;
* the target is a fixed random teacher: ``teacher_width`` (default 100) linear threshold units
  (LTUs) with weights +-1 on the ``m + 1`` inputs, thresholds ``theta_i = (m + 1) beta - S_i``
  (``S_i`` = the unit's number of -1 weights, ``beta = 0.7``), and output weights +-1.

The learner receives the ``m`` bits *without* the constant 1: the paper's constant-1 input is the
learner's own bias, as in the authors' code (the teacher's weight on it is ``input_bias``).
See ``docs/continual.md`` for the formulas, the sources and where paper and code differ.

Usage, one stream per key (``vmap`` over ``key``)::

    teacher = make_teacher(teacher_key)
    state = initial_bits(key, n_flipping=15)
    def one_step(state, step):
        state = step_bits(state, key, step, flip_every=10_000)
        x, y = example(teacher, state, key, step)   # x: float[20], y: float[]
        ...                                         # learn from (x, y)
        return state, ...
    state, _ = lax.scan(one_step, state, jnp.arange(n_steps, dtype=jnp.int32))
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from study.data import Data

# Purpose tags folded into the stream key, so that no two draws share a key.
_TEACHER, _INITIAL_BITS, _FLIP, _EXAMPLE, _PROBE = range(5)

CONVENTIONS = ("paper", "code")


class Teacher(NamedTuple):
    """The fixed target network: one hidden layer of ``width`` LTUs on ``dim`` bits plus a 1.

    input_weights: float[width, dim], entries +-1.
    input_bias: float[width], +-1, the weight on the constant-1 input.
    thresholds: float[width], ``theta_i``; unit i is on when its pre-activation exceeds it.
    output_weights: float[width], +-1.
    output_bias: float[], 0 (paper) or +-1 (the authors' code).
    """

    input_weights: jax.Array
    input_bias: jax.Array
    thresholds: jax.Array
    output_weights: jax.Array
    output_bias: jax.Array


class StreamState(NamedTuple):
    """The slowly-changing part of the input: ``slow_bits: bool[n_flipping]``."""

    slow_bits: jax.Array


def _fair_bits(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """``bool[shape]`` fair coin flips: the top bit of a 32-bit random word.

    Drawn from integers, not floats, so the bits do not depend on JAX's 64-bit mode.
    """
    return jax.random.bits(key, shape, jnp.uint32) >= jnp.uint32(2**31)


def _signs(key: jax.Array, shape: tuple[int, ...], dtype) -> jax.Array:
    """``float[shape]`` uniform random signs +-1."""
    return jnp.where(_fair_bits(key, shape), 1, -1).astype(dtype)


def _key(key: jax.Array, purpose: int, step=None) -> jax.Array:
    key = jax.random.fold_in(key, purpose)
    return key if step is None else jax.random.fold_in(key, step)


def make_teacher(
    key: jax.Array,
    dim: int = 20,
    teacher_width: int = 100,
    beta: float = 0.7,
    dtype=jnp.float32,
    convention: str = "paper",
) -> Teacher:
    """Draw the SCR target network (Dohare et al. 2024, Methods, Extended Data Fig. 2a).

    Every weight is +-1 with probability 1/2. Unit i has threshold
    ``theta_i = (dim + 1) * beta - S_i``, where under ``convention='paper'``
    ``S_i = #{j : W_ij = -1} + [b_i = -1]`` counts the -1 weights among all ``dim + 1`` inputs
    (the constant-1 input included), and there is no output bias. Then unit i is on exactly when
    the input differs from its preferred input (1 where the weight is +1, 0 where it is -1, the
    constant input included) in fewer than ``(dim + 1) * (1 - beta)`` of the ``dim + 1`` places.

    ``convention='code'`` reproduces ``FixLTUNet`` of the authors' code
    (``lop/nets/fix_ltu_net.py``, lines 27-37): ``S_i = (dim - sum_j W_ij + b_i) / 2``, which
    differs from the paper's count when ``b_i = -1`` (those units then fire only within 3
    differences instead of 5 among the ``dim`` bits, for the defaults), and an output bias +-1.
    The same key gives the same weights under both conventions.

    Args:
      key: the teacher's key (a stream key may be used; a purpose tag is folded in).
      dim: m, the number of input bits the learner sees (the constant 1 excluded).
      teacher_width: the number of LTUs.
      beta: the threshold parameter, in (0, 1); larger means sparser units.
      dtype: float dtype of the arrays (the draws do not depend on it).
      convention: 'paper' or 'code', see above.

    Returns:
      a :class:`Teacher`.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, not {convention!r}")
    dtype = jnp.dtype(dtype)
    k_weights, k_bias, k_out, k_out_bias = jax.random.split(_key(key, _TEACHER), 4)
    weights = _signs(k_weights, (teacher_width, dim), dtype)
    bias = _signs(k_bias, (teacher_width,), dtype)
    output_weights = _signs(k_out, (teacher_width,), dtype)
    output_bias = _signs(k_out_bias, (), dtype)
    if convention == "paper":
        negatives = jnp.sum(weights < 0, axis=1, dtype=jnp.int32) + (bias < 0).astype(jnp.int32)
        output_bias = jnp.zeros((), dtype)
    else:
        negatives = (dim - jnp.sum(weights, axis=1) + bias) / 2
    thresholds = jnp.asarray(beta, dtype) * (dim + 1) - negatives.astype(dtype)
    return Teacher(weights, bias, thresholds, output_weights, output_bias)


def teacher_output(teacher: Teacher, inputs: jax.Array) -> jax.Array:
    """The target ``y = sum_i v_i [W_i . x + b_i > theta_i] + c`` (no scaling).

    Args:
      teacher: a :class:`Teacher` on ``dim`` bits.
      inputs: ``float[dim, n]`` (features first, as the engine's model takes them) or
        ``float[dim]``; the m bits without the constant 1.

    Returns:
      ``float[n]`` or ``float[]``: integers in ``[-width - 1, width + 1]``, exact in float32.
    """
    dim = teacher.input_weights.shape[1]
    columns = inputs.reshape(dim, -1).astype(teacher.input_weights.dtype)
    pre_activation = (
        jnp.matmul(teacher.input_weights, columns, precision="highest")
        + teacher.input_bias[:, None]
    )
    on = (pre_activation > teacher.thresholds[:, None]).astype(columns.dtype)
    targets = jnp.matmul(teacher.output_weights, on, precision="highest") + teacher.output_bias
    return targets.reshape(inputs.shape[1:])


def initial_bits(key: jax.Array, n_flipping: int = 15) -> StreamState:
    """The slow bits at step 0: ``n_flipping`` fair coin flips drawn from the stream key."""
    return StreamState(_fair_bits(_key(key, _INITIAL_BITS), (n_flipping,)))


def step_bits(
    state: StreamState, key: jax.Array, step, flip_every: int = 10_000, flip_one: bool = True
) -> StreamState:
    """The slow bits in force at ``step``, given those of ``step - 1``.

    When ``step > 0`` and ``step % flip_every == 0``, one slow bit chosen uniformly flips (the
    paper); with ``flip_one=False`` all slow bits are redrawn instead, which is what the authors'
    code does by default (``cfg/prob.json``, the data 43 of its 50 learner configs read;
    ``slowly_changing_regression.py`` lines 31-39). Otherwise the bits are unchanged.
    The draw's key is ``fold_in(fold_in(key, tag), step)``: it is made (and discarded) at every
    step, so the function has no data-dependent control flow and ``step`` may be traced.

    Args:
      state: the slow bits of step ``step - 1`` (for step 0, :func:`initial_bits`).
      key: the stream key.
      step: int32 scalar, the index of the example about to be drawn.
      flip_every: T, the number of examples between changes.
      flip_one: flip one bit (True, the paper) or redraw all (False, the code's default).
    """
    bits = state.slow_bits
    key = _key(key, _FLIP, step)
    change = (step > 0) & (step % flip_every == 0)
    if flip_one:
        which = jax.random.randint(key, (), 0, bits.shape[0], jnp.int32)
        new_bits = bits ^ (jnp.arange(bits.shape[0], dtype=jnp.int32) == which)
    else:
        new_bits = _fair_bits(key, bits.shape)
    return StreamState(jnp.where(change, new_bits, bits))


def _inputs(state: StreamState, fast_bits: jax.Array, dtype) -> jax.Array:
    """``float[dim, n]`` inputs: the slow bits (first rows) above ``fast_bits: bool[., n]``."""
    slow = jnp.broadcast_to(
        state.slow_bits[:, None], (state.slow_bits.shape[0], fast_bits.shape[1])
    )
    return jnp.concatenate([slow, fast_bits], axis=0).astype(dtype)


def _n_fast(teacher: Teacher, state: StreamState) -> int:
    dim, n_flipping = teacher.input_weights.shape[1], state.slow_bits.shape[0]
    if n_flipping > dim:
        raise ValueError(f"{n_flipping} slow bits do not fit in {dim} inputs")
    return dim - n_flipping


def example(
    teacher: Teacher, state: StreamState, key: jax.Array, step
) -> tuple[jax.Array, jax.Array]:
    """The example of ``step``: ``(x: float[dim], y: float[])``.

    ``x`` is the slow bits followed by ``dim - n_flipping`` fresh fair bits drawn with
    ``fold_in(fold_in(key, tag), step)`` (the order of the authors' code); ``y`` is
    :func:`teacher_output` of ``x``. Call :func:`step_bits` for the same step first.
    """
    fast_bits = _fair_bits(_key(key, _EXAMPLE, step), (_n_fast(teacher, state), 1))
    inputs = _inputs(state, fast_bits, teacher.input_weights.dtype)
    return inputs[:, 0], teacher_output(teacher, inputs)[0]


def examples(
    teacher: Teacher,
    state: StreamState,
    key: jax.Array,
    steps: jax.Array,
    flip_every: int = 10_000,
    flip_one: bool = True,
) -> tuple[StreamState, Data]:
    """Run the stream over ``steps`` (consecutive ``int32[n]``): the reference composition.

    Returns the state after the last step and ``Data(inputs: float[dim, n], targets: float[n])``.
    Two calls over consecutive ranges, the state carried, give the bits of one call over both.
    """

    def one_step(state, step):
        state = step_bits(state, key, step, flip_every, flip_one)
        return state, example(teacher, state, key, step)

    state, (inputs, targets) = jax.lax.scan(one_step, state, steps)
    return state, Data(inputs.T, targets)


def probe(teacher: Teacher, state: StreamState, key: jax.Array, step, probe_size: int) -> Data:
    """``probe_size`` inputs from the current distribution, and their targets.

    The slow bits are the state's; the fast bits are fresh, drawn with
    ``fold_in(fold_in(key, tag), step)`` (a key of their own, never an example's).

    Returns:
      ``Data(inputs: float[dim, probe_size], targets: float[probe_size])``.
    """
    fast_bits = _fair_bits(_key(key, _PROBE, step), (_n_fast(teacher, state), probe_size))
    inputs = _inputs(state, fast_bits, teacher.input_weights.dtype)
    return Data(inputs, teacher_output(teacher, inputs))


def exhaustive_probe(teacher: Teacher, state: StreamState) -> Data:
    """Every input of the current distribution, once: ``2 ** (dim - n_flipping)`` columns.

    The current distribution is uniform on these points (32 for the defaults), so a unit is
    inactive on the current distribution exactly when it is inactive on this probe; no key.

    Returns:
      ``Data(inputs: float[dim, 2 ** n_fast], targets: float[2 ** n_fast])``, the fast bits of
      column k being the binary digits of k, most significant first.
    """
    n_fast = _n_fast(teacher, state)
    codes = jnp.arange(2**n_fast, dtype=jnp.uint32)
    shifts = jnp.arange(n_fast - 1, -1, -1, dtype=jnp.uint32)
    fast_bits = ((codes[None, :] >> shifts[:, None]) & jnp.uint32(1)) == jnp.uint32(1)
    inputs = _inputs(state, fast_bits, teacher.input_weights.dtype)
    return Data(inputs, teacher_output(teacher, inputs))


# --------------------------------------------------------------------------------------------
# The same examples, fast: the engine's inner loop.
# --------------------------------------------------------------------------------------------


def example_key(key: jax.Array) -> jax.Array:
    """The key :func:`example` folds each step into; made once, outside the loop over steps."""
    return _key(key, _EXAMPLE)


def fast_example(
    state: StreamState, targets: jax.Array, examples_key: jax.Array, step
) -> tuple[jax.Array, jax.Array]:
    """:func:`example`'s ``(x, y)``, bit for bit, with the teacher's output looked up.

    Args:
      state: the slow bits in force at ``step``.
      targets: ``exhaustive_probe(teacher, state).targets``, the teacher's output on every
        input of the current distribution (recomputed only when the slow bits change): the
        teacher's ``width x dim`` product is then paid once per change instead of per example.
      examples_key: :func:`example_key` of the stream key.
      step: int32 scalar.
    """
    n_fast = targets.shape[0].bit_length() - 1
    fast_bits = _fair_bits(jax.random.fold_in(examples_key, step), (n_fast, 1))[:, 0]
    inputs = jnp.concatenate([state.slow_bits, fast_bits]).astype(targets.dtype)
    weights = jnp.left_shift(jnp.uint32(1), jnp.arange(n_fast - 1, -1, -1, dtype=jnp.uint32))
    code = jnp.sum(jnp.where(fast_bits, weights, jnp.uint32(0)), dtype=jnp.uint32)
    return inputs, targets[code]
