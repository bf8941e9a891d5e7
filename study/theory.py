"""Closed-form probabilities of death at initialization (derivations in ``docs/theory.md``).

A hidden ReLU unit is dead on a data set when its pre-activation is <= 0 on every input; a network
is dead when some hidden layer has all its units dead (:mod:`study.train`). The functions here
give P(network dead at init) for one setting: an exact value where one is proved, else a proved
lower and upper bound, else a note saying why there is none (:func:`p_dead_init_theory`).

Every function states its assumptions; ``tests/test_theory.py`` checks each against an independent
NumPy simulation at 4 standard errors, and the engine's Monte Carlo estimates are checked against
them. Nothing here imports JAX.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import integrate, stats

from study.config import STREAMS

NAN = float("nan")


class Theory(NamedTuple):
    """P(network dead at init) of one setting, as far as it is known.

    exact: the closed form; NaN where only bounds or nothing is known.
    lower, upper: proved bounds, given only where there is no exact value (else NaN).
    name: a short tag of the result (``"ray"``, ``"relu_2d"``, ``"bounds"``, ...); "" if none.
    note: one sentence: which result applies, or why none does.
    """

    exact: float
    lower: float
    upper: float
    name: str
    note: str


# --------------------------------------------------------------------------------------------
# One zero-bias unit on a fixed data set.
# --------------------------------------------------------------------------------------------


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


def _angle_mass(start: float, stop: float, weights: str) -> float:
    """P(angle of w in [start, stop]) for ``start <= stop <= start + 2 pi``, any real start."""
    turns, start = divmod(start, 2 * np.pi)
    stop = stop - 2 * np.pi * turns
    if stop <= 2 * np.pi:
        return float(_angle_cdf(stop, weights) - _angle_cdf(start, weights))
    wrapped = _angle_cdf(stop - 2 * np.pi, weights)
    return float(1 - _angle_cdf(start, weights) + wrapped)


def _nonzero_rows(inputs) -> np.ndarray:
    x = np.asarray(inputs, dtype=float)
    return x[np.any(x != 0, axis=1)]


def p_dead_relu_2d(inputs, weights: str = "uniform") -> float:
    """P(a zero-bias ReLU unit is dead on a 2-D data set).

    Assumptions: bias 0; weights i.i.d. U(-a, a) ('uniform', any a) or N(0, s^2) ('normal',
    any s). Inputs anywhere in the plane.

    The unit is dead iff ``w . x <= 0`` for every input, iff ``w`` lies in the polar cone of the
    data's cone. If the largest angular gap between the inputs' directions is ``G > pi``, the data
    cone is a wedge of opening ``2 pi - G`` and its polar cone the wedge of opening ``G - pi``
    facing the gap; otherwise the data cone is a half-plane or the plane and P(dead) = 0. For
    positive data with angles in [alpha, beta], the polar wedge is [beta + pi/2, alpha + 3 pi/2]:
    Gaussian weights give ``(pi - (beta - alpha)) / (2 pi)``, uniform weights the share of the
    square in the wedge. Both equal 1/4 when the data reach both axes and grow as the data's angle
    narrows: the sign pattern of the weights alone does not decide death.

    Args:
      inputs: ``float[n, 2]`` (or ``[2, n]`` when the first axis has length 2 and the second
        does not).
    """
    x = np.asarray(inputs, dtype=float)
    if x.ndim != 2 or 2 not in x.shape:
        raise ValueError(f"inputs must be [n, 2], got shape {x.shape}")
    if x.shape[1] != 2:
        x = x.T
    x = _nonzero_rows(x)
    if len(x) == 0:
        return 1.0  # every pre-activation is 0: dead
    angles = np.sort(np.mod(np.arctan2(x[:, 1], x[:, 0]), 2 * np.pi))
    gaps = np.diff(np.append(angles, angles[0] + 2 * np.pi))
    widest = int(np.argmax(gaps))
    gap = gaps[widest]
    if gap <= np.pi:
        return 0.0
    start = angles[widest] + np.pi / 2
    return _angle_mass(start, start + gap - np.pi, weights)


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


def p_dead_two_sided_layer2(width: int) -> float:
    """P(the second layer of a zero-bias ReLU net is all dead) on 1-D data on both sides of 0.

    Assumptions: 1-D inputs, some > 0 and some < 0; biases 0; weights independent, symmetric
    about 0 and continuous; first and second layers of ``width`` units.

    The first layer never dies; its outputs are ``x v+`` for x > 0 and ``|x| v-`` for x < 0, where
    ``v+`` (``v-``) is supported on the units with positive (negative) weight: disjoint supports.
    A second-layer unit is dead iff ``w . v+ <= 0`` and ``w . v- <= 0``, independent events of
    probability 1/2 each when the support is not empty. Both supports are non-empty unless all
    first-layer weights share a sign (probability ``2^(1-N)``), so with N = width::

        P = 2^(1-N) 2^-N + (1 - 2^(1-N)) 4^-N
    """
    one_sided = 2.0 ** (1 - width)
    return one_sided * 2.0**-width + (1 - one_sided) * 4.0**-width


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


# --------------------------------------------------------------------------------------------
# One zero-bias unit with Gaussian weights in any dimension: the polar cone's solid angle.
# --------------------------------------------------------------------------------------------

POLAR_MAX_DIM = 5  # above, the orthant probabilities need nested quadrature: too slow
POLAR_TOLERANCE = 1e-9  # the stated absolute error of p_dead_polar_cone (docs/theory.md, 8)
_QUAD_EPSABS = 1e-11  # the absolute error asked of the integral over all simplicial cones


def orthant_probability(correlations) -> tuple[float, float]:
    """``(sum_k P(Z_k >= 0), error)`` for ``Z_k ~ N(0, R_k)``, ``R_k`` positive definite.

    ``correlations: float[m, d, d]`` (or one ``[d, d]``) correlation matrices. Closed forms for
    d <= 3: ``2^-d + sum_{i<j} arcsin(r_ij) / (2^(d-1) pi)`` (Sheppard). For d = 4, 5, Plackett's
    reduction (Plackett 1954): along ``R(t) = I + t (R - I)``, ``dP/dt = sum_{i<j} r_ij
    phi_2(0, 0; t r_ij) P_{d-2}(Z_rest >= 0 | Z_i = Z_j = 0)``, the conditional law a centered
    normal (a (d-2)-dimensional orthant probability in closed form); the sum over k of ``dP/dt``
    is integrated from ``P(0) = 2^-d`` by adaptive quadrature, ``error`` its estimate.
    """
    r = np.asarray(correlations, dtype=float).reshape(-1, *np.shape(correlations)[-2:])
    m, d = r.shape[:2]
    if d <= 3:
        return float(np.sum(_closed_orthant(r))), 0.0
    if d > POLAR_MAX_DIM:
        raise ValueError(f"orthant probabilities are computed for d <= {POLAR_MAX_DIM}, got {d}")
    value, error, *_ = integrate.quad(
        _plackett_slope,
        0,
        np.pi / 2,
        args=(r,),
        epsabs=_QUAD_EPSABS,
        epsrel=0,
        limit=500,
        full_output=True,
    )
    return m * 2.0**-d + value, error


def _closed_orthant(r: np.ndarray) -> np.ndarray:
    """``P(Z >= 0)`` for each correlation matrix of ``r: float[m, d, d]``, d <= 3."""
    d = r.shape[1]
    upper = r[:, *np.triu_indices(d, 1)]
    return 2.0**-d + np.sum(np.arcsin(np.clip(upper, -1, 1)), axis=1) / (2 ** (d - 1) * np.pi)


def _plackett_slope(angle: float, r: np.ndarray) -> float:
    """``sum_k dP_k/dangle`` along ``R_k(t) = I + t (R_k - I)``, ``t = sin(angle)``: Plackett's
    identity times ``dt/dangle = cos(angle)``, which cancels the ``1 / sqrt(1 - t^2)`` peak of
    ``phi_2`` at t = 1 when some ``|r_ij|`` is near 1. ``r: float[m, d, d]``."""
    d, t = r.shape[1], np.sin(angle)
    r_t = np.eye(d) + t * (r - np.eye(d))
    slope = 0.0
    for i, j in zip(*np.triu_indices(d, 1), strict=True):
        pair, rest = [i, j], [k for k in range(d) if k not in (i, j)]
        across = r_t[:, rest][:, :, pair]  # [m, d-2, 2]
        rho = r_t[:, i, j]
        flip = rho[:, None, None] * (1 - np.eye(2))
        inverse = (np.eye(2) - flip) / (1 - rho**2)[:, None, None]  # [[1, -rho], [-rho, 1]] / det
        conditional = r_t[:, rest][:, :, rest] - across @ inverse @ across.transpose(0, 2, 1)
        sd = np.sqrt(np.diagonal(conditional, axis1=1, axis2=2))
        density = 1 / (2 * np.pi * np.sqrt(1 - rho**2))
        below = _closed_orthant(conditional / (sd[:, :, None] * sd[:, None, :]))
        slope += float(np.sum(r[:, i, j] * density * below))
    return slope * np.cos(angle)


def _span(x: np.ndarray) -> np.ndarray:
    """The rows ``x: float[n, d]`` in coordinates of an orthonormal basis of their span."""
    _, singular, basis = np.linalg.svd(x, full_matrices=False)
    rank = int(np.sum(singular > 1e-10 * singular[0]))
    return x @ basis[:rank].T


def _is_pointed(directions: np.ndarray) -> bool:
    """Whether some u has ``u . x > 0`` for every row (Gordan: 0 is not in their convex hull)."""
    from scipy.optimize import linprog

    n, d = directions.shape
    # maximize s subject to directions @ u >= s, |u_i| <= 1: variables (u, s)
    result = linprog(
        np.append(np.zeros(d), -1.0),
        A_ub=np.hstack([-directions, np.ones((n, 1))]),
        b_ub=np.zeros(n),
        bounds=[(-1, 1)] * d + [(None, 1)],
        method="highs",
    )
    return bool(result.status == 0 and -result.fun > 1e-12)


def _cone_facet_normals(rays: np.ndarray) -> np.ndarray:
    """Unit outward normals of the facets of a pointed full-dimensional cone, one per facet.

    The facets of the cone spanned by the unit ``rays: float[n, d]`` are the facets through the
    origin (index 0) of the convex hull of the origin and the rays.
    """
    from scipy.spatial import ConvexHull

    hull = ConvexHull(np.vstack([np.zeros(rays.shape[1]), rays]))
    through_origin = np.any(hull.simplices == 0, axis=1)
    normals = hull.equations[through_origin, :-1]
    return np.unique(np.round(normals / np.linalg.norm(normals, axis=1)[:, None], 12), axis=0)


def _simplicial_cones(rays: np.ndarray) -> list[np.ndarray]:
    """Simplicial cones ``float[d, d]`` (generators as rows) with disjoint interiors covering the
    pointed cone spanned by the unit ``rays``: the cones over the outer facets of the convex hull
    of the origin and the rays, which every ray of the cone leaves through one of."""
    from scipy.spatial import ConvexHull

    hull = ConvexHull(np.vstack([np.zeros(rays.shape[1]), rays]))
    outer = hull.simplices[~np.any(hull.simplices == 0, axis=1)]
    cones = [hull.points[simplex] for simplex in outer]
    return [g for g in cones if abs(np.linalg.det(g)) > 1e-12]


def _simplicial_correlations(cones: list[np.ndarray]) -> np.ndarray:
    """The correlations ``float[m, d, d]`` of ``lam = G^-T w`` for each cone's generators G.

    ``w ~ N(0, I_d)`` is in the cone of the rows of G iff ``w = G^T lam`` with ``lam >= 0``, and
    ``lam ~ N(0, G^-T G^-1)``: the cone's Gaussian measure is an orthant probability.
    """
    dual = np.linalg.inv(np.asarray(cones)).transpose(0, 2, 1)  # rows h_k, h_k . g_l = delta_kl
    gram = dual @ dual.transpose(0, 2, 1)
    sd = np.sqrt(np.diagonal(gram, axis1=1, axis2=2))
    return gram / (sd[:, :, None] * sd[:, None, :])


def p_dead_polar_cone(inputs) -> float:
    """P(a zero-bias ReLU unit with Gaussian weights is dead) on a data set in any dimension <= 5.

    Assumptions: bias 0; weights i.i.d. N(0, s^2) (any s): rotation invariant, so P(dead) is the
    normalized solid angle of the polar cone ``C° = {w : w . x <= 0 for every input}``.

    The data are reduced to their span (the Gaussian's other coordinates do not matter); a span
    of dimension 1 or 2 is the ray or :func:`p_dead_relu_2d`. A cone that is not pointed contains
    a line, so C° lies in a hyperplane: 0. Else C° is the cone of the data cone's facet normals;
    it is cut into simplicial cones, each an orthant probability (:func:`orthant_probability`),
    exact for d <= 3 and within ``POLAR_TOLERANCE`` (1e-9, absolute, checked) for d = 4, 5.

    Args:
      inputs: ``float[n, d]``.
    """
    x = _nonzero_rows(inputs)
    if len(x) == 0:
        return 1.0
    x = _span(x / np.linalg.norm(x, axis=1)[:, None])
    if x.shape[1] == 1:
        return 0.5 if np.all(x > 0) or np.all(x < 0) else 0.0
    if x.shape[1] == 2:
        return p_dead_relu_2d(x, "normal")
    rays = x / np.linalg.norm(x, axis=1)[:, None]
    if not _is_pointed(rays):
        return 0.0
    cones = _simplicial_cones(_cone_facet_normals(rays))
    value, error = orthant_probability(_simplicial_correlations(cones))
    if error > POLAR_TOLERANCE:
        raise ArithmeticError(f"polar cone's solid angle: error {error:.2g} > {POLAR_TOLERANCE}")
    return float(value)


# --------------------------------------------------------------------------------------------
# One unit with a random bias on 1-D or 2-D data.
# --------------------------------------------------------------------------------------------


class BiasedLaw(NamedTuple):
    """The laws of one unit's weights and bias.

    weights: ``"uniform"`` (i.i.d. U(-a, a)) or ``"normal"`` (i.i.d. N(0, s^2));
    weight_scale: a or s; bias: ``"uniform"`` (U(-beta, beta)) or ``"normal"`` (N(0, beta^2));
    bias_scale: beta > 0.
    """

    weights: str
    weight_scale: float
    bias: str
    bias_scale: float


_PHI0 = 1 / math.sqrt(2 * math.pi)  # the standard normal density at 0
_SMALL = 1e-3  # below this argument the normal-bias means use their Taylor series (cancellation)


def _mean_cdf_uniform_bias(c, radius, bias_scale, dim, weights, weight_scale):
    """E_r[F(-c r)] for c > 0, F the CDF of U(-beta, beta), r = |w| along one direction.

    ``r`` has density ``dim r^(dim-1) / R^dim`` on [0, R] (uniform weights: the square or the
    interval) or is half-normal (dim 1) / Rayleigh (dim 2) with scale s (normal weights).
    ``F(-c r) = (beta - c r) / (2 beta)`` below ``T = beta / c`` and 0 above.
    """
    beta = bias_scale
    cut = beta / c
    if weights == "uniform":
        t = np.minimum(radius, cut)
        return (beta * t**dim - c * dim * t ** (dim + 1) / (dim + 1)) / (2 * beta * radius**dim)
    s = weight_scale
    tail = np.exp(-(cut**2) / (2 * s**2))
    if dim == 1:
        mass = 2 * stats.norm.cdf(cut / s) - 1
        first = 2 * s * (_PHI0 - stats.norm.pdf(cut / s))
    else:
        mass = 1 - tail
        first = s * math.sqrt(math.pi / 2) * (2 * stats.norm.cdf(cut / s) - 1) - cut * tail
    return (beta * mass - c * first) / (2 * beta)


def _mean_cdf_normal_bias(c, radius, bias_scale, dim, weights, weight_scale):
    """E_r[Phi(-c r / sigma)] for c > 0, the bias N(0, sigma^2), r as above.

    Normal weights: ``1/2 - arctan(k)/pi`` (dim 1) and ``1/2 - k / (2 sqrt(1 + k^2))`` (dim 2),
    ``k = c s / sigma``. Uniform weights, ``u = c R / sigma``: ``(u Phi(-u) + phi(0) - phi(u)) / u``
    (dim 1) and ``Phi(-u) + (Phi(u) - 1/2 - u phi(u)) / u^2`` (dim 2).
    """
    if weights == "normal":
        k = c * weight_scale / bias_scale
        return 0.5 - np.arctan(k) / np.pi if dim == 1 else 0.5 - k / (2 * np.sqrt(1 + k**2))
    u = np.maximum(c * radius / bias_scale, _SMALL)
    if dim == 1:
        closed = (u * stats.norm.cdf(-u) + _PHI0 - stats.norm.pdf(u)) / u
        series_u = c * radius / bias_scale
        series = 0.5 - _PHI0 * (series_u / 2 - series_u**3 / 24)
    else:
        closed = stats.norm.cdf(-u) + (stats.norm.cdf(u) - 0.5 - u * stats.norm.pdf(u)) / u**2
        series_u = c * radius / bias_scale
        series = 0.5 - _PHI0 * (2 * series_u / 3 - series_u**3 / 15)
    return np.where(c * radius / bias_scale < _SMALL, series, closed)


def _mean_dead(c, radius, law: BiasedLaw, dim: int):
    """P(``r c + b <= 0``) along one direction with support value ``c`` (any sign).

    Both bias laws are symmetric, so the value at ``-c`` is one minus the value at ``c``.
    """
    c = np.asarray(c, dtype=float)
    mean = _mean_cdf_uniform_bias if law.bias == "uniform" else _mean_cdf_normal_bias
    size = np.maximum(np.abs(c), 1e-300)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore"):
        value = mean(size, radius, law.bias_scale, dim, law.weights, law.weight_scale)
    return np.where(c > 0, value, np.where(c < 0, 1 - value, 0.5))


def p_dead_biased_unit(inputs, law: BiasedLaw) -> float:
    """P(a ReLU unit with a random bias is dead) on a 1-D or 2-D data set.

    The unit is dead iff ``b <= -h(w)``, ``h(w) = max_x w . x`` (the support function of the
    data). Writing ``w = r u`` with u a direction, ``h(w) = r h(u)``, so
    ``P = E_u[ E_r[F(-r h(u))] ]`` with F the bias CDF; the inner mean is a closed form
    (:func:`_mean_cdf_uniform_bias`, :func:`_mean_cdf_normal_bias`). In 1-D, u is +1 or -1 with
    probability 1/2; in 2-D, the angle of u is uniform (normal weights) or has density
    ``R(theta)^2 / (8 a^2)`` with ``R(theta) = a / max(|cos|, |sin|)`` the square's radius
    (uniform weights), and the outer mean is a 1-D integral computed by adaptive quadrature
    (error below 1e-9), split where the maximizing input changes and at the square's corners.

    Args:
      inputs: ``float[n, dim]``, dim 1 or 2.
      law: the weights' and the bias's laws, both symmetric about 0.
    """
    x = np.asarray(inputs, dtype=float)
    if x.shape[1] == 1:
        support = np.array([x.max(), -x.min()])
        return float(np.mean(_mean_dead(support, law.weight_scale, law, 1)))
    if x.shape[1] != 2:
        raise ValueError(f"p_dead_biased_unit needs 1-D or 2-D inputs, got {x.shape[1]}-D")
    vertices = _hull_vertices(x)

    def density(theta):
        u = np.array([np.cos(theta), np.sin(theta)])
        c = float(np.max(vertices @ u))
        if law.weights == "normal":
            return float(_mean_dead(c, NAN, law, 2)) / (2 * np.pi)
        radius = law.weight_scale / max(abs(u[0]), abs(u[1]))
        weight = radius**2 / (8 * law.weight_scale**2)
        return float(_mean_dead(c, radius, law, 2)) * weight

    corners = np.pi / 4 + np.pi / 2 * np.arange(4)
    points = np.unique(np.concatenate([corners, _switch_angles(vertices)]))
    points = points[(points > 0) & (points < 2 * np.pi)]
    value, _ = integrate.quad(density, 0, 2 * np.pi, points=points, limit=500, epsabs=1e-11)
    return float(value)


def _hull_vertices(x: np.ndarray) -> np.ndarray:
    """The vertices of the inputs' convex hull in counter-clockwise order (2-D)."""
    from scipy.spatial import ConvexHull, QhullError

    try:
        return x[ConvexHull(x).vertices]
    except QhullError:  # collinear or too few points: the extreme points of the segment
        direction = x[np.argmax(np.linalg.norm(x - x[0], axis=1))] - x[0]
        along = x @ direction
        return x[[np.argmin(along), np.argmax(along)]]


def _switch_angles(vertices: np.ndarray) -> np.ndarray:
    """The directions at which the maximizing hull vertex changes: the edges' outer normals."""
    edges = np.roll(vertices, -1, axis=0) - vertices
    return np.mod(np.arctan2(-edges[:, 0], edges[:, 1]), 2 * np.pi)


# --------------------------------------------------------------------------------------------
# A whole network: the first layer's value composed with the deeper layers'.
# --------------------------------------------------------------------------------------------


class LayerDeath(NamedTuple):
    """P(a layer is all dead), exact (lower == upper) or bounded, with a tag and a sentence.

    For the first layer it is unconditional; for a deeper layer it is conditional on the layer
    below being alive (not all dead), and holds for every value of the weights below.
    """

    lower: float
    upper: float
    name: str
    note: str


def p_dead_network(first: LayerDeath, deeper: list[LayerDeath]) -> tuple[float, float]:
    """``(lower, upper)`` of P(some hidden layer all dead) from the layers' probabilities.

    The network lives iff every layer lives: ``P(alive) = (1 - p_1) prod_k (1 - p_k | alive
    below)``, increasing in none of the ``p``: so the bounds of each give the bounds of P(dead).
    """
    lower = 1 - (1 - first.lower) * math.prod(1 - layer.lower for layer in deeper)
    upper = 1 - (1 - first.upper) * math.prod(1 - layer.upper for layer in deeper)
    return lower, upper


def _exact(p: float, name: str, note: str) -> LayerDeath:
    return LayerDeath(p, p, name, note)


def first_unit_zero_bias(x: np.ndarray, weights: str) -> LayerDeath:
    """P(one zero-bias first-layer unit is dead) on the inputs ``x: float[n, d]``."""
    d = x.shape[1]
    if on_one_ray(x):
        return _exact(0.5, "ray", "inputs on one ray: a first-layer unit is dead w.p. 1/2")
    if cone_is_whole_space(x):
        return _exact(0.0, "whole_space", "the inputs' cone is R^d: the first layer never dies")
    if d == 2:
        p = p_dead_relu_2d(x, weights)
        return _exact(p, "relu_2d", f"2-D inputs: a first-layer unit is dead w.p. {p:.4g}")
    if cone_is_orthant(x):
        p = p_dead_nonnegative_bound(d)
        return _exact(p, "orthant", f"the inputs' cone is the orthant: a unit is dead w.p. 2^-{d}")
    why = "uniform weights are not rotation invariant" if weights == "uniform" else "d > 5"
    if weights == "normal" and d <= POLAR_MAX_DIM:
        try:
            p = p_dead_polar_cone(x)
            note = f"{d}-D inputs, Gaussian weights: a unit is dead w.p. {p:.4g} (polar cone)"
            return _exact(p, "polar_cone", note)
        except ArithmeticError:  # quadrature missed POLAR_TOLERANCE: keep the bounds
            why = f"polar cone's solid angle not within {POLAR_TOLERANCE:g}"
    lower = p_dead_nonnegative_bound(d) if np.all(x >= 0) else 0.0
    note = f"{d}-D inputs ({why}): a first-layer unit is dead w.p. in [{lower:.3g}, 1/2]"
    return LayerDeath(lower, 0.5, "bounds", note)


def first_unit_biased(x: np.ndarray, law: BiasedLaw) -> LayerDeath:
    """P(one first-layer unit with a random symmetric bias is dead) on ``x: float[n, d]``."""
    d = x.shape[1]
    if d <= 2:
        p = p_dead_biased_unit(x, law)
        return _exact(
            p, f"biased_{d}d", f"random {law.bias} bias: a first-layer unit is dead w.p. {p:.4g}"
        )
    lower = 2.0 ** -(d + 1) if np.all(x >= 0) else 0.0
    return LayerDeath(
        lower,
        0.5,
        "bias_bounds",
        f"random bias, {d}-D inputs: a first-layer unit is dead w.p. in [{lower:.3g}, 1/2]",
    )


def deeper_layers(x: np.ndarray, depth: int, width: int, zero_bias: bool) -> list[LayerDeath]:
    """P(layer k all dead | layer k-1 alive) for k = 2..depth (docs/theory.md, section 6)."""
    n = width
    half = 2.0**-n
    if not zero_bias:
        note = f"random bias: a deeper layer dies w.p. in [2^-{n * (n + 1)}, 2^-{n}]"
        return [LayerDeath(2.0 ** -(n * (n + 1)), half, "bias_bounds", note)] * (depth - 1)
    if on_one_ray(x):
        note = f"each deeper layer sees one ray and dies w.p. 2^-{n} (Lu et al. 2019)"
        return [_exact(half, "ray", note)] * (depth - 1)
    if n == 1:
        return [_exact(0.5, "chain", "width 1: a deeper unit dies w.p. 1/2")] * (depth - 1)
    if x.shape[1] == 1 and x.min() < 0 < x.max():
        second = _exact(
            p_dead_two_sided_layer2(n), "two_sided", "1-D inputs on both sides of 0: layer 2 exact"
        )
        later = LayerDeath(4.0**-n, half, "two_sided", f"layers 3+ die w.p. in [4^-{n}, 2^-{n}]")
        return [second] + [later] * (depth - 2)
    note = f"a deeper layer dies w.p. in [2^-{n * n}, 2^-{n}]"
    return [LayerDeath(2.0 ** -(n * n), half, "nonneg_bounds", note)] * (depth - 1)


# --------------------------------------------------------------------------------------------
# The theory of one setting, as the summary shows it.
# --------------------------------------------------------------------------------------------

# Weight inits whose weights are i.i.d., symmetric and continuous, and their law's family.
SYMMETRIC_INITS = {
    "uniform": "uniform",
    "he_uniform": "uniform",
    "glorot_uniform": "uniform",
    "kaiming_uniform": "uniform",
    "normal": "normal",
    "he_normal": "normal",
}
# Activations whose derivative is never 0 when their parameter is not 0: no unit can be dead.
NEVER_DEAD = ("leaky_relu",)
# Why the other activations have no closed form. A unit is dead when the derivative the engine
# computes is 0 on every input; these thresholds are float32's, measured on the engine's own
# derivative (study.model.activation_and_derivative).
NO_THEORY = {
    "elu": "elu'(z) = e^z > 0, but it rounds to 0 in float32 for z < -17.3, where the engine "
    "counts the unit dead: no closed form",
    "gelu": "gelu'(z) is 0 only at one point (z ~ -0.75) in exact arithmetic, and rounds to 0 in "
    "float32 for z < -4.9: no closed form",
    "silu": "silu'(z) is 0 only at one point (z ~ -1.28) in exact arithmetic, and rounds to 0 in "
    "float32 for z < -87.3: no closed form",
    "softplus": "softplus'(z) = sigmoid(z) > 0, but it rounds to 0 in float32 for z < -87.3: "
    "no closed form",
    "tanh": "tanh'(z) = 1 - tanh(z)^2 > 0, but it rounds to 0 in float32 for |z| > 8 "
    "(saturation), where the engine counts the unit dead: no closed form",
    "sigmoid": "sigmoid'(z) > 0, but it rounds to 0 in float32 for z > 16.6 or z < -87.3 "
    "(saturation): no closed form",
    "crelu": "crelu'(z) = (1 if z > 0, -1 if z < 0) is 0 in both outputs only at z = 0: a unit "
    "is dead only where its pre-activation is exactly 0 on every input (zero weights and bias, "
    "or all-zero inputs), never for the draws of a continuous init short of rounding; the ReLU "
    "closed forms do not apply",
}
# Why the inits that are not i.i.d. symmetric have no closed form.
NOT_IID = {
    "rai": "RAI: weights are not i.i.d. symmetric (one Beta(2, 1) entry per row)",
    "orthogonal": "orthogonal: a layer's rows (or columns) are orthonormal, so its units' "
    "weights are not independent",
}


def weight_law(values, fan_in: int, fan_out: int) -> tuple[str, float] | None:
    """``(family, scale)`` of a layer's weights (as in study.model), None if not i.i.d. symmetric.

    ``family`` is ``"uniform"`` (U(-a, a), scale a) or ``"normal"`` (N(0, s^2), scale s).
    """
    init = values.get("model.init", "uniform")
    scale = {
        "uniform": values.get("model.init_range", 0.05),
        "normal": values.get("model.init_range", 0.05),
        "he_uniform": math.sqrt(6.0 / fan_in),
        "he_normal": math.sqrt(2.0 / fan_in),
        "glorot_uniform": math.sqrt(6.0 / (fan_in + fan_out)),
        "kaiming_uniform": _kaiming_gain(values) * math.sqrt(3.0 / fan_in),
    }.get(init)
    if scale is None:
        return None
    return SYMMETRIC_INITS[init], float(scale)


def _kaiming_gain(values) -> float:
    """The gain of kaiming_uniform for the setting's activation (as study.model)."""
    activation = values.get("model.activation", "relu")
    if activation == "leaky_relu":
        return math.sqrt(2.0 / (1.0 + float(values.get("model.leaky_slope", 0.01)) ** 2))
    return {"tanh": 5.0 / 3.0, "sigmoid": 1.0}.get(activation, math.sqrt(2.0))


def bias_law(values) -> tuple[str, float]:
    """``(kind, scale)`` of the hidden biases: ``"zeros"``, ``"uniform"``, ``"normal"``, or
    ``"constant"``; a scale of 0 (or no bias at all) is ``("zeros", 0.0)``."""
    if not values.get("model.bias", True):
        return "zeros", 0.0
    kind = values.get("model.bias_init", "zeros")
    scale = values.get("model.bias_scale")
    if scale is None or (isinstance(scale, float) and math.isnan(scale)):
        scale = values.get("model.init_range", 0.05)
    scale = float(scale)
    if kind == "zeros" or scale == 0.0:
        return "zeros", 0.0
    return kind, abs(scale) if kind != "constant" else scale


def _none(note: str) -> Theory:
    return Theory(NAN, NAN, NAN, "", note)


def _why_not(values, inputs) -> Theory | None:
    """The Theory of a setting that needs no data set (leaky ReLU), or the reason for none."""
    activation = values.get("model.activation", "relu")
    slope = float(values.get("model.leaky_slope", 0.01))
    if int(values.get("model.depth", 1)) == 0:
        return Theory(0.0, NAN, NAN, "no_hidden_units", "depth 0: a linear model cannot die")
    if values.get("data.kind") in STREAMS:
        return _none(
            "a stream: death is judged on a probe of a changing distribution; no closed form "
            "here (the current distribution's 32 points would give one per step)"
        )
    if values.get("model.norm", "none") != "none" or values.get("model.flip_dead", False):
        return _none(
            "normalization or sign flips at init change which units are dead: no closed form"
        )
    if activation in NEVER_DEAD and slope != 0:
        note = f"leaky ReLU: the derivative is 1 or {slope:g}, never 0, so no unit is ever dead"
        return Theory(0.0, NAN, NAN, "never_dead", note)
    if activation not in ("relu", "leaky_relu"):
        return _none(NO_THEORY.get(activation, f"{activation}: no closed form"))
    init = values.get("model.init", "uniform")
    if init not in SYMMETRIC_INITS:
        return _none(NOT_IID.get(init, f"{init}: weights are not i.i.d. symmetric"))
    kind, scale = bias_law(values)
    if kind == "constant":
        return _none(f"constant bias {scale:g} != 0: no closed form")
    if inputs is None:
        return _none("training inputs unknown (redrawn per initialization, or not rebuilt)")
    return None


def p_dead_init_theory(values, inputs=None) -> Theory:
    """P(network dead at init) for one setting: exact, bounds, or why none (a :class:`Theory`).

    Tried in order: leaky ReLU with slope != 0 (exactly 0); other non-ReLU activations, RAI, a
    constant bias and unknown inputs (a note, no value); then, for ReLU (or leaky ReLU with
    slope 0) with i.i.d. symmetric weights, the first layer's exact value or bounds
    (:func:`first_unit_zero_bias`, :func:`first_unit_biased`) to the power of the width, composed
    with every deeper layer's (:func:`deeper_layers`, :func:`p_dead_network`). The result is
    exact when every layer's is.

    Args:
      values: the setting as a mapping of config keys (``"model.activation"``, ...).
      inputs: the training inputs as ``float[n_samples, dim]``, or None when unknown.
    """
    reason = _why_not(values, inputs)
    if reason is not None:
        return reason
    x = np.asarray(inputs, dtype=float)
    depth, width = int(values.get("model.depth", 1)), int(values.get("model.width", 1))
    law = weight_law(values, x.shape[1], width)
    if law is None:  # (_why_not has refused every such init already)
        return _none("weights that are not i.i.d. symmetric: no closed form")
    family, scale = law
    kind, bias_scale = bias_law(values)
    if kind == "zeros":
        unit = first_unit_zero_bias(x, family)
    else:
        unit = first_unit_biased(x, BiasedLaw(family, scale, kind, bias_scale))
    first = LayerDeath(unit.lower**width, unit.upper**width, unit.name, unit.note)
    deeper = deeper_layers(x, depth, width, kind == "zeros")
    lower, upper = p_dead_network(first, deeper)
    names = [first.name] + sorted({layer.name for layer in deeper} - {first.name})
    note = "; ".join([first.note] + list(dict.fromkeys(layer.note for layer in deeper)))
    if upper - lower <= 1e-12:
        return Theory(0.5 * (lower + upper), NAN, NAN, "+".join(names), note)
    return Theory(NAN, lower, upper, "+".join(names), note)
