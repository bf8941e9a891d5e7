"""Closed-form probabilities of death at initialization (derivations in ``docs/theory.md``).

Every function states its assumptions; ``tests/test_theory.py`` checks each against an independent
NumPy simulation, and the engine's Monte Carlo estimates are checked against them.
"""

from __future__ import annotations

import numpy as np


def _angle_cdf(theta, weights: str):
    """P(angle of w in [0, theta)) for w ~ U(-a, a)^2 ('uniform') or N(0, s^2 I) ('normal').

    ``theta`` in [0, 2 pi]. For the square, each quadrant holds 1/4; inside a quadrant the
    share below angle r is tan(r)/8 for r <= pi/4 and 1/4 - cot(r)/8 above (triangle areas).
    """
    theta = np.asarray(theta, dtype=float)
    if weights == "normal":
        return theta / (2 * np.pi)
    if weights != "uniform":
        raise ValueError(f"weights must be 'uniform' or 'normal', got {weights!r}")
    quadrant = np.minimum(np.floor(theta / (np.pi / 2)), 3)
    r = theta - quadrant * np.pi / 2
    with np.errstate(divide="ignore"):
        inside = np.where(r <= np.pi / 4, np.tan(r) / 8, 0.25 - 1 / (8 * np.tan(r)))
    return quadrant / 4 + inside


def p_dead_relu_2d(inputs, weights: str = "uniform") -> float:
    """P(a zero-bias ReLU unit is dead on a 2-D data set of positive features).

    Assumptions: bias 0; weights i.i.d. U(-a, a) ('uniform', any a) or N(0, s^2) ('normal',
    any s); every input in the open positive quadrant.

    The unit is dead iff ``w . x <= 0`` for every input, iff ``w`` lies in the polar cone of the
    data's cone. If the inputs' angles span [alpha, beta], that is the wedge of angles
    [beta + pi/2, alpha + 3 pi/2]. For Gaussian weights its probability is
    ``(pi - (beta - alpha)) / (2 pi)``; for uniform weights it is the share of the square in the
    wedge. Both equal 1/4 when the data reach both axes (alpha = 0, beta = pi/2) and grow as the
    data's angle narrows: the sign pattern of the weights alone does not decide death.

    Args:
      inputs: ``float[n, 2]`` (or ``[2, n]`` when the first axis has length 2 and the second
        does not), all features > 0.
    """
    x = np.asarray(inputs, dtype=float)
    if x.ndim != 2 or 2 not in x.shape:
        raise ValueError(f"inputs must be [n, 2], got shape {x.shape}")
    if x.shape[1] != 2:
        x = x.T
    if not np.all(x > 0):
        raise ValueError("p_dead_relu_2d needs every feature > 0")
    angles = np.arctan2(x[:, 1], x[:, 0])
    alpha, beta = angles.min(), angles.max()
    cdf = _angle_cdf(alpha + 1.5 * np.pi, weights) - _angle_cdf(beta + 0.5 * np.pi, weights)
    return float(cdf)


def p_dead_ray(width: int, depth: int) -> float:
    """P(a zero-bias ReLU network is dead at init) when all inputs lie on one ray from the origin.

    Assumptions: every input is ``t * u`` with t > 0 and one direction u; biases 0; weights
    independent, symmetric about 0 and continuous; ``depth`` hidden layers of ``width`` units.

    Each layer's output is then ``t`` times one non-negative vector, so each unit of the next
    layer is dead with probability 1/2, independently; a layer dies with probability 2^-width, and
    the network (some layer all dead) with ``1 - (1 - 2^-width)^depth`` (Lu et al. 2019).
    """
    return 1.0 - (1.0 - 2.0**-width) ** depth


def p_dead_nonnegative_bound(n_inputs: int) -> float:
    """Lower bound ``2^-n`` on P(a zero-bias ReLU unit fed by n non-negative inputs is dead).

    Assumptions: bias 0; the n weights independent, symmetric about 0 and continuous; every
    input vector in the closed non-negative orthant (e.g. the outputs of a ReLU layer of width n).

    If every weight is <= 0, then ``w . x <= 0`` for every non-negative x: the unit is dead. That
    event has probability 2^-n, so P(dead) >= 2^-n. The bound is exact when the closure of the
    cone spanned by the inputs is the whole orthant (e.g. the data contain every axis direction):
    then ``w . e_i <= 0`` for every i is also necessary. For a narrower cone P(dead) is larger.
    """
    return 2.0**-n_inputs


def p_dead_layer(p_unit: float, width: int) -> float:
    """P(all ``width`` units of one layer are dead) when each is dead independently w.p. p_unit.

    Assumptions: the layer's weight rows are independent and the layer's input is fixed (the data
    for the first layer), so the units' death events are independent.
    """
    return float(p_unit) ** width


