"""The plain reference formulation, which the engine's results are checked against.

``jit(vmap(lax.scan))`` of a training loop that takes ``jax.grad`` of a plain MLP and steps an
Optax optimizer per parameter array, for full-batch ReLU classification. It starts from the same
initializations (the engine's keys under :data:`SEED` and :data:`PAIRING`) on the same data as
the engine, so the
engine must reach the same dead/alive decision for every initialization, and the same losses
and accuracy to float tolerance (:func:`compare_with_plain`, :func:`results_identical`).
:mod:`study.bench` times it beside the engine.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from study import model
from study.config import Setting
from study.data import key_streams, make_data
from study.train import draw_ids_of

SEED = 0
PAIRING = "shared"  # the benchmark's single setting draws as any setting of a study does

# "The same metrics to float tolerance": final losses of the engine and the plain formulation
# differ by rounding only (different summation order), never by more than this.
LOSS_TOLERANCE = 1e-4


class PlainResult(NamedTuple):
    """What the plain formulation records per initialization (leading axis: initializations)."""

    dead_init: jax.Array  # bool
    dead_end: jax.Array  # bool
    initial_loss: jax.Array  # float
    final_loss: jax.Array  # float
    final_accuracy: jax.Array  # float


def make_plain_train(setting: Setting):
    """``train(key, inputs, targets) -> PlainResult`` for ONE initialization, unoptimized.

    A ReLU MLP written with matmuls, ``jax.grad`` of optax's binary cross-entropy, the
    optimizer stepping each parameter array, the whole loop a ``lax.scan``. The initialization
    is the engine's (``model.init_params`` with the engine's key), so results are comparable.
    """
    structure, numeric = setting.structure, setting.numeric
    numeric = type(numeric)(*(jnp.asarray(v, jnp.float32) for v in numeric))
    if structure.activation != "relu" or structure.loss != "bce" or not structure.full_batch:
        raise ValueError("the plain formulation covers full-batch ReLU classification only")
    optimizer = optax.adam(numeric.learning_rate, b1=numeric.momentum)

    def pre_activations(params, inputs):
        hidden, layers = inputs, []
        for weights, bias in params[:-1]:
            z = weights @ hidden + bias[:, None]
            layers.append(z)
            hidden = jax.nn.relu(z)
        out_weights, out_bias = params[-1]
        return layers, (out_weights @ hidden + out_bias[:, None])[0]

    def loss(params, inputs, targets):
        logits = pre_activations(params, inputs)[1]
        return optax.sigmoid_binary_cross_entropy(logits, targets).mean()

    def network_dead(params, inputs):
        layers = pre_activations(params, inputs)[0]
        return jnp.any(jnp.stack([jnp.all(jnp.all(z <= 0, axis=-1)) for z in layers]))

    def train(key, inputs, targets) -> PlainResult:
        key_init, _ = jax.random.split(key)
        params = model.init_params(structure, numeric, key_init)

        def step(state, _):
            params, opt_state = state
            grads = jax.grad(loss)(params, inputs, targets)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        (end, _), _ = lax.scan(step, (params, optimizer.init(params)), None, structure.steps)
        logits = pre_activations(end, inputs)[1]
        return PlainResult(
            dead_init=network_dead(params, inputs),
            dead_end=network_dead(end, inputs),
            initial_loss=loss(params, inputs, targets),
            final_loss=loss(end, inputs, targets),
            final_accuracy=jnp.mean((logits > 0) == (targets > 0.5)).astype(jnp.float32),
        )

    return train


def workload_inputs(setting: Setting, n_inits: int):
    """The engine's keys and dataset for initializations ``0..n_inits-1`` of ``setting``."""
    numeric = type(setting.numeric)(*(jnp.asarray(v, jnp.float32) for v in setting.numeric))
    data_root, init_root = key_streams(np.uint32(SEED))
    data = make_data(setting.structure, numeric, data_root, None)
    setting_key = jax.random.fold_in(init_root, draw_ids_of([setting.setting_id], PAIRING)[0])
    keys = jax.vmap(lambda i: jax.random.fold_in(setting_key, i))(jnp.arange(n_inits))
    return keys, data


def compare_with_plain(runs, plain: PlainResult) -> dict[str, float]:
    """How the engine's per-initialization results differ from the plain formulation's."""
    loss_diff = np.abs(runs["final_loss"].to_numpy() - np.asarray(plain.final_loss, np.float64))
    accuracy_diff = np.abs(runs["final_accuracy"].to_numpy() - plain.final_accuracy)
    return {
        "dead_init_mismatches": int(np.sum(runs["dead_init"].to_numpy() != plain.dead_init)),
        "dead_end_mismatches": int(np.sum(runs["dead_end"].to_numpy() != plain.dead_end)),
        "accuracy_mismatches": int(np.sum(accuracy_diff > 0)),
        "max_accuracy_diff": float(accuracy_diff.max()),
        "max_final_loss_diff": float(loss_diff.max()),
        "max_initial_loss_diff": float(
            np.abs(runs["initial_loss"].to_numpy() - plain.initial_loss).max()
        ),
        "p_dead_end": float(runs["dead_end"].mean()),
    }


def results_identical(comparison: dict[str, float], n_samples: int = 256) -> bool:
    """The same dead/alive decisions, and the metrics equal to float tolerance.

    For the accuracy, float tolerance means at most one training sample classified differently:
    a logit within rounding of 0 can take either sign in two correct formulations.
    """
    return (
        comparison["dead_init_mismatches"] == 0
        and comparison["dead_end_mismatches"] == 0
        and comparison["max_accuracy_diff"] <= 1.0 / n_samples + 1e-6
        and comparison["max_final_loss_diff"] <= LOSS_TOLERANCE
        and comparison["max_initial_loss_diff"] <= LOSS_TOLERANCE
    )
