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
