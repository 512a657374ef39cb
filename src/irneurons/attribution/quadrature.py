"""Quadrature rules along the NIG path and the planning of path points into batched forwards.

A rule gives the points α ∈ [0, 1] of one pair's straight path γ(α) = e(x') + α (e(x) − e(x')) and how
the integrand samples combine (node weights, a difference rule, or a spectral differentiation matrix);
:func:`plan_chunks` packs every pair's points into forwards of bounded size (the memory budget).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ESTIMATORS = ("riemann_right", "riemann_left", "trapezoid", "gauss_legendre", "chebyshev_lobatto",
              "captum_riemann_right")

#: Default memory budget, rows × tokens per forward: 32 rows of 128 tokens on CPU (MiniLM-L6 peaks
#: well under 4 GiB RSS; bigger batches do not run faster on a CPU), 128 rows on a GPU.
DEFAULT_BUDGET = {"cpu": 4096, "cuda": 16384}


def default_budget(device) -> int:
    """Rows × tokens per forward for ``device`` (:data:`DEFAULT_BUDGET`)."""
    return DEFAULT_BUDGET.get(device.type, DEFAULT_BUDGET["cpu"])


@dataclass(frozen=True)
class Quadrature:
    """Points α of one pair's path and how they combine.

    ``weights`` set: node rule, Cond ≈ Σ_i w_i g_i·ȧ_i (needs tangents). ``weights`` None: difference
    rule over consecutive points with the gradient taken at ``grad_side`` ('right', 'left', 'trap').
    """

    alphas: np.ndarray
    weights: np.ndarray | None = None
    grad_side: str | None = None
    #: spectral rules: ȧ at the nodes = ``diff`` @ (a at the nodes), per pair (no forward-mode pass)
    diff: np.ndarray | None = None

    @property
    def is_node_rule(self) -> bool:
        return self.weights is not None

    @property
    def needs_tangents(self) -> bool:
        """Node rules whose ȧ comes from forward-mode AD (not from the nodes' own activations)."""
        return self.is_node_rule and self.diff is None


def chebyshev_lobatto(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Chebyshev–Gauss–Lobatto nodes on [0, 1], Clenshaw–Curtis weights and the spectral differentiation matrix.

    x_j = cos(π j / n), j = 0..n, mapped to α_j = (1 − x_j)/2 (so α_0 = 0, α_n = 1); w_j integrate the degree-n
    interpolant exactly (Clenshaw–Curtis, halved for [0, 1]); D_ij = d ℓ_j/dα (α_i) of the Lagrange basis
    (Trefethen's ``cheb``, times dx/dα = −2): (D a)_i is the exact derivative of the polynomial interpolating a at
    the nodes, spectrally accurate for analytic a.
    """
    if n < 1:
        raise ValueError("chebyshev_lobatto needs n ≥ 1 (n + 1 nodes)")
    j = np.arange(n + 1)
    x = np.cos(np.pi * j / n)
    c = np.where((j == 0) | (j == n), 2.0, 1.0) * (-1.0) ** j
    dx = x[:, None] - x[None, :]
    d = np.outer(c, 1.0 / c) / (dx + np.eye(n + 1))
    d -= np.diag(d.sum(axis=1))
    # Clenshaw–Curtis weights on [-1, 1] (Trefethen, "Spectral Methods in MATLAB", clencurt)
    theta = np.pi * j / n
    w = np.zeros(n + 1)
    v = np.ones(n - 1)
    inner = j[1:-1]
    if n % 2 == 0:
        w[0] = w[n] = 1.0 / (n**2 - 1)
        for k in range(1, n // 2):
            v -= 2.0 * np.cos(2 * k * theta[inner]) / (4 * k**2 - 1)
        v -= np.cos(n * theta[inner]) / (n**2 - 1)
    else:
        w[0] = w[n] = 1.0 / n**2
        for k in range(1, (n - 1) // 2 + 1):
            v -= 2.0 * np.cos(2 * k * theta[inner]) / (4 * k**2 - 1)
    w[inner] = 2.0 * v / n
    return (1.0 - x) / 2.0, w / 2.0, -2.0 * d


def quadrature(estimator: str, steps: int) -> Quadrature:
    """Points (and weights) for an estimator with ``steps`` intervals / nodes."""
    if steps < 1:
        raise ValueError("steps must be ≥ 1")
    if estimator in ("riemann_right", "riemann_left", "trapezoid"):
        side = {"riemann_right": "right", "riemann_left": "left", "trapezoid": "trap"}[estimator]
        return Quadrature(np.arange(steps + 1, dtype=np.float64) / steps, grad_side=side)
    if estimator == "gauss_legendre":
        x, w = np.polynomial.legendre.leggauss(steps)
        return Quadrature((x + 1.0) / 2.0, weights=w / 2.0)
    if estimator == "chebyshev_lobatto":
        alphas, weights, diff = chebyshev_lobatto(steps)
        return Quadrature(alphas, weights=weights, diff=diff)
    if estimator == "captum_riemann_right":
        import torch

        # Same floats as captum: torch.linspace(1/n, 1, n).tolist() with n = steps + 1.
        n = steps + 1
        return Quadrature(np.array(torch.linspace(1 / n, 1, n).tolist(), dtype=np.float64), grad_side="left")
    raise ValueError(f"unknown estimator {estimator!r}; choose one of {ESTIMATORS}")


def plan_chunks(n_pairs: int, n_points: int, rows_per_chunk: int, overlap: bool,
                whole_pairs: bool = False) -> list[list[tuple[int, int, int]]]:
    """Pack every pair's points into chunks of at most ``rows_per_chunk`` rows.

    A chunk is a list of segments (pair, start, stop): points start..stop-1 of that pair. A pair may
    be split over chunks; with ``overlap`` (difference rules) consecutive segments share one point so
    each interval lies inside one segment. Chunks are filled completely before starting a new one.
    ``whole_pairs`` (spectral rules, which differentiate over all of a pair's nodes): every pair's points
    lie in one chunk (a chunk then holds max(1, rows_per_chunk // n_points) pairs).
    """
    if whole_pairs:
        per_chunk = max(1, rows_per_chunk // n_points)
        return [[(p, 0, n_points) for p in range(i, min(i + per_chunk, n_pairs))] for i in range(0, n_pairs, per_chunk)]
    min_seg = 2 if overlap else 1
    if rows_per_chunk < min_seg:
        raise ValueError(f"budget allows {rows_per_chunk} rows per forward, need at least {min_seg}")
    chunks, current, room = [], [], rows_per_chunk
    for pair in range(n_pairs):
        start = 0
        while True:
            if room < min_seg:
                chunks.append(current)
                current, room = [], rows_per_chunk
            stop = min(n_points, start + room)
            current.append((pair, start, stop))
            room -= stop - start
            if stop == n_points:
                break
            start = stop - 1 if overlap else stop
    if current:
        chunks.append(current)
    return chunks
