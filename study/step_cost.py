"""What XLA itself counts for one training step: the step compiled alone and its cost analysis.

The engine's step (:func:`study.train.make_step`, the same code the engine's loop runs) is
compiled for ``n_inits`` initializations at once, outside any loop, and XLA's cost analysis of
that program gives its floating-point operations and its ``bytes accessed``: the bytes every
top-level operation (a fusion, a library call) reads and writes, as if each went through
memory. That is the traffic of the step as compiled, unlike the floor that
:func:`study.bench_structures.bytes_per_step` counts from the structure. XLA's analysis does not
multiply a loop's body by its trip count, hence the step is compiled alone rather than the
engine's whole program; inside the engine's loop XLA may fuse it a little differently.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from study import continual_backprop, model
from study.config import Setting
from study.data import Data
from study.remedies import TrainState
from study.train import make_optimizer, make_step

STEP_INITS = 512  # initializations the step is compiled for (the counts are per initialization)


class StepCost(NamedTuple):
    """XLA's count for one step of one initialization: ``flops`` (its elementwise and dot
    operations; exp and the like counted apart as ``transcendentals``) and ``bytes``."""

    flops: float
    transcendentals: float
    bytes: float


def step_cost(setting: Setting, n_inits: int = STEP_INITS) -> StepCost:
    """XLA's cost analysis of :func:`study.train.make_step` for ``setting``, compiled for
    ``n_inits`` initializations (vmapped) on one batch of ``train.batch_size`` samples (all
    of them, full batch), divided by ``n_inits``."""
    structure = setting.structure
    numeric = jax.tree.map(lambda v: jnp.asarray(v, structure.dtype), setting.numeric)
    n_params = sum(int(np.prod(shape)) for layer in model.leaf_shapes(structure) for shape in layer)
    n = structure.n_samples if structure.full_batch else structure.batch_size

    def one_step(params: jax.Array, key: jax.Array, batch: Data) -> TrainState:
        optimizer = make_optimizer(structure.optimizer, numeric)
        step = make_step(structure, numeric, optimizer, params, key)
        units = continual_backprop.initial_units(structure)
        state = TrainState(params, optimizer.init(params), units)
        return step(state, batch, jnp.int32(1))[0]

    # Arguments, not constants: XLA would fold a step on constant data into something smaller.
    params = jax.ShapeDtypeStruct((n_inits, n_params), structure.dtype)
    keys = jax.eval_shape(lambda: jax.random.split(jax.random.key(0), n_inits))
    batch = (
        jax.ShapeDtypeStruct((structure.dim, n), structure.dtype),
        jax.ShapeDtypeStruct((n,), structure.dtype),
    )
    run = jax.vmap(lambda p, k, b: one_step(p, k, Data(*b)), in_axes=(0, 0, None))
    analysis = jax.jit(run).lower(params, keys, batch).compile().cost_analysis()
    cost: dict = (analysis[0] if isinstance(analysis, list) else analysis) or {}
    if "bytes accessed" not in cost:
        raise RuntimeError(f"XLA's cost analysis of the step has no 'bytes accessed': {cost}")
    return StepCost(
        flops=cost.get("flops", 0.0) / n_inits,
        transcendentals=cost.get("transcendentals", 0.0) / n_inits,
        bytes=cost["bytes accessed"] / n_inits,
    )
