"""The machine's measured peak: float32 arithmetic and memory bandwidth, as XLA reaches them.

Three short microbenchmarks, run in the calling process on every local device at once (the
arrays sharded along their only axis, so that each device works on its own part):

* **arithmetic**: arrays small enough for the L1/L2 caches (``ARITHMETIC_ELEMENTS`` float32 per
  device), each element carried through ``CHAINS`` independent chains of ``DEPTH`` fused
  multiply-adds ``c <- a c + b`` (independent chains, so that the FMA units are not waiting for
  the previous result), inside a ``lax.fori_loop``. One multiply-add counts as 2 floating-point
  operations, as usual.
* **matrix product**: ``c <- a @ c`` with ``MATMUL_SIZE`` square float32 matrices per device (in
  L2), ``2 MATMUL_SIZE^3`` operations each: XLA hands a product to a tuned library kernel, which
  can go faster than its own elementwise loops. The peak is the faster of the two.
* **memory**: ``y = a x + b`` over ``STREAM_ELEMENTS`` float32 in all, far larger than the caches;
  each call reads ``x`` once and writes ``y`` once, in place: ``8 * STREAM_ELEMENTS`` bytes.

Each reports the best of ``repeats`` timed calls (compile excluded): the rate the machine reaches
when nothing else is in the way, which is what a share of the peak should be measured against.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

ARITHMETIC_ELEMENTS = 4096  # float32 per device: 16 KiB, in any L1
CHAINS = 8  # independent multiply-add chains per element
DEPTH = 64  # multiply-adds per chain per loop iteration
MATMUL_SIZE = 256  # a float32 [256, 256] @ [256, 256] per device: 768 KiB, in L2
STREAM_ELEMENTS = 2**26  # float32 in all: 256 MiB read and 256 MiB written per call


class Peak(NamedTuple):
    """The measured peak: ``flops_per_s`` (float32, an FMA = 2: the faster of the
    elementwise chains and the matrix product) and ``bytes_per_s`` (read + written,
    streaming), with the sizes that measured them."""

    flops_per_s: float
    elementwise_flops_per_s: float
    matmul_flops_per_s: float
    bytes_per_s: float
    devices: int
    arithmetic_elements: int
    stream_elements: int


def _sharded(values: np.ndarray) -> jax.Array:
    """``values`` split along axis 0 over every local device."""
    mesh = Mesh(np.array(jax.local_devices()), ("devices",))
    return jax.device_put(values, NamedSharding(mesh, PartitionSpec("devices")))


def _best_seconds(call, repeats: int) -> float:
    """The shortest of ``repeats`` timed calls of ``call`` (after one untimed call)."""
    jax.block_until_ready(call())
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(call())
        best = min(best, time.perf_counter() - start)
    return best


def _chains_of_fma(values: jax.Array, iterations: int) -> jax.Array:
    """``iterations`` x ``CHAINS`` x ``DEPTH`` multiply-adds per element, then the chains summed."""
    a, b = jnp.float32(0.999), jnp.float32(0.001)  # c -> 1: no overflow, no denormals

    def body(_, chains):
        for _ in range(DEPTH):
            chains = tuple(c * a + b for c in chains)
        return chains

    start = tuple(values + jnp.float32(k) for k in range(CHAINS))
    chains = jax.lax.fori_loop(0, iterations, body, start)
    total = chains[0]
    for chain in chains[1:]:
        total = total + chain
    return total


def arithmetic_flops_per_s(iterations: int = 400, repeats: int = 5) -> float:
    """Float32 operations per second of :func:`_chains_of_fma` on every local device at once."""
    n_devices = len(jax.local_devices())
    values = _sharded(np.zeros(ARITHMETIC_ELEMENTS * n_devices, np.float32))
    run = jax.jit(_chains_of_fma, static_argnums=1)
    seconds = _best_seconds(lambda: run(values, iterations), repeats)
    flops = values.size * (2 * CHAINS * DEPTH * iterations + 2 * CHAINS - 1)
    return flops / seconds


def matmul_flops_per_s(iterations: int = 40, repeats: int = 5) -> float:
    """Float32 operations per second of ``c <- a @ c``, ``MATMUL_SIZE`` square, per device."""
    n_devices, size = len(jax.local_devices()), MATMUL_SIZE
    a = _sharded(np.full((n_devices, size, size), 1 / size, np.float32))  # keeps c bounded
    c = _sharded(np.ones((n_devices, size, size), np.float32))

    def products(a, c):
        return jax.lax.fori_loop(0, iterations, lambda _, c: jnp.einsum("bij,bjk->bik", a, c), c)

    run = jax.jit(products)
    seconds = _best_seconds(lambda: run(a, c), repeats)
    return n_devices * iterations * 2 * size**3 / seconds


def stream_bytes_per_s(elements: int = STREAM_ELEMENTS, repeats: int = 5) -> float:
    """Bytes read and written per second by ``a x + b`` over ``elements`` float32."""
    n_devices = len(jax.local_devices())
    elements -= elements % n_devices
    # In place (the input donated): a fresh output would be page-faulted in on every call.
    run = jax.jit(lambda x: x * jnp.float32(0.5) + jnp.float32(0.25), donate_argnums=0)
    values = run(_sharded(np.ones(elements, np.float32)))
    nbytes = values.nbytes
    best = math.inf
    for _ in range(repeats):
        jax.block_until_ready(values)
        start = time.perf_counter()
        values = jax.block_until_ready(run(values))
        best = min(best, time.perf_counter() - start)
    return 2 * nbytes / best


def measure_peak(quick: bool = False) -> Peak:
    """The three microbenchmarks (``quick``: smaller, for a smoke test; a few seconds otherwise,
    compiles included). Sized for a CPU: on an accelerator the in-cache arrays are too small to
    fill it, and the peak comes out low."""
    iterations = 40 if quick else 400
    elements = STREAM_ELEMENTS // 16 if quick else STREAM_ELEMENTS
    elementwise = arithmetic_flops_per_s(iterations)
    matmul = matmul_flops_per_s(iterations // 10)
    return Peak(
        flops_per_s=max(elementwise, matmul),
        elementwise_flops_per_s=elementwise,
        matmul_flops_per_s=matmul,
        bytes_per_s=stream_bytes_per_s(elements),
        devices=len(jax.local_devices()),
        arithmetic_elements=ARITHMETIC_ELEMENTS,
        stream_elements=elements,
    )
