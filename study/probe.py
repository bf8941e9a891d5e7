"""The trainability probe: can a trained network still learn a new task as well as a fresh one?

At the end of training, the network is copied and trained for ``train.probe_steps`` steps on a
fresh task of the same kind, and so is a freshly initialized network of the same structure, on
the same task (Lyle et al. 2022, "Understanding and preventing capacity loss in reinforcement
learning", ICLR, probe a network's capacity with fresh targets in the same way). Per network:

* ``loss_drop``: its loss on the fresh task before the probe's steps minus after them;
* ``fresh_loss_drop``: the fresh network's;
* ``ratio``: ``loss_drop / fresh_loss_drop``; about 1 for a network that learns as well as a
  fresh one (for two independent fresh networks, ``log ratio`` is symmetric about 0), below 1 for
  one that has lost plasticity;
* ``final_loss``, ``fresh_final_loss``: the two losses on the fresh task after the probe's steps.

A drop depends on where it starts: a network trained to confidence on its own task starts a
random-label task with a larger loss than a fresh one, and can drop further while ending worse;
the final losses say where each ends.

The fresh task of a fixed training set is its inputs with its targets permuted (fresh labels with
the same label distribution: a random-label task); of a stream, a fresh stream (a fresh teacher
and fresh slow bits). Both, and the fresh network, come from the *task key*
``fold_in(key_stream, PROBE_TASK)``, where ``key_stream`` depends on the seed and the
initialization's index only (:class:`study.train.Start`): every setting at index ``i`` gets the
same fresh task (and, where it draws networks alike, the same fresh network), so settings are
compared on the same tasks, paired. The probe trains with the setting's optimizer and
learning rate (its warmup and weight decay included) from a fresh optimizer state, without a
remedy (nor ``model.flip_dead``'s flips for the fresh network); the run's own training is
untouched.
"""

from __future__ import annotations

from typing import NamedTuple

import jax

from study.data import Data

# Folded into an initialization's stream key for its probe's task key. The stream's own draws
# fold 0 to 4 into it (study.stream's purpose tags), so the task key is not one of them.
PROBE_TASK = 100
# Folded into the task key: the fresh network, a fixed set's fresh labels and its batch order.
# (A stream task uses the task key as a stream key, which folds 0 to 4.)
FRESH_NETWORK, FRESH_LABELS, FRESH_ORDER = 100, 101, 102


class Probe(NamedTuple):
    """One network's probe (floats, see the module's docstring)."""

    loss_drop: jax.Array
    fresh_loss_drop: jax.Array
    ratio: jax.Array
    final_loss: jax.Array
    fresh_final_loss: jax.Array


def task_key(key_stream: jax.Array) -> jax.Array:
    """The probe's task key of an initialization whose stream key is ``key_stream``."""
    return jax.random.fold_in(key_stream, PROBE_TASK)


def fresh_labels(data: Data, key: jax.Array) -> Data:
    """A fixed training set's fresh task: the same inputs, the targets permuted with
    ``fold_in(key, FRESH_LABELS)`` (``key``: the task key)."""
    order = jax.random.permutation(jax.random.fold_in(key, FRESH_LABELS), data.targets.shape[0])
    return Data(data.inputs, data.targets[order])


def from_losses(before: jax.Array, after: jax.Array) -> Probe:
    """The probe from the losses on the fresh task before and after its steps, each
    ``float[2]``: the network's, then the fresh network's."""
    drop = before - after
    return Probe(drop[0], drop[1], drop[0] / drop[1], after[0], after[1])
