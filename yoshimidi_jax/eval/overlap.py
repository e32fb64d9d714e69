"""Overlapping area of two sets' distributions (Yang & Lerch 2018).

L.-C. Yang and A. Lerch, "On the evaluation of generative models in music",
Neural Computing and Applications 32, 2020 (online 2018): a set of generated
pieces is compared with a set of real pieces by the overlapping area (OA) of
two distributions, OA = integral of min(p(x), q(x)) dx, 1 for identical
distributions and 0 for disjoint ones.

* `overlapping_area(a, b)`: one figure's per-piece values in each set. Each
  set's density is a Gaussian kernel density estimate with Scott's bandwidth,
  h = std(ddof=1) * n ** (-1/5) (scipy.stats.gaussian_kde's default in 1-D),
  evaluated on one grid spanning both sets +- 4 bandwidths (4096 points),
  normalised to integrate to 1 there; min(p, q) is integrated with the
  trapezoid rule. Robust to degenerate sets: NaN/inf values are dropped; a set
  of one value, or of one repeated value, has no spread of its own and takes
  the other set's bandwidth (all zeros against mostly zeros overlap mostly);
  every bandwidth is at least 1% of the pooled range of both sets, so two
  distinct constants barely overlap and the grid resolves every kernel; both
  sets one and the same value -> 1.0; an empty set -> NaN.
* `histogram_overlap(a, b)`: two pooled histograms (the melody's interval
  histograms), sum over bins of min(a / sum(a), b / sum(b)); NaN when either
  is empty.
* `overlapping_areas(a, b)`: `overlapping_area` of every figure two
  `music_metrics.figures_of_pieces` tables share.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

GRID_POINTS = 4096
KERNEL_REACH = 4.0  # the grid spans both sets +- this many bandwidths
MIN_BANDWIDTH_OF_RANGE = 0.01  # bandwidth floor, as a share of the pooled range


def scott_bandwidth(values: np.ndarray) -> float:
    """Scott's rule, std(ddof=1) * n^(-1/5); 0 for one value or one repeated value."""
    if values.size < 2:
        return 0.0
    return float(np.std(values, ddof=1) * values.size ** (-1 / 5))


def gaussian_kde(values: np.ndarray, bandwidth: float, grid: np.ndarray) -> np.ndarray:
    """[grid] the mean of Gaussian kernels (std `bandwidth`) at `values`,
    normalised to integrate to 1 on `grid` (trapezoid)."""
    z = (grid[:, None] - values[None, :]) / bandwidth
    density = np.exp(-0.5 * z**2).mean(axis=1)
    return density / np.trapezoid(density, grid)


def overlapping_area(a: np.ndarray, b: np.ndarray, grid_points: int = GRID_POINTS) -> float:
    """OA of the KDEs of two sets of one figure's per-piece values (NaN-safe)."""
    a = np.asarray(a, np.float64).reshape(-1)
    b = np.asarray(b, np.float64).reshape(-1)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return float("nan")
    pooled = np.concatenate([a, b])
    span = float(pooled.max() - pooled.min())
    if span == 0.0:  # both sets are one and the same value
        return 1.0
    scott_a, scott_b = scott_bandwidth(a), scott_bandwidth(b)
    floor = MIN_BANDWIDTH_OF_RANGE * span
    bandwidth_a = max(scott_a if scott_a > 0 else scott_b, floor)  # a degenerate set borrows the other's
    bandwidth_b = max(scott_b if scott_b > 0 else scott_a, floor)
    reach = KERNEL_REACH * max(bandwidth_a, bandwidth_b)
    grid = np.linspace(pooled.min() - reach, pooled.max() + reach, grid_points)
    p, q = gaussian_kde(a, bandwidth_a, grid), gaussian_kde(b, bandwidth_b, grid)
    return float(np.clip(np.trapezoid(np.minimum(p, q), grid), 0.0, 1.0))


def histogram_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Sum of the bin-wise minimum of two normalised histograms; NaN when either is empty."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"histograms differ in shape: {a.shape} vs {b.shape}")
    if a.sum() <= 0 or b.sum() <= 0:
        return float("nan")
    return float(np.minimum(a / a.sum(), b / b.sum()).sum())


def overlapping_areas(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Figure name -> OA, for every figure in both tables (name -> values per piece)."""
    return {name: overlapping_area(a[name], b[name]) for name in a if name in b}
