"""Figures, drawn from tables on disk only (never recomputes attributions). Each function saves a PNG and
returns the matplotlib Figure (tests inspect its axes and series).

- :func:`layer_distribution`: where a scheme's top units sit, as % of each layer's units, per class.
- :func:`part_distribution`: the same for FFN neurons ranked by the NIG of one token part at a time.
- :func:`overlap_heatmap`: Jaccard of the top sets of datasets and schemes, chance level marked.
- :func:`pruning_curves`: ΔnDCG@10 vs pruned fraction per strategy; random strategies = mean ± sd band over sets.
- :func:`completeness`: per-pair relative cut error distribution; F(x) − F(x') vs Σ NIG.
- :func:`token_view`: input-level IG per token of example pairs (PNG, and an HTML rendering).
"""

from __future__ import annotations

import html
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9,
                     "figure.dpi": 100, "savefig.bbox": "tight"})

UNIT_LABEL = {"ffn": "FFN neurons", "head": "attention heads"}
CLASS_LABEL = {"relevant": "relevant pairs", "non_relevant": "non-relevant pairs", "all": "all pairs"}
STRATEGY_STYLE = {  # colour, marker
    "nig_top": ("#d62728", "o"), "contrast_top": ("#ff7f0e", "^"), "nig_negative": ("#2ca02c", "v"),
    "nig_least": ("#17becf", "<"), "magnitude": ("#9467bd", "s"), "random": ("#7f7f7f", "D"),
    "random_layer_matched": ("#bcbd22", "d"),
}


def _save(fig, path, dpi: int):
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return fig


def layer_distribution(table: pd.DataFrame, path, *, part: str = "total", dpi: int = 150):
    """Grouped bars: per layer, the % of the layer's units in each scheme's top set.

    ``table``: :func:`irneurons.figures.tables.layer_distribution_table` rows. Panels: unit types (rows) × classes
    (columns); one bar per scheme.
    """
    table = table[table["part"] == part]
    unit_types = [u for u in ("ffn", "head") if u in set(table["unit_type"])]
    classes = [c for c in ("relevant", "non_relevant", "all") if c in set(table["class"])]
    schemes = list(dict.fromkeys(table["scheme"]))
    fig, axes = plt.subplots(len(unit_types), len(classes), figsize=(4.6 * len(classes), 3.2 * len(unit_types)),
                             squeeze=False, sharex=True)
    width = 0.8 / len(schemes)
    colors = plt.cm.tab10(np.arange(len(schemes)) % 10)
    for i, unit in enumerate(unit_types):
        for j, cls in enumerate(classes):
            ax = axes[i, j]
            sub = table[(table["unit_type"] == unit) & (table["class"] == cls)]
            for s, scheme in enumerate(schemes):
                g = sub[sub["scheme"] == scheme].sort_values("layer")
                if g.empty:
                    continue
                ax.bar(g["layer"] + (s - (len(schemes) - 1) / 2) * width, 100 * g["share"], width, color=colors[s],
                       label=f"{scheme} ({int(g['count'].iloc[0])})")
            frac = sub["fraction"].iloc[0] if len(sub) else float("nan")
            ax.axhline(100 * frac, color="black", lw=0.8, ls="--")
            ax.set_title(f"top {100 * frac:g} % of {UNIT_LABEL.get(unit, unit)}, {CLASS_LABEL.get(cls, cls)}")
            ax.set_ylabel("% of the layer's units selected")
            ax.set_xlabel("layer")
            ax.set_xticks(sorted(sub["layer"].unique()))
            if j == len(classes) - 1:
                ax.legend(title="scheme (units)", loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.suptitle(f"Where the top units sit (part: {part}; dashed: the share a uniform choice would give)", y=1.02)
    fig.tight_layout()
    return _save(fig, path, dpi)


def part_distribution(table: pd.DataFrame, path, *, scheme: str = "fusion-all", unit_type: str = "ffn",
                      cls: str = "relevant", dpi: int = 150):
    """Lines per token part: % of each layer's units in the top set ranked by that part's NIG."""
    sub = table[(table["scheme"] == scheme) & (table["unit_type"] == unit_type) & (table["class"] == cls)]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for part, g in sub.groupby("part", sort=False):
        g = g.sort_values("layer")
        ax.plot(g["layer"], 100 * g["share"], marker="o", lw=2 if part == "total" else 1.2,
                ls="-" if part == "total" else "--", label=part)
    frac = sub["fraction"].iloc[0] if len(sub) else float("nan")
    ax.axhline(100 * frac, color="black", lw=0.8, ls=":")
    ax.set_xlabel("layer")
    ax.set_ylabel("% of the layer's units selected")
    ax.set_xticks(sorted(sub["layer"].unique()))
    ax.set_title(f"Top {100 * frac:g} % {UNIT_LABEL.get(unit_type, unit_type)} by token part ({scheme}, {CLASS_LABEL.get(cls, cls)})")
    ax.legend(title="ranked by NIG of", loc="upper left", bbox_to_anchor=(1.01, 1))
    return _save(fig, path, dpi)


def overlap_heatmap(table: pd.DataFrame, path, *, dpi: int = 150):
    """Heat-map of pairwise Jaccard (``table``: :func:`irneurons.figures.tables.overlap_table`), cells annotated; the
    chance level is marked on the colour bar and in the title."""
    schemes = list(dict.fromkeys(table["a"]))
    mat = table.pivot(index="a", columns="b", values="jaccard").loc[schemes, schemes]
    chance = float(table["chance"].iloc[0])
    unit, frac = table["unit_type"].iloc[0], table["fraction"].iloc[0]
    size = 1.0 + 0.75 * len(schemes)
    fig, ax = plt.subplots(figsize=(size + 1.6, size))
    im = ax.imshow(mat.to_numpy(), vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(schemes)), schemes, rotation=40, ha="right")
    ax.set_yticks(range(len(schemes)), schemes)
    for i in range(len(schemes)):
        for j in range(len(schemes)):
            v = mat.iloc[i, j]
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.6 else "black", fontsize=9)
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("Jaccard of the top sets")
    bar.ax.axhline(chance, color="red", lw=2)
    bar.ax.text(1.6, chance, " chance", color="red", va="center", transform=bar.ax.get_yaxis_transform(), fontsize=9)
    ax.set_title(f"Overlap of the top {100 * frac:g} % {UNIT_LABEL.get(unit, unit)} (chance {chance:.3f})")
    return _save(fig, path, dpi)


