"""The trainability probe (study.probe, train.probe_one): a fresh network probes like a fresh
network, and a dead network learns with its output layer alone. (That the run is untouched by
the probe, and that settings are probed alike, is tests/test_plasticity.py's, on a run it
shares with the metrics' tests.)"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from study import model, probe, train
from study.config import make_setting
from study.data import make_data

PROBE_STEPS = 20


def _regression(**changes):
    """A small regression setting's (structure, numeric): 1-D function data, mse, adam, the
    probe on."""
    values = dict(
        data_kind="function",
        data_dim=1,
        data_n_samples=32,
        model_width=4,
        model_init="he_uniform",
        model_bias_init="uniform",
        train_loss="mse",
        train_learning_rate=0.01,  # every drop of the test's networks positive (see below)
        train_probe_steps=PROBE_STEPS,
    )
    setting = make_setting(**{**values, **changes})
    # the numbers as the engine passes them: float32 arrays (the optimizer reads their dtype)
    numeric = type(setting.numeric)(*(np.float32(value) for value in setting.numeric))
    return setting.structure, numeric


def _stream_root():
    """The root of the initializations' stream keys under seed 0 (as study.train.make_start)."""
    data_root, _ = jax.random.split(jax.random.key(0))
    return jax.random.fold_in(data_root, train.STREAM_DRAWS)


N_PROBED = 400


@functools.partial(jax.jit, static_argnums=0)
def _probe_many(structure, numeric, params):
    """``probe_one`` of the initializations of indices ``0..n-1`` under seed 0 (their stream
    keys) on the setting's data, ``params: float[n, n_params]`` the flat parameters each probes:
    ``(Probe of [n], the data)``. (One compile for the tests' one structure and ``n``.)"""
    data = make_data(structure, numeric, jax.random.split(jax.random.key(0))[0], None)

    def one(index, flat):
        key_stream = jax.random.fold_in(_stream_root(), index)
        return train.probe_one(structure, numeric, data, key_stream, flat)

    return jax.vmap(one)(jnp.arange(params.shape[0], dtype=jnp.int32), params), data


def test_a_fresh_network_probes_like_a_fresh_network():
    """A freshly drawn network (independent of the probe's fresh one) against the probe's fresh
    network on the same tasks: the mean paired difference of their loss drops is 0, and so is
    the mean log ratio (for two independent fresh networks log ratio is symmetric about 0; the
    mean ratio itself is not 1, E[X/Y] > 1 by Jensen), each within 4 standard errors."""
    structure, numeric = _regression()

    def fresh(key):
        return model.flatten(model.init_params(structure, numeric, key))

    n = N_PROBED
    networks = jax.vmap(fresh)(jax.random.split(jax.random.key(12345), n))
    probed, _ = _probe_many(structure, numeric, networks)
    difference = np.asarray(probed.loss_drop - probed.fresh_loss_drop, np.float64)
    log_ratio = np.log(np.asarray(probed.ratio, np.float64))
    assert np.all(probed.ratio > 0)  # (a larger rate makes a few drops negative)
    for values in (difference, log_ratio):
        standard_error = values.std(ddof=1) / np.sqrt(n)
        assert abs(values.mean()) <= 4 * standard_error, (values.mean(), standard_error)
    # ... and the probe does tell networks apart: the drops vary from network to network
    assert np.std(difference) > 0


def _adam_on_a_constant(start: float, targets: np.ndarray, numeric, steps: int) -> float:
    """The squared error after ``steps`` of Adam (Kingma and Ba 2015, Algorithm 1, in float64)
    on a constant prediction ``b`` from ``start``: the output layer alone on zero features."""
    rate, b1, b2, eps = float(numeric.learning_rate), float(numeric.momentum), 0.999, 1e-8
    targets = targets.astype(np.float64)
    b, m, v = start, 0.0, 0.0
    for t in range(1, steps + 1):
        g = np.mean(2 * (b - targets))
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        b -= rate * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return float(np.mean((b - targets) ** 2))


def test_a_dead_network_probes_as_its_output_layer_alone():
    """One hidden layer, every unit dead on the inputs: no gradient reaches the hidden layer or
    the output weights, so the probe trains the output bias alone. Its loss drop equals Adam's
    (written out in float64) on that one bias with the fresh labels, float32 rounding apart."""
    structure, numeric = _regression()
    layers = model.init_params(structure, numeric, jax.random.key(1))
    (weights, bias), (out_weights, out_bias) = layers
    dead = (
        (jnp.zeros_like(weights), jnp.full_like(bias, -1.0)),  # z = -1 on every input
        (out_weights, out_bias + 0.3),
    )

    networks = jnp.broadcast_to(model.flatten(dead), (N_PROBED, model.flatten(dead).shape[0]))
    probed, data = _probe_many(structure, numeric, networks)
    for index in range(3):
        key_stream = jax.random.fold_in(_stream_root(), index)
        targets = np.asarray(probe.fresh_labels(data, probe.task_key(key_stream)).targets)
        assert not np.array_equal(targets, np.asarray(data.targets))  # a fresh task
        after = _adam_on_a_constant(float(dead[1][1][0]), targets, numeric, PROBE_STEPS)
        before = float(np.mean((float(dead[1][1][0]) - targets.astype(np.float64)) ** 2))
        # float32 rounding: a relative eps per sample of a loss's sum and per step of the bias
        # (each step's rounding carried through the later ones), relative to the losses' size
        tolerance = float(np.finfo(np.float32).eps) * (len(targets) + PROBE_STEPS) * before
        assert abs(float(probed.loss_drop[index]) - (before - after)) <= tolerance
        assert abs(float(probed.final_loss[index]) - after) <= tolerance
