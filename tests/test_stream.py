"""The slowly-changing regression stream (study.stream): exact flips, fresh fast bits, the teacher
against NumPy, and bit-for-bit reproducibility under chunking, jit, vmap and float64."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from study import runtime, stream
from tests.helpers import standard_errors

DIM, N_FLIPPING, WIDTH, BETA = 20, 15, 100, 0.7
N_STEPS = 3000

# Jitted once here: run op by op, each call would compile every primitive anew.
probe = jax.jit(stream.probe, static_argnames="probe_size")


@functools.partial(jax.jit, static_argnames=("n_steps", "flip_one", "convention", "dtype"))
def run_from(key, state, start, n_steps, flip_every, flip_one, convention, dtype):
    """The teacher of ``key`` and its stream's examples ``start .. start + n_steps - 1``, from
    ``state``; ``start`` and ``flip_every`` are traced, so most tests share one compile."""
    teacher = stream.make_teacher(key, DIM, WIDTH, BETA, dtype, convention)
    steps = start + jnp.arange(n_steps, dtype=jnp.int32)
    state, data = stream.examples(teacher, state, key, steps, flip_every, flip_one)
    return teacher, state, data


def run(key, flip_every, n_steps=N_STEPS, flip_one=True, convention="paper", dtype=jnp.float32):
    """A stream's teacher and its first ``n_steps`` examples as NumPy arrays."""
    state = stream.initial_bits(key, N_FLIPPING)
    teacher, _, data = run_from(
        key, state, jnp.int32(0), n_steps, jnp.int32(flip_every), flip_one, convention, dtype
    )
    return teacher, np.asarray(data.inputs), np.asarray(data.targets)


def numpy_teacher(teacher, inputs):
    """The teacher of ``inputs: float[dim, n]`` computed in NumPy from its weights."""
    w, b, theta, v, c = (np.asarray(a, dtype=np.float64) for a in teacher)
    on = (w @ inputs + b[:, None]) > theta[:, None]
    return v @ on + c


def slow_changes(inputs):
    """``int[n - 1]``: how many slow bits changed from each example to the next."""
    slow = inputs[:N_FLIPPING]
    return (slow[:, 1:] != slow[:, :-1]).sum(axis=0)


def test_one_slow_bit_flips_at_each_multiple_of_flip_every_and_none_between():
    key = jax.random.key(0)
    state = stream.initial_bits(key, N_FLIPPING)
    # From step 0 with T = 7, and across the first change of the default T = 10,000.
    for flip_every, start in [(7, 0), (10_000, 8_500)]:
        _, _, data = run_from(
            key, state, jnp.int32(start), N_STEPS, jnp.int32(flip_every), True, "paper", jnp.float32
        )
        changes = slow_changes(np.asarray(data.inputs))
        step = np.arange(start + 1, start + N_STEPS)
        np.testing.assert_array_equal(changes, (step % flip_every == 0).astype(int))
        assert changes.sum() == (start + N_STEPS - 1) // flip_every


def test_the_flipped_bit_is_uniform():
    _, inputs, _ = run(jax.random.key(1), flip_every=1)  # a flip at every step after the first
    slow = inputs[:N_FLIPPING]
    flipped = np.argmax(slow[:, 1:] != slow[:, :-1], axis=0)
    counts = np.bincount(flipped, minlength=N_FLIPPING)
    n = flipped.size
    tolerance = 4 * n * standard_errors(1 / N_FLIPPING, n)
    assert np.all(np.abs(counts - n / N_FLIPPING) < tolerance), counts


def test_redraw_mode_changes_the_slow_bits_only_at_multiples_and_half_of_them_on_average():
    flip_every = 5
    _, inputs, _ = run(jax.random.key(2), flip_every, flip_one=False)
    changes = slow_changes(inputs)
    at_multiple = np.arange(1, N_STEPS) % flip_every == 0
    assert np.all(changes[~at_multiple] == 0)
    redraws = changes[at_multiple]  # Binomial(15, 1/2) each
    tolerance = 4 * np.sqrt(N_FLIPPING / 4 / redraws.size)
    assert abs(redraws.mean() - N_FLIPPING / 2) < tolerance


def test_fast_bits_are_fresh_fair_coins():
    _, inputs, _ = run(jax.random.key(3), flip_every=10_000)
    fast = inputs[N_FLIPPING:]
    assert set(np.unique(inputs)) == {0.0, 1.0}
    for share, n in [
        (fast.mean(), fast.size),
        ((fast[:, 1:] != fast[:, :-1]).mean(), fast[:, 1:].size),
    ]:
        assert abs(share - 0.5) < 4 * standard_errors(0.5, n), share