def _stars(p: float) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def pruning_curves(table: pd.DataFrame, path, *, measure: str = "nDCG@10", dpi: int = 150):
    """ΔnDCG@10 vs % pruned, one panel per (dataset, target) and scheme line styles; the random strategies as
    the mean over their sets with a ±1 sd band; markers starred where the (unadjusted, exploratory) t-test vs
    unpruned has p < 0.05 — the confirmatory tests are in the claims table.

    ``table``: :func:`irneurons.study.claims.comparisons` rows (only comparison == "unpruned" is used). With a single
    fraction in the grid the figure is :func:`pruning_strips` instead (a curve needs two points).
    """
    vs = table[table["comparison"] == "unpruned"].copy()
    if vs["fraction"].nunique() == 1:
        return pruning_strips(table, path, measure=measure, dpi=dpi)
    vs["family"] = vs["strategy"]
    panels = list(dict.fromkeys(zip(vs["dataset"], vs["target"])))
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.8 * ncols, 3.6 * nrows), squeeze=False)
    schemes = list(dict.fromkeys(vs["scheme"]))
    dashes = ["-", "--", ":", "-."]
    for ax, (dataset, target) in zip(axes.flat, panels):
        sub = vs[(vs["dataset"] == dataset) & (vs["target"] == target)]
        for si, scheme in enumerate(schemes):
            for family, g in sub[sub["scheme"] == scheme].groupby("family", sort=False):
                color, marker = STRATEGY_STYLE.get(family, ("black", "x"))
                agg = g.groupby("fraction").agg(delta=("delta", "mean"), sd=("delta", "std"), p=("t_p", "min"),
                                                seeds=("delta", "size")).reset_index()
                x = 100 * agg["fraction"]
                label = family if scheme == schemes[0] else f"{family} ({scheme})"
                ax.plot(x, agg["delta"], color=color, marker=marker, ls=dashes[si % len(dashes)], label=label)
                if family.startswith("random") and (agg["seeds"] > 1).any():
                    ax.fill_between(x, agg["delta"] - agg["sd"].fillna(0), agg["delta"] + agg["sd"].fillna(0),
                                    color=color, alpha=0.2, lw=0)
                elif not family.startswith("random"):
                    for xi, yi, p in zip(x, agg["delta"], agg["p"]):
                        if _stars(p):
                            ax.annotate(_stars(p), (xi, yi), textcoords="offset points", xytext=(4, 4), color=color,
                                        fontsize=9)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xscale("log")
        ticks = sorted(100 * sub["fraction"].unique())
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel(f"% of {UNIT_LABEL.get(target.split('-')[0], target)} pruned" +
                      (f" ({target.split('-', 1)[1]} tokens)" if "-" in target else ""))
        ax.set_ylabel(f"Δ{measure} vs unpruned")
        ax.set_title(dataset)
        ax.legend(loc="lower left")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle("Pruning: random sets = mean ± 1 sd over sets; * p < 0.05 vs unpruned (unadjusted)", y=1.01)
    fig.tight_layout()
    return _save(fig, path, dpi)


