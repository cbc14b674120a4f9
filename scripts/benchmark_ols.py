#!/usr/bin/env python
"""Benchmark: Online Label Smoothing vs Label Smoothing, state memory and step time.

One step = forward + backward of the loss over ``--tokens`` positions of random logits [N, K]
(half of the positions predicted correctly, so OLS accumulates), training mode. Printed: the
median step time of each, their ratio against our LS and against torch's
``F.cross_entropy(label_smoothing=)`` in the same run, and the OLS state size (all buffers).

Example:  python scripts/benchmark_ols.py --classes 1000 10000 32000 --tokens 4096
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F

from labelreg_nlp import label_smoothing_loss  # noqa: E402
from labelreg_nlp.experiments.timing import step_times  # noqa: E402
from labelreg_nlp.losses.online import DEFAULT_TOPK, OnlineLabelSmoothing  # noqa: E402


def state_bytes(module: torch.nn.Module) -> int:
    return sum(b.numel() * b.element_size() for b in module.buffers())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", type=int, nargs="+", default=[1000, 10000, 32000], help="K values (default 1000 10000 32000)")
    p.add_argument("--tokens", type=int, default=4096, help="positions per step (default 4096)")
    p.add_argument("--topk", type=int, default=DEFAULT_TOPK, help=f"sparse k (default {DEFAULT_TOPK})")
    p.add_argument("--repeats", type=int, default=11, help="timed rounds; each function runs once per round, the median is reported (default 11)")
    p.add_argument("--dense-limit-gib", type=float, default=2.0, help="skip dense OLS when its state exceeds this (default 2 GiB)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda (default: cuda if available)")
    args = p.parse_args(argv)
    if args.tokens < 1 or args.repeats < 1 or any(k < 2 for k in args.classes):
        p.error("--tokens and --repeats must be >= 1, every --classes value >= 2")
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"device: {device} ({torch.get_num_threads()} threads), tokens per step: {args.tokens}, "
          f"median of {args.repeats} rounds (forward + backward), torch {torch.__version__}\n")
    print("| K | variant | state MB | step ms | vs our LS | vs torch CE(label_smoothing) |")
    print("|---|---|---|---|---|---|")
    for k in args.classes:
        logits = torch.randn(args.tokens, k, device=device)
        target = torch.randint(0, k, (args.tokens,), device=device)
        # half of the positions predicted correctly (target logit above the row max), so OLS accumulates
        correct = torch.rand(args.tokens, device=device) < 0.5
        rows = torch.arange(args.tokens, device=device)[correct]
        logits[rows, target[correct]] = logits[rows].max(-1).values + 1.0
        variants = [(f"OLS sparse k={min(args.topk, k)}", {"topk": min(args.topk, k)})]
        dense_bytes = 2 * k * k * 4
        if dense_bytes <= args.dense_limit_gib * 2**30:
            variants.insert(0, ("OLS dense", {"dense": True}))
        modules = [OnlineLabelSmoothing(k, **kwargs).to(device).train() for _, kwargs in variants]
        fns = [lambda x, y: F.cross_entropy(x, y, label_smoothing=0.1),
               lambda x, y: label_smoothing_loss(x, y, 0.1), *modules]
        t_torch, t_ls, *t_ols = step_times(fns, logits, target, args.repeats)
        rows = [("torch CE(label_smoothing=0.1)", 0, t_torch), ("LS (labelreg_nlp)", 0, t_ls)]
        rows += [(name, state_bytes(m), t) for (name, _), m, t in zip(variants, modules, t_ols, strict=True)]
        del modules, fns
        if dense_bytes > args.dense_limit_gib * 2**30:
            rows.append((f"OLS dense (skipped: state {dense_bytes / 2**30:.1f} GiB)", None, None))
        for name, nbytes, t in rows:
            if t is None:
                print(f"| {k} | {name} | - | - | - | - |")
                continue
            state = f"{nbytes / 2**20:.1f}" if nbytes else "0"
            print(f"| {k} | {name} | {state} | {t * 1e3:.1f} | {t / t_ls:.2f}x | {t / t_torch:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