@pytest.mark.parametrize("convention", stream.CONVENTIONS)
def test_teacher_weights_are_fair_signs_and_thresholds_as_defined(convention):
    teacher = run(jax.random.key(4), 100, convention=convention)[0]
    w, b, theta, v, c = (np.asarray(a, dtype=np.float64) for a in teacher)
    assert w.shape == (WIDTH, DIM) and b.shape == theta.shape == v.shape == (WIDTH,)
    signs = np.concatenate([w.ravel(), b, v])
    assert set(np.unique(signs)) == {-1.0, 1.0}
    assert abs((signs > 0).mean() - 0.5) < 4 * standard_errors(0.5, signs.size)
    if convention == "paper":
        negatives = (w == -1).sum(axis=1) + (b == -1)  # among all m + 1 input weights
        assert c == 0.0
    else:
        negatives = (DIM - w.sum(axis=1) + b) / 2  # lop/nets/fix_ltu_net.py, line 35
        assert c in (-1.0, 1.0)
    np.testing.assert_allclose(theta, (DIM + 1) * BETA - negatives, rtol=0, atol=1e-5)


def test_conventions_share_their_weights():
    key = jax.random.key(5)
    paper, code = (run(key, 100, convention=c)[0] for c in stream.CONVENTIONS)
    for name in ("input_weights", "input_bias", "output_weights"):
        np.testing.assert_array_equal(getattr(paper, name), getattr(code, name))


@pytest.mark.parametrize("convention", stream.CONVENTIONS)
def test_targets_equal_numpy(convention):
    teacher, inputs, targets = run(jax.random.key(6), 100, convention=convention)
    np.testing.assert_array_equal(targets, numpy_teacher(teacher, inputs))
    assert targets.std() > 0  # the check is not vacuous
    single = stream.teacher_output(teacher, jnp.asarray(inputs[:, 0]))
    assert single.shape == () and single == targets[0]


def test_paper_units_fire_within_hamming_distance_of_their_preferred_input():
    """The paper's threshold, stated without it: a unit is on when the m + 1 inputs (the constant
    1 included) differ from its preferred input (1 for weight +1, 0 for -1) in fewer than
    (m + 1)(1 - beta) = 6.3 places."""
    teacher, inputs, targets = run(jax.random.key(7), flip_every=100)
    w, b, v = (np.asarray(a) for a in (teacher.input_weights, teacher.input_bias, teacher[3]))
    preferred = (w > 0).astype(float)
    distance = (preferred[:, :, None] != inputs[None]).sum(axis=1) + (b < 0)[:, None]
    on = distance < (DIM + 1) * (1 - BETA)
    assert 0 < on.mean() < 1
    np.testing.assert_array_equal(targets, v @ on)


def test_same_key_same_stream_and_different_keys_different_streams():
    a, b, other = (run(jax.random.key(k), flip_every=50) for k in (8, 8, 9))
    for x, y in zip(a[0], b[0], strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])
    assert not np.array_equal(a[0].input_weights, other[0].input_weights)
    assert not np.array_equal(a[1][:N_FLIPPING, 0], other[1][:N_FLIPPING, 0])
    assert (a[1][N_FLIPPING:] != other[1][N_FLIPPING:]).mean() > 0.4


def test_chunks_give_the_bits_of_one_run():
    key, flip_every, half = jax.random.key(10), jnp.int32(70), N_STEPS // 2
    state = stream.initial_bits(key, N_FLIPPING)
    _, end, whole = run_from(
        key, state, jnp.int32(0), N_STEPS, flip_every, True, "paper", jnp.float32
    )
    _, middle, first = run_from(
        key, state, jnp.int32(0), half, flip_every, True, "paper", jnp.float32
    )
    _, end_2, second = run_from(
        key, middle, jnp.int32(half), half, flip_every, True, "paper", jnp.float32
    )
    np.testing.assert_array_equal(end.slow_bits, end_2.slow_bits)
    np.testing.assert_array_equal(whole.inputs, np.concatenate([first.inputs, second.inputs], 1))
    np.testing.assert_array_equal(whole.targets, np.concatenate([first.targets, second.targets]))