def scheme_label(scheme: str, dataset: str) -> str:
    """``own`` for the evaluated dataset's own set, ``loo`` for its leave-one-out set, else the scheme."""
    return "own" if scheme == dataset else "loo" if scheme == f"loo-{dataset}" else scheme


def pruning_strips(table: pd.DataFrame, path, *, measure: str = "nDCG@10", dpi: int = 150):
    """ΔnDCG@10 of every pruned set vs unpruned, one panel per (dataset, target, fraction), one row per
    (scheme, strategy): single sets as large markers starred by their (unadjusted) t-test p, null sets as
    one small dot per set with their mean ± sd."""
    vs = table[table["comparison"] == "unpruned"].copy()
    vs["row"] = [f"{scheme_label(r.scheme, r.dataset)} · {r.strategy}" for r in vs.itertuples()]
    panels = list(dict.fromkeys(zip(vs["dataset"], vs["target"], vs["fraction"])))
    rows = sorted(set(vs["row"]), key=lambda r: (r.split(" · ")[0] != "own", r.split(" · ")[0],
                                                  list(STRATEGY_STYLE).index(r.split(" · ")[1])
                                                  if r.split(" · ")[1] in STRATEGY_STYLE else 99))
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 0.32 * len(rows) + 1.6), squeeze=False,
                             sharey=True)
    y = {r: i for i, r in enumerate(rows)}
    for ax, (dataset, target, fraction) in zip(axes.flat, panels):
        sub = vs[(vs["dataset"] == dataset) & (vs["target"] == target) & (vs["fraction"] == fraction)]
        for row, g in sub.groupby("row"):
            strategy = row.split(" · ")[1]
            color, marker = STRATEGY_STYLE.get(strategy, ("black", "x"))
            if strategy.startswith("random"):
                ax.scatter(g["delta"], np.full(len(g), y[row]), s=14, color=color, alpha=0.7, zorder=3)
                sd = g["delta"].std(ddof=1) if len(g) > 1 else 0.0
                ax.errorbar(g["delta"].mean(), y[row], xerr=sd, fmt="|", color="black", ms=12, capsize=3, zorder=4)
            else:
                ax.scatter(g["delta"], [y[row]], s=60, color=color, marker=marker, zorder=4)
                stars = _stars(g["t_p"].iloc[0])
                if stars:
                    ax.annotate(stars, (g["delta"].iloc[0], y[row]), textcoords="offset points", xytext=(6, -3),
                                fontsize=9)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(range(len(rows)), rows)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.grid(axis="x", alpha=0.3)
        unit = UNIT_LABEL.get(target.split("-")[0], target)
        ax.set_title(f"{dataset}: {100 * fraction:g} % of {unit}" + (f" ({target.split('-', 1)[1]} tokens)"
                                                                   if "-" in target else ""))
        ax.set_xlabel(f"Δ{measure} vs unpruned")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle("Pruning: each dot a random set (bar: mean ± 1 sd); * p < 0.05 vs unpruned (unadjusted)", y=1.02)
    fig.tight_layout()
    return _save(fig, path, dpi)


