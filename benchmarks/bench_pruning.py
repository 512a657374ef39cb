"""Pruned re-ranking throughput vs unpruned (not a test). Prints ratios measured in one run on the same pairs.

The pruning hooks multiply the FFN activations (or head contexts) of the pruned layers by a 0/1 mask, so
pruned scoring should run within 10 % of unpruned scoring (target: throughput ratio ≥ 0.90). Variants:
1 % and 5 % of FFN neurons at every token, 1 % at the passage's tokens only (builds the part mask per
batch), 5 % of the heads. Repeats are interleaved (unpruned, variant, unpruned, ...) and the median taken.

Many masks per job (``--sets R``): R random FFN sets scored by one process that loads the model and tokenizes
once (:func:`irneurons.study.pruning.pruned_scores_many`, what a `random` pruning job does) against R separate
processes that each start Python, import torch/transformers, load the model, tokenize and score one set (what
R single-set jobs cost, without Snakemake's own overhead). Prints sets/s of both and their ratio.

    python benchmarks/bench_pruning.py --pairs 512 --threads 2 --bf16 auto
    python benchmarks/bench_pruning.py --model results/default/model/hf   # a fine-tuned model folder
    python benchmarks/bench_pruning.py --sets 8 --pairs 256 --threads 1 --sections masks
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time

import numpy as np
import torch

from irneurons.rankers import loading as M
from irneurons.rankers import parts
from irneurons.rankers.options import ScoringOptions
from irneurons.units import hooks as units
from irneurons.numerics import resolve_bf16
from irneurons.study.pruning import pruned_scores
from irneurons.study.selection import random_units


def synthetic_pairs(tokenizer, n: int, seed: int = 0):
    """n (query, passage) pairs of random word pieces: 4–16-word queries, 60–200-word passages."""
    rng = np.random.default_rng(seed)
    vocab = [w for w in tokenizer.get_vocab() if w.isalpha() and len(w) > 2]
    words = lambda k: " ".join(rng.choice(vocab, size=k))
    return [words(rng.integers(4, 17)) for _ in range(n)], [words(rng.integers(60, 201)) for _ in range(n)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=M.PYPI_MINILM, help="model reference (default: the PyPI MiniLM, 1-logit head)")
    ap.add_argument("--pairs", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--bf16", default="false", help="auto | true | false (default false: fp32)")
    ap.add_argument("--sets", type=int, default=8, help="random sets of the many-masks section")
    ap.add_argument("--sections", default="hooks,masks", help="comma-separated: hooks (pruned vs unpruned), masks")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = M.resolve_device()
    args.bf16 = resolve_bf16(args.bf16, device)
    net, tok = M.load_cross_encoder(args.model, num_labels=1, device=device)
    lay = units.layout(net)
    ffn = [(l, u) for l in range(lay.n_layers) for u in range(lay.d_ff)]
    heads = [(l, h) for l in range(lay.n_layers) for h in range(lay.n_heads)]
    k = lambda units_, f: max(1, round(f * len(units_)))
    variants = {
        "ffn 1% all tokens": dict(ffn=random_units(ffn, k(ffn, 0.01), 0)),
        "ffn 5% all tokens": dict(ffn=random_units(ffn, k(ffn, 0.05), 0)),
        "ffn 1% passage tokens": dict(ffn=random_units(ffn, k(ffn, 0.01), 0), part=parts.PART_NAMES.index("passage")),
        "heads 5%": dict(heads=random_units(heads, k(heads, 0.05), 0)),
    }
    queries, passages = synthetic_pairs(tok, args.pairs)
    opts = ScoringOptions(max_length=args.max_length, batch_size=args.batch_size, bf16=args.bf16)

    def timed(**prune):
        start = time.perf_counter()
        pruned_scores(net, tok, queries, passages, options=opts, **prune)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    timed()  # warm-up
    sections = args.sections.split(",")
    if "masks" in sections:
        many_masks(args, net, tok, queries, passages, ffn, k(ffn, 0.01), opts)
    if "hooks" not in sections:
        return
    print(f"device {device}, threads {torch.get_num_threads()}, {args.pairs} pairs, batch {args.batch_size}, "
          f"bf16 {args.bf16}, {lay.n_layers} layers x {lay.d_ff} FFN / {lay.n_heads} heads")
    print(f"{'variant':<24} {'units':>6} {'pairs/s':>9} {'unpruned':>9} {'ratio':>6}")
    for name, prune in variants.items():
        base, pruned = [], []
        for _ in range(args.repeats):
            base.append(timed())
            pruned.append(timed(**prune))
        tb, tp = np.median(base), np.median(pruned)
        n_units = len(prune.get("ffn", ())) + len(prune.get("heads", ()))
        print(f"{name:<24} {n_units:>6} {args.pairs / tp:>9.1f} {args.pairs / tb:>9.1f} {tb / tp:>6.3f}")


ONE_JOB = """
import json, sys, torch
from irneurons.rankers import loading as M
from irneurons.rankers.options import ScoringOptions
from irneurons.study.pruning import pruned_scores_many
a = json.loads(sys.stdin.read())
torch.set_num_threads(a["threads"])
net, tok = M.load_cross_encoder(a["model"], num_labels=1, device=M.resolve_device())
pruned_scores_many(net, tok, a["queries"], a["passages"], [{"ffn": [tuple(u) for u in s]} for s in a["sets"]],
                   ScoringOptions(**a["opts"]))
"""


def many_masks(args, net, tok, queries, passages, ffn, count, opts):
    """R random sets in one job vs R jobs of one set each, every job a fresh process (module docstring)."""
    sets = [random_units(ffn, count, (0, 1, count, i)) for i in range(args.sets)]
    threads = args.threads or torch.get_num_threads()

    def job(job_sets):
        payload = json.dumps({"model": args.model, "queries": queries, "passages": passages, "sets": job_sets,
                              "opts": dataclasses.asdict(opts), "threads": threads})
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", ONE_JOB], input=payload, text=True, check=True, capture_output=True)
        return time.perf_counter() - start

    one_job = job(sets)
    separate = sum(job([s]) for s in sets)
    print(f"{args.sets} random FFN sets of {count} units, {len(queries)} pairs each, threads {threads}, "
          f"bf16 {args.bf16}")
    print(f"  one job, {args.sets} masks : {one_job:7.1f} s  ({args.sets / one_job:.3f} sets/s)")
    print(f"  {args.sets} separate jobs  : {separate:7.1f} s  ({args.sets / separate:.3f} sets/s)")
    print(f"  throughput ratio (one job / separate jobs): {separate / one_job:.2f}x")


if __name__ == "__main__":
    main()
