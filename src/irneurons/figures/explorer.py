"""Neuron explorer: one static HTML page (no server, works from file://) for browsing a finished study.

The page lists the *selected* units (members of the non-random sets: nig_top, nig_least, contrast_top, ...)
with their mean conductance per dataset / class / part (error bars: mean ± std/sqrt(n) over pairs) and mean
|activation|; per unit a card with every set containing it and that set's pruning effect (Δ metric vs the
unpruned model per dataset and pruning target), and, when ``explorer/neuron_tokens.json`` exists, the tokens
where the unit conducts most. A second view shows the input-level token attributions of the example pairs.

All data is one JSON-serialisable dict (:func:`build`), embedded in ``index.html`` as a
``<script type="application/json">`` block; HTML, CSS and JS come from the package's ``explorer_assets``.

Data schema (lists are index-aligned with ``datasets`` / ``classes`` / ``parts`` / ``stat_fields``)::

    name, metric ("ndcg@10"), datasets, classes, parts, stat_fields ["mean", "se", "std", "n", "absact"],
    default_class, default_part (those of the selection score), unpruned {dataset: metric value},
    sets:  [{id "ffn/cranfield/nig_top/0.01[#i]", unit_type, scheme, strategy, fraction, index, members,
             selected (false: random null control), size, pruning [{dataset, target, value, delta}]}],
    units: [{id "<unit_type>:<layer>:<unit>", unit_type, layer, unit, sets [indices into sets],
             stats[dataset][class][part] = [mean, se, std, n, absact] or null,
             top_tokens null or [{pair_id, dataset, cls, position, token, part, value, length, left, right}]}],
    pairs: [{pair_id, dataset, label, f_x, f_baseline, delta, tokens, parts, attribution}],
    per_token: null (no explorer/neuron_tokens.json) or {pairs, units, provenance} (counts of that file's)

``explorer/neuron_tokens.json`` (the ``neuron_tokens`` rule, :func:`neuron_tokens_record`)::

    pairs: [{pair_id, dataset, class "relevant" | "non_relevant", tokens [str], parts [str]}],
    units: {unit id: [[pair index, position, per-token conductance], ... its TOP_TOKENS largest |values|]},
    provenance
"""

from __future__ import annotations

import hashlib
import json
import math
from importlib import resources
from pathlib import Path

import pandas as pd

from irneurons.units.unitsets import unit_id

METRIC = "ndcg@10"
CLASSES = ("relevant", "non_relevant", "all")  # as irneurons.study.aggregate.CLASSES (not imported: it pulls torch)
PARTS = ("total", "cls", "query", "sep1", "passage", "sep2", "pad")  # aggregate.PARTS, total first
RANDOM_STRATEGIES = ("random", "random_layer_matched")  # irneurons.study.selection.MULTI_STRATEGIES: null controls
STAT_FIELDS = ("mean", "se", "std", "n", "absact")
TOP_TOKENS, CONTEXT = 8, 4
ASSETS = "explorer_assets"


def _num(x, digits: int = 5):
    """A float rounded to ``digits`` significant digits (keeps the page small); None for NaN / inf / None."""
    if x is None:
        return None
    x = float(x)
    return float(f"{x:.{digits}g}") if math.isfinite(x) else None


def _load(path) -> dict:
    with open(path) as fh:
        return json.load(fh)


def read_sets(paths) -> list[dict]:
    """Every set of the selection files ``sets/<unit_type>/<scheme>/<strategy>/<fraction>.json``, one dict
    per set (a random job holds several): id, unit_type, scheme, strategy, fraction, index, members, selected
    (False for the random null controls), units [(layer, unit), ...], pruning [] (filled later)."""
    out = []
    for path in sorted(map(str, paths)):
        sel = _load(path)
        n = len(sel["sets"])
        for i, units in enumerate(sel["sets"]):
            base = f"{sel['unit_type']}/{sel['scheme']}/{sel['strategy']}/{sel['fraction']:g}"
            out.append(dict(id=base + (f"#{i + 1}" if n > 1 else ""), unit_type=sel["unit_type"],
                            scheme=sel["scheme"], strategy=sel["strategy"], fraction=float(sel["fraction"]),
                            index=i, members=list(sel.get("members", [])),
                            selected=sel["strategy"] not in RANDOM_STRATEGIES,
                            units=[(int(layer), int(u)) for layer, u in units], pruning=[]))
    return out