def completeness(tables: dict[str, pd.DataFrame], path, *, dpi: int = 150):
    """Left: ECDF of the per-pair max-over-layers relative cut error (log x). Right: F(x) − F(x') against the
    cut sum Σ NIG + residual at the worst layer, with the identity line.

    ``tables``: {label (e.g. dataset or estimator/steps): completeness table from the aggregate rule}.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    lo, hi = np.inf, -np.inf
    for label, t in tables.items():
        err = np.sort(np.clip(t["ffn_cut_relerr_max"].to_numpy(), 1e-8, None))
        left.step(err, np.arange(1, len(err) + 1) / len(err), where="post",
                  label=f"{label} (median {np.median(err):.1%})")
        delta = t["f_x"] - t["f_baseline"]
        right.scatter(delta, t["ffn_cut_sum_worst"], s=12, alpha=0.7, label=label)
        lo, hi = min(lo, delta.min(), t["ffn_cut_sum_worst"].min()), max(hi, delta.max(), t["ffn_cut_sum_worst"].max())
    left.set_xscale("log")
    left.set_xlabel("relative cut error |Σ NIG + residual − ΔF| / |ΔF| (worst layer)")
    left.set_ylabel("fraction of pairs ≤ x")
    left.set_title("Completeness per pair (FFN cut)")
    left.legend(loc="lower right")
    right.plot([lo, hi], [lo, hi], color="black", lw=0.8, ls="--", label="y = x")
    right.set_xlabel("F(x) − F(x')  (target units)")
    right.set_ylabel("Σ NIG + residual, worst layer")
    right.set_title("Conductance sums to the score difference")
    right.legend(loc="upper left")
    fig.tight_layout()
    return _save(fig, path, dpi)


def _token_colors(values: np.ndarray, scale: float):
    """Red for positive, blue for negative attribution, alpha ∝ |value| / scale."""
    out = []
    for v in values:
        a = min(1.0, abs(v) / scale) if scale > 0 else 0.0
        out.append((0.84, 0.15, 0.16, a) if v >= 0 else (0.12, 0.47, 0.71, a))
    return out


def _flow(tokens, width: float):
    """Line breaks for tokens laid out left to right: [(line, x, token index)], widths ∝ characters + padding."""
    out, line, x = [], 0, 0.0
    for i, tok in enumerate(tokens):
        w = len(tok) + 1.5
        if x > 0 and x + w > width:
            line, x = line + 1, 0.0
        out.append((line, x, i))
        x += w
    return out


def token_view(tokens: pd.DataFrame, png_path, html_path, *, chars_per_line: int = 110, dpi: int = 150):
    """Coloured tokens of each example pair (red: raises the relevance score, blue: lowers it).

    ``tokens``: rows (pair_id, label, f_x, position, token, attribution) from the token_attributions rule.
    Tokens flow left to right and wrap at ``chars_per_line`` characters.
    """
    pairs = list(dict.fromkeys(tokens["pair_id"]))
    blocks, n_lines = [], 0.0
    for pid in pairs:
        g = tokens[tokens["pair_id"] == pid].sort_values("position")
        layout = _flow(list(g["token"]), chars_per_line)
        blocks.append((pid, g, layout))
        n_lines += layout[-1][0] + 1 + 1.6 if layout else 1.6
    fig, ax = plt.subplots(figsize=(12, 0.32 * n_lines + 0.6))
    ax.set_xlim(0, chars_per_line + 4)
    ax.set_ylim(n_lines, 0)
    ax.axis("off")
    y = 0.0
    html_rows = ["<html><head><meta charset='utf-8'><title>token attributions</title></head><body style='font-family:"
                 "sans-serif'>", "<p>Integrated gradients of the relevance score w.r.t. the word embeddings. "
                 "Red raises the score, blue lowers it; opacity ∝ |attribution| within the pair.</p>"]
    for pid, g, layout in blocks:
        scale = float(np.abs(g["attribution"]).max())
        label = "relevant" if int(g["label"].iloc[0]) == 1 else "non-relevant"
        title = f"pair {pid} ({label}, F(x) = {float(g['f_x'].iloc[0]):.2f}, Σ attribution = {g['attribution'].sum():.2f})"
        ax.text(0, y + 0.6, title, fontsize=10, fontweight="bold", va="center")
        html_rows.append(f"<h4>{html.escape(title)}</h4><p style='line-height:1.9'>")
        y += 1.4
        colors = _token_colors(g["attribution"].to_numpy(), scale)
        toks, vals = list(g["token"]), list(g["attribution"])
        for line, x, i in layout:
            ax.text(x + 0.2, y + line + 0.5, toks[i], fontsize=9, va="center", ha="left",
                    bbox=dict(boxstyle="round,pad=0.15", fc=colors[i], ec="none"))
            c = colors[i]
            rgba = f"rgba({int(c[0] * 255)},{int(c[1] * 255)},{int(c[2] * 255)},{c[3]:.2f})"
            html_rows.append(f"<span title='{vals[i]:+.4f}' style='background:{rgba};padding:1px 2px'>"
                             f"{html.escape(toks[i])}</span> ")
        y += (layout[-1][0] + 1 if layout else 0) + 0.2
        html_rows.append("</p>")
    html_rows.append("</body></html>")
    with open(html_path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(html_rows))
    return _save(fig, png_path, dpi)