def in_cone(inputs, direction) -> bool:
    """Whether ``direction`` is a non-negative combination of the rows of ``inputs: float[n, d]``.

    Solved as the linear feasibility problem ``inputs.T @ lam = direction, lam >= 0``.
    """
    from scipy.optimize import linprog

    x = np.asarray(inputs, dtype=float)
    result = linprog(
        np.zeros(x.shape[0]),
        A_eq=x.T,
        b_eq=np.asarray(direction, dtype=float),
        bounds=(0, None),
        method="highs",
    )
    return bool(result.status == 0)


def on_one_ray(inputs) -> bool:
    """Whether every row of ``inputs: float[n, d]`` is ``t u`` for one unit vector u and t > 0."""
    x = np.asarray(inputs, dtype=float)
    norms = np.linalg.norm(x, axis=1)
    if np.any(norms == 0):
        return False
    directions = x / norms[:, None]
    return bool(np.allclose(directions, directions[0], rtol=0, atol=1e-6))


def cone_is_whole_space(inputs) -> bool:
    """Whether the inputs' rows span R^d as a cone (every ``+-e_i`` a non-negative combination).

    Then for every nonzero ``w`` some input has ``w . x > 0``: a zero-bias ReLU unit fed by these
    inputs is alive unless ``w = 0``, an event of probability 0 for continuous weights.
    """
    x = np.asarray(inputs, dtype=float)
    eye = np.eye(x.shape[1])
    return all(in_cone(x, sign * e) for e in eye for sign in (1.0, -1.0))


def cone_is_orthant(inputs) -> bool:
    """Whether the inputs are non-negative and their cone contains every axis direction ``e_i``."""
    x = np.asarray(inputs, dtype=float)
    return bool(np.all(x >= 0)) and all(in_cone(x, e) for e in np.eye(x.shape[1]))


# Weight inits whose first-layer weights are i.i.d., symmetric and continuous, and which of the
# two planar laws (a square or a rotation-invariant Gaussian) the 2-D formula needs.
SYMMETRIC_INITS = {
    "uniform": "uniform",
    "he_uniform": "uniform",
    "glorot_uniform": "uniform",
    "normal": "normal",
    "he_normal": "normal",
}
# Activations whose derivative is never 0: no unit can be dead.
NEVER_DEAD = ("leaky_relu",)


def _zero_bias(values) -> bool:
    if not values.get("model.bias", True):
        return True
    scheme = values.get("model.bias_init", "zeros")
    if scheme == "zeros":
        return True
    scale = values.get("model.bias_scale")
    return scale is not None and float(scale) == 0.0


def p_dead_init_theory(values, inputs=None) -> tuple[float, str]:
    """The closed-form P(network dead at init) for one setting, and the formula's name.

    Returns ``(nan, "")`` when no formula applies. The formulas tried, in order:

    * ``leaky_relu`` with slope > 0: the derivative is never 0, so P = 0 (``"never_dead"``).
    * ReLU, zero bias, i.i.d. symmetric continuous weights (not ``rai``), and the inputs known:
      - all inputs on one ray: :func:`p_dead_ray` (``"ray"``), any depth and width;
      - one hidden layer, inputs whose cone is all of R^d (centered, full-dimensional cloud):
        P = 0 (``"whole_space"``);
      - one hidden layer, 2-D positive inputs: :func:`p_dead_relu_2d` to the power width
        (``"relu_2d"``);
      - one hidden layer, inputs whose cone is the non-negative orthant: ``2^-(d width)``
        (``"orthant"``).

    Args:
      values: the setting as a mapping of config keys (``"model.activation"``, ...).
      inputs: the training inputs as ``float[n_samples, dim]``, or None when unknown (then only
        the data-free formula is tried).
    """
    activation = values.get("model.activation", "relu")
    if activation in NEVER_DEAD and float(values.get("model.leaky_slope", 0.01)) > 0:
        return 0.0, "never_dead"
    if activation != "relu" or inputs is None or not _zero_bias(values):
        return float("nan"), ""
    planar_law = SYMMETRIC_INITS.get(values.get("model.init", "uniform"))
    if planar_law is None:
        return float("nan"), ""
    x = np.asarray(inputs, dtype=float)
    depth, width = int(values.get("model.depth", 1)), int(values.get("model.width", 1))
    if on_one_ray(x):
        return p_dead_ray(width, depth), "ray"
    if depth != 1:
        return float("nan"), ""
    if x.shape[1] == 2 and np.all(x > 0):
        return p_dead_layer(p_dead_relu_2d(x, planar_law), width), "relu_2d"
    if cone_is_whole_space(x):
        return 0.0, "whole_space"
    if cone_is_orthant(x):
        return p_dead_layer(p_dead_nonnegative_bound(x.shape[1]), width), "orthant"
    return float("nan"), ""