def test_jit_and_vmap_over_keys_give_the_unvmapped_bits():
    flip_every, probe_size = jnp.int32(25), 16

    def one_stream(key):
        state = stream.initial_bits(key, N_FLIPPING)
        teacher, state, data = run_from(
            key, state, jnp.int32(0), N_STEPS, flip_every, True, "paper", jnp.float32
        )
        return teacher, data, probe(teacher, state, key, jnp.int32(N_STEPS), probe_size)

    keys = jax.random.split(jax.random.key(11), 4)
    batched = jax.jit(jax.vmap(one_stream))(keys)
    for i in range(keys.shape[0]):
        single = one_stream(keys[i])
        for got, want in zip(jax.tree.leaves(batched), jax.tree.leaves(single), strict=True):
            np.testing.assert_array_equal(got[i], want)


def test_float64_sees_the_float32_stream():
    flip_every = 40
    single = run(jax.random.key(12), flip_every)
    with runtime.precision("float64"):
        double = run(jax.random.key(12), flip_every, dtype=jnp.float64)
        assert double[1].dtype == np.float64 and double[0].thresholds.dtype == jnp.float64
    assert not jax.config.jax_enable_x64  # off again after the scope
    np.testing.assert_array_equal(single[1], double[1])
    np.testing.assert_array_equal(single[2], double[2])


def test_probe_draws_from_the_current_distribution_with_keys_of_its_own():
    key, probe_size, n_steps = jax.random.key(13), 4000, N_STEPS
    teacher, inputs, _ = run(key, flip_every=100)
    state = stream.StreamState(jnp.asarray(inputs[:N_FLIPPING, -1] > 0.5))
    data = probe(teacher, state, key, jnp.int32(n_steps - 1), probe_size)
    probe_inputs = np.asarray(data.inputs)
    assert probe_inputs.shape == (DIM, probe_size)
    np.testing.assert_array_equal(
        probe_inputs[:N_FLIPPING], np.repeat(inputs[:N_FLIPPING, -1:], probe_size, axis=1)
    )
    fast = probe_inputs[N_FLIPPING:]
    assert abs(fast.mean() - 0.5) < 4 * standard_errors(0.5, fast.size)
    np.testing.assert_array_equal(data.targets, numpy_teacher(teacher, probe_inputs))
    # Not the examples' key: the first probe column of each step matches that step's example in
    # all 5 fast bits with probability 1/32, not always.
    first_column = jax.jit(jax.vmap(lambda t: stream.probe(teacher, state, key, t, 1).inputs[:, 0]))
    probe_fast = np.asarray(first_column(jnp.arange(64, dtype=jnp.int32))).T[N_FLIPPING:]
    assert (probe_fast == inputs[N_FLIPPING:, :64]).all(axis=0).mean() < 0.5
    other = probe(teacher, state, key, jnp.int32(n_steps), probe_size)
    assert not np.array_equal(other.inputs, data.inputs)


def test_exhaustive_probe_lists_every_fast_pattern_once():
    key = jax.random.key(14)
    teacher = run(key, 100)[0]
    state = stream.initial_bits(key, N_FLIPPING)
    data = jax.jit(stream.exhaustive_probe)(teacher, state)
    inputs = np.asarray(data.inputs)
    n_fast = DIM - N_FLIPPING
    assert inputs.shape == (DIM, 2**n_fast)
    np.testing.assert_array_equal(inputs[:N_FLIPPING].T, np.broadcast_to(state.slow_bits, (32, 15)))
    codes = (inputs[N_FLIPPING:].T * 2 ** np.arange(n_fast - 1, -1, -1)).sum(axis=1)
    np.testing.assert_array_equal(codes, np.arange(2**n_fast))
    np.testing.assert_array_equal(data.targets, numpy_teacher(teacher, inputs))


def test_bad_arguments_are_refused():
    key = jax.random.key(15)
    with pytest.raises(ValueError, match="convention"):
        stream.make_teacher(key, convention="nature")
    teacher = run(key, 100)[0]
    with pytest.raises(ValueError, match="do not fit"):
        stream.example(teacher, stream.initial_bits(key, DIM + 1), key, 0)


def test_fast_examples_are_the_examples():
    """The engine's lookup (fast_example) gives example()'s inputs and targets bit for bit."""
    key = jax.random.key(11)
    teacher = stream.make_teacher(key, dim=20)
    state = stream.initial_bits(key, 15)
    examples_key = stream.example_key(key)

    @jax.jit
    def both(state, step):
        state = stream.step_bits(state, key, step, 7)
        table = stream.exhaustive_probe(teacher, state).targets
        return (
            state,
            stream.example(teacher, state, key, step),
            stream.fast_example(state, table, examples_key, step),
        )

    for step in range(40):
        state, (x, y), (x_fast, y_fast) = both(state, jnp.int32(step))
        np.testing.assert_array_equal(x, x_fast)
        assert float(y) == float(y_fast)