def attach_pruning(sets: list[dict], pruned_paths, unpruned_paths, metric: str = METRIC) -> dict:
    """Fill each set's ``pruning`` with {dataset, target, value, delta = value − unpruned} from the pruning
    results ``pruning/<dataset>/<target>/<scheme>/<strategy>/<fraction>.json`` (set i of the file is set i
    of the selection). Returns {dataset: unpruned value}."""
    unpruned = {rec["dataset"]: rec["sets"][0]["mean"][metric] for rec in map(_load, unpruned_paths)}
    by_key = {(s["unit_type"], s["scheme"], s["strategy"], s["fraction"], s["index"]): s for s in sets}
    for rec in map(_load, sorted(map(str, pruned_paths))):
        unit_type = "head" if rec["target"] == "head" else "ffn"
        for i, res in enumerate(rec["sets"]):
            s = by_key.get((unit_type, rec["scheme"], rec["strategy"], float(rec["fraction"]), i))
            if s is None or rec["dataset"] not in unpruned:
                continue
            value = res["mean"][metric]
            s["pruning"].append(dict(dataset=rec["dataset"], target=rec["target"], value=_num(value),
                                     delta=_num(value - unpruned[rec["dataset"]])))
    for s in sets:
        s["pruning"].sort(key=lambda p: (p["dataset"], p["target"]))
    return {d: _num(v) for d, v in unpruned.items()}


def selected_units(sets: list[dict]) -> list[tuple[str, int, int]]:
    """(unit_type, layer, unit) of every member of a non-random set, sorted."""
    return sorted({(s["unit_type"], layer, u) for s in sets if s["selected"] for layer, u in s["units"]})


def unit_stats(tables: dict, units, classes=CLASSES, parts=PARTS) -> dict:
    """{unit id: stats[dataset][class][part] = [mean, se, std, n, absact]} from the neuron tables (one
    DataFrame per dataset); se = std / sqrt(n), the page's error bar. Missing cells are None."""
    keys = pd.DataFrame(units, columns=["unit_type", "layer", "unit"])
    out = {unit_id(*u): [[[None] * len(parts) for _ in classes] for _ in tables] for u in units}
    for d, table in enumerate(tables.values()):
        t = table.rename(columns={"class": "cls"}).astype({"layer": int, "unit": int}).merge(keys)
        t = t[t["cls"].isin(classes) & t["part"].isin(parts)]
        se = t["std"] / t["n"].where(t["n"] > 0).pow(0.5)
        absact = t["absact_mean"] if "absact_mean" in t else pd.Series(None, index=t.index)
        for row, err, act in zip(t.itertuples(index=False), se, absact):
            cell = [_num(row.mean), _num(err), _num(row.std), int(row.n), _num(act)]
            out[unit_id(row.unit_type, row.layer, row.unit)][d][classes.index(row.cls)][parts.index(row.part)] = cell
    return out


def read_pairs(tokens: dict) -> list[dict]:
    """Input-level token attributions of the example pairs (``tokens/<dataset>.parquet``) for the pairs view:
    [{pair_id, dataset, label, f_x, f_baseline, delta, tokens, parts, attribution}] in file order."""
    out = []
    for dataset, path in tokens.items():
        frame = pd.read_parquet(path)
        for pid, g in frame.groupby("pair_id", sort=False):
            g = g.sort_values("position")
            first = g.iloc[0]
            out.append(dict(pair_id=str(pid), dataset=dataset, label=int(first["label"]), f_x=_num(first["f_x"]),
                            f_baseline=_num(first["f_baseline"]), delta=_num(first["delta"]),
                            tokens=[str(t) for t in g["token"]], parts=[str(p) for p in g["part"]],
                            attribution=[_num(a, 4) for a in g["attribution"]]))
    return out


