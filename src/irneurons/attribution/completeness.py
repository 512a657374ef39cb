"""Per-pair completeness check of an attribution: Σ conductance + residual = F(x) − F(x') on every cut."""

from __future__ import annotations

from irneurons.errors import CompletenessError
from typing import Sequence

import numpy as np

#: Floor of the denominator of the relative completeness error.
COMPLETENESS_EPS = 1e-6

#: Defaults of the per-pair completeness check (config ``nig.max_cut_relerr``, ``nig.min_abs_delta_f``,
#: ``nig.max_bad_share``; config/schema.yaml holds the same values), see :func:`check_completeness`.
MAX_CUT_RELERR = 0.25
MIN_ABS_DELTA_F = 0.05
MAX_BAD_SHARE = 0.25


def floored_cut_relerr(result: dict, floor: float = MIN_ABS_DELTA_F, block: str = "ffn") -> np.ndarray:
    """[N, L] relative cut error |Σ units + residual − ΔF| / max(|ΔF|, floor) of ``block`` (ffn | heads).

    Unlike ``<block>_cut_relerr`` (denominator floored at :data:`COMPLETENESS_EPS`), the floor here is in
    the units of F (logits): a pair whose ΔF is near 0 is judged by its absolute error / ``floor``.
    """
    delta = np.asarray(result["f_x"], np.float64) - np.asarray(result["f_baseline"], np.float64)
    denom = np.maximum(np.abs(delta), max(float(floor), COMPLETENESS_EPS))[:, None]
    return np.abs(np.asarray(result[f"{block}_cut_sum"], np.float64) - delta[:, None]) / denom


def check_completeness(
    result: dict,
    pair_ids: Sequence | None = None,
    max_relerr: float = MAX_CUT_RELERR,
    floor: float = MIN_ABS_DELTA_F,
    max_share: float = MAX_BAD_SHARE,
    log=None,
) -> dict:
    """Per-pair completeness check of an attribution result; returns a JSON-ready report.

    A pair is *over threshold* when the median over layers of its FFN block's relative cut error
    (:func:`floored_cut_relerr` with ``floor`` on |F(x) − F(x')|) exceeds ``max_relerr`` (a NaN counts as
    over). ``log`` (e.g. ``print``) gets one line per such pair. Raises :class:`CompletenessError` with a
    one-line message naming the pairs (and their errors) when their share of the pairs exceeds ``max_share``.
    """
    n = len(result["f_x"]) if result else 0
    ids = [str(p) for p in (pair_ids if pair_ids is not None else range(n))]
    if len(ids) != n:
        raise ValueError(f"{len(ids)} pair ids for {n} pairs")
    err = np.median(floored_cut_relerr(result, floor), axis=1) if n else np.zeros(0)
    over = ~(err <= max_relerr)
    delta = np.abs(np.asarray(result["f_x"]) - np.asarray(result["f_baseline"])) if n else np.zeros(0)
    bad = {ids[i]: float(err[i]) for i in np.flatnonzero(over)}
    report = {
        "max_cut_relerr": float(max_relerr), "min_abs_delta_f": float(floor), "max_bad_share": float(max_share),
        "n_pairs": n, "n_over": len(bad), "bad_share": len(bad) / n if n else 0.0,
        "n_floored": int((delta < floor).sum()),
        "ffn_cut_relerr_median": {
            "median": float(np.median(err)) if n else None,
            "p90": float(np.quantile(err, 0.9)) if n else None,
            "max": float(err.max()) if n else None,
        },
        "over_threshold": bad,
    }
    if log is not None:
        for pid, e in bad.items():
            log(f"pair {pid}: median-over-layers FFN relative cut error {e:.3g} > nig.max_cut_relerr={max_relerr}")
    if report["bad_share"] > max_share:
        listed = ", ".join(f"{pid} ({e:.3g})" for pid, e in bad.items())
        raise CompletenessError(
            f"completeness check failed: {len(bad)} of {n} pairs ({report['bad_share']:.0%}) exceed "
            f"nig.max_cut_relerr={max_relerr} (median over layers of the FFN relative cut error, |ΔF| floored at "
            f"nig.min_abs_delta_f={floor}), more than nig.max_bad_share={max_share}: {listed}"
        )
    return report