def top_tokens(neuron_tokens: dict, ids, k: int = TOP_TOKENS, context: int = CONTEXT) -> dict:
    """{unit id: the k hits of the per-token file with the largest |conductance|}, each {pair_id, dataset, cls,
    position, token, part, value, length (of the pair), left, right} with ``context`` tokens either side.
    Units absent from the file (or without a non-zero hit) are left out."""
    pairs, out = neuron_tokens.get("pairs", []), {}
    for uid in ids:
        hits = [(pi, pos, v) for pi, pos, v in neuron_tokens.get("units", {}).get(uid, [])
                if v is not None and math.isfinite(v)]
        rows = []
        for pi, pos, v in sorted(hits, key=lambda h: (-abs(h[2]), h[0], h[1]))[:k]:
            p = pairs[pi]
            parts = p.get("parts") or [""] * len(p["tokens"])
            rows.append(dict(pair_id=p["pair_id"], dataset=p.get("dataset"), cls=p.get("class"), position=pos,
                             token=p["tokens"][pos], part=parts[pos], value=_num(v), length=len(p["tokens"]),
                             left=p["tokens"][max(0, pos - context):pos], right=p["tokens"][pos + 1:pos + 1 + context]))
        if rows:
            out[uid] = rows
    return out


def pick_pairs(pairs: pd.DataFrame, per_class: int) -> pd.DataFrame:
    """The per-token pairs of one dataset: ``per_class`` relevant (label 1), then non-relevant (label 0)
    attribution pairs, spread over queries: each query's first pair (in pair_id order) before any query's
    second. Deterministic; attribution pairs, so never a test query."""
    qid = pairs["qid"] if "qid" in pairs else pairs["pair_id"].str.split(":").str[0]
    ordered = pairs.assign(_q=qid).sort_values("pair_id", kind="stable")
    ordered = ordered.assign(_rank=ordered.groupby(["_q", "label"]).cumcount()).sort_values(["_rank", "pair_id"], kind="stable")
    picked = [ordered[ordered["label"] == label].head(per_class) for label in (1, 0)]
    return pd.concat(picked).drop(columns=["_q", "_rank"])


def neuron_tokens_record(attr, datasets, classes, provenance=None, digits: int = 4, k: int = TOP_TOKENS) -> dict:
    """``explorer/neuron_tokens.json`` from an :class:`irneurons.attribution.conductance.Attribution` computed with
    ``per_token=True, units=[...]`` (duck-typed: this module does not import torch).

    ``datasets`` / ``classes`` ("relevant" | "non_relevant"): one per pair, aligned with ``attr.pair_ids``.
    A pair's streams are concatenated (bi-encoders: the query pass's tokens, then the passage pass's), so a
    pair has one token list; ``parts`` are the model kind's part names (``attr.parts``). Returns
    ``{"pairs": [{pair_id, dataset, class, tokens, parts}], "units": {unit id: [[pair index, position, value],
    ...]}, "provenance": provenance}``: per unit its ``k`` non-zero per-token values of largest magnitude over
    all pairs (ties by pair, then position), rounded to ``digits`` significant digits. Only the hits the cards
    show are kept, so the file grows with units × k, not units × pairs × tokens (paper scale: ~10⁴ units).
    """
    ids = attr.pair_ids
    if not len(datasets) == len(classes) == len(ids):
        raise ValueError(f"{len(ids)} pairs but {len(datasets)} datasets and {len(classes)} classes")
    lengths = [[len(stream) for stream in attr.meta["tokens"][i]] for i in range(len(ids))]
    pairs = [{"pair_id": str(pid), "dataset": str(d), "class": str(c),
              "tokens": [str(t) for stream in attr.meta["tokens"][i] for t in stream],
              "parts": [attr.parts[int(p)] for stream in attr.meta["token_parts"][i] for p in stream]}
             for i, (pid, d, c) in enumerate(zip(ids, datasets, classes))]
    units = {}
    for unit_type in ("ffn", "head"):
        tok = attr.tokens(unit_type)  # [pair, stream, token, unit], right-padded per stream
        for j, uid in enumerate(tok.coords["unit"]):
            hits = [(i, pos, float(v)) for i in range(len(ids))
                    for pos, v in enumerate(v for s, n in enumerate(lengths[i]) for v in tok.values[i, s, :n, j])
                    if v != 0 and math.isfinite(v)]
            hits.sort(key=lambda h: (-abs(h[2]), h[0], h[1]))
            units[uid] = [[i, pos, _num(v, digits)] for i, pos, v in hits[:k]]
    return {"pairs": pairs, "units": units, "provenance": provenance}


def _memberships(sets: list[dict]) -> dict:
    """{(unit_type, layer, unit): [indices of the sets containing it]}."""
    out = {}
    for i, s in enumerate(sets):
        for layer, u in s["units"]:
            out.setdefault((s["unit_type"], layer, u), []).append(i)
    return out


def build(neurons: dict, sets, pruned=(), unpruned=(), tokens=None, neuron_tokens=None, name: str = "",
          metric: str = METRIC) -> dict:
    """The page's data from a study's files. ``neurons``/``tokens``: {dataset: parquet path}; ``sets``,
    ``pruned``, ``unpruned``: json paths; ``neuron_tokens``: path of explorer/neuron_tokens.json (optional:
    read if it exists). Schema: see the module docstring."""
    sets = list(sets)
    all_sets = read_sets(sets)
    unpruned_values = attach_pruning(all_sets, pruned, unpruned, metric)
    units = selected_units(all_sets)
    tables = {d: pd.read_parquet(p) for d, p in neurons.items()}
    stats = unit_stats(tables, units)
    per_token = _load(neuron_tokens) if neuron_tokens and Path(neuron_tokens).is_file() else None
    ids = [unit_id(*u) for u in units]
    hits = top_tokens(per_token, ids) if per_token else {}
    member = _memberships(all_sets)
    score = next((_load(p).get("score") for p in sets), None) or {}
    return dict(
        name=name, metric=metric, datasets=list(tables), classes=list(CLASSES), parts=list(PARTS),
        stat_fields=list(STAT_FIELDS), default_class=score.get("class", "relevant"),
        default_part=score.get("part", "total"), unpruned=unpruned_values,
        sets=[{k: v for k, v in s.items() if k != "units"} | {"size": len(s["units"])} for s in all_sets],
        units=[dict(id=uid, unit_type=u[0], layer=u[1], unit=u[2], sets=member.get(u, []), stats=stats[uid],
                    top_tokens=hits.get(uid)) for uid, u in zip(ids, units)],
        pairs=read_pairs(tokens or {}),
        per_token=None if per_token is None else dict(pairs=len(per_token.get("pairs", [])),
                                                     units=len(per_token.get("units", {})),
                                                     provenance=per_token.get("provenance")),
    )


def collect(results) -> dict:
    """:func:`build`'s keyword arguments from a results folder ``results/<name>/`` (by globbing)."""
    root = Path(results)
    return dict(
        name=root.name,
        neurons={p.stem: p for p in sorted((root / "neurons").glob("*.parquet"))},
        sets=sorted((root / "sets").glob("*/*/*/*.json")),
        pruned=sorted(p for p in (root / "pruning").glob("*/*/*/*/*.json")),
        unpruned=sorted((root / "pruning").glob("*/unpruned.json")),
        tokens={p.stem: p for p in sorted((root / "tokens").glob("*.parquet"))},
        neuron_tokens=root / "explorer" / "neuron_tokens.json",
    )


def assets_version() -> str:
    """sha256 (16 hex digits) of the page's template, CSS and JS: a rule param, so editing them rebuilds it."""
    digest = hashlib.sha256()
    for item in sorted(resources.files(__package__).joinpath(ASSETS).iterdir(), key=lambda f: f.name):
        if item.is_file():
            digest.update(item.name.encode() + b"\0" + item.read_bytes())
    return digest.hexdigest()[:16]


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(ASSETS, name).read_text(encoding="utf-8")


def render(data: dict) -> str:
    """The self-contained page: the template with CSS, JS and the data inlined ("<" escaped in the JSON so
    no string can close the script block)."""
    blob = json.dumps(data, allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")
    page = _asset("index.html").replace("/*EXPLORER_CSS*/", _asset("explorer.css"))
    page = page.replace("__EXPLORER_TITLE__", f"Neuron explorer: {data.get('name') or 'study'}".replace("<", "&lt;"))
    return page.replace("/*EXPLORER_JS*/", _asset("explorer.js")).replace("__EXPLORER_DATA__", blob)


def write(data: dict, path) -> Path:
    """Write the page to ``path`` (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(data), encoding="utf-8")
    return path


def build_explorer(results, out=None) -> Path:
    """Build the explorer of a finished study folder; written to ``<results>/explorer/index.html`` by default."""
    root = Path(results)
    return write(build(**collect(root)), out or root / "explorer" / "index.html")
