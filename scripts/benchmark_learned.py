#!/usr/bin/env python
"""Benchmark: LS++ and LLS (full and factored tables) against Label Smoothing.

Two tables:

1. table memory at each ``--classes`` K: the learned parameters, and with their gradient and
   Adam's two moments (4 x the parameters, float32), computed from the shapes (a full table at
   32k would take 3.8 GiB to build);
2. at ``--time-classes`` K, one step = forward + backward of the loss over ``--tokens``
   positions of random logits: the median step time of each variant, its ratio against our LS
   and against torch's ``F.cross_entropy(label_smoothing=)`` in the same run (the variants take
   turns within every round), and the memory a step adds at its peak beyond the logits and the
   table (the logits' gradient included). Targets are drawn from a Zipf law (``--zipf``), as the
   tokens of text are, so rows of frequent classes are shared within a batch as in training.

Example:  python scripts/benchmark_learned.py --classes 1000 10000 32000 --time-classes 10000 --tokens 4096
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
import torch.nn.functional as F

from labelreg_nlp import LabelSmoothingPlusPlus, LearnableLabelSmoothing, label_smoothing_loss  # noqa: E402
from labelreg_nlp.experiments.timing import child_peaks, peak_step_bytes, step_times  # noqa: E402
from labelreg_nlp.losses.learned import DEFAULT_RANK  # noqa: E402

MIB = 2**20


def table_numel(method: str, k: int, rank: int | None) -> int:
    """Parameters of a table: K x (K - 1) (LS++ full), K x K (LLS full), 2 K r (factored)."""
    if rank is not None:
        return 2 * k * rank
    return k * (k - 1) if method == "lspp" else k * k


def zipf_targets(n: int, k: int, exponent: float, generator: torch.Generator) -> torch.Tensor:
    """``n`` classes drawn with probability proportional to 1 / (rank + 1) ** exponent, ranks shuffled."""
    weights = 1.0 / torch.arange(1, k + 1, dtype=torch.float64) ** exponent
    ranks = torch.multinomial(weights, n, replacement=True, generator=generator)
    return torch.randperm(k, generator=generator)[ranks]


def setup(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, list, list[str]]:
    """Logits, Zipf targets, the (name, loss) variants at ``--time-classes``, and the skipped ones."""
    device, k = torch.device(args.device), args.time_classes
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(args.tokens, k, generator=gen).to(device)
    target = (zipf_targets(args.tokens, k, args.zipf, gen) if args.zipf else
              torch.randint(0, k, (args.tokens,), generator=gen)).to(device)
    variants: list[tuple[str, object]] = [
        ("torch CE(label_smoothing=0.1)", lambda x, y: F.cross_entropy(x, y, label_smoothing=0.1)),
        ("LS (labelreg_nlp)", lambda x, y: label_smoothing_loss(x, y, 0.1)),
    ]
    skipped = []
    for cls, name, method in ((LabelSmoothingPlusPlus, "LS++", "lspp"), (LearnableLabelSmoothing, "LLS", "lls")):
        variants.append((f"{name} rank {args.rank}", cls(k, rank=args.rank).to(device)))
        if table_numel(method, k, None) * 4 <= args.full_limit_gib * 2**30:
            variants.append((f"{name} full", cls(k, full=True).to(device)))
        else:
            skipped.append(f"{name} full")
    return logits, target, variants, skipped


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", type=int, nargs="+", default=[1000, 10000, 32000], help="K values of the memory table (default 1000 10000 32000)")
    p.add_argument("--time-classes", type=int, default=10000, help="K of the step-time table (default 10000)")
    p.add_argument("--tokens", type=int, default=4096, help="positions per step (default 4096)")
    p.add_argument("--rank", type=int, default=DEFAULT_RANK, help=f"rank of the factored tables (default {DEFAULT_RANK})")
    p.add_argument("--zipf", type=float, default=1.0, help="Zipf exponent of the targets; 0 = uniform (default 1.0)")
    p.add_argument("--repeats", type=int, default=7, help="timed rounds; the median is reported (default 7)")
    p.add_argument("--full-limit-gib", type=float, default=2.0, help="skip a full table above this size (default 2 GiB)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda (default: cuda if available)")
    p.add_argument("--peaks-only", action="store_true", help=argparse.SUPPRESS)  # the child that reads peak memory
    args = p.parse_args(argv)
    if args.tokens < 1 or args.repeats < 1 or args.rank < 1 or args.time_classes < 2 or any(k < 2 for k in args.classes):
        p.error("--tokens, --repeats and --rank must be >= 1, every class count >= 2")
    if args.zipf < 0:
        p.error(f"--zipf must be >= 0, got {args.zipf}")

    if args.peaks_only:
        logits, target, variants, _ = setup(args)
        print(json.dumps([peak_step_bytes(fn, logits, target) for _, fn in variants]))
        return 0

    print("Table memory, float32 (parameters; with gradient and Adam's two moments)\n")
    print("| K | variant | parameters | MiB | MiB with grad + Adam |")
    print("|---|---|---|---|---|")
    for k in args.classes:
        for method, name in (("lspp", "LS++"), ("lls", "LLS")):
            for rank in (None, args.rank):
                n = table_numel(method, k, rank)
                form = "full" if rank is None else f"rank {rank}"
                print(f"| {k} | {name} {form} | {n:,} | {n * 4 / MIB:,.1f} | {4 * n * 4 / MIB:,.1f} |")

    logits, target, variants, skipped = setup(args)
    k, distinct = args.time_classes, int(torch.unique(target).numel())
    print(f"\nStep time and peak memory at K = {k}: device {logits.device} ({torch.get_num_threads()} threads), "
          f"{args.tokens} positions ({distinct} distinct targets, Zipf {args.zipf:g}), median of {args.repeats} "
          f"rounds (forward + backward), torch {torch.__version__}\n")
    fns = [fn for _, fn in variants]
    times = step_times(fns, logits, target, args.repeats)
    peaks = child_peaks(__file__, [*(argv if argv is not None else sys.argv[1:]), "--peaks-only"], len(fns))
    t_torch, t_ls = times[0], times[1]
    print("| variant | step ms | vs our LS | vs torch CE(label_smoothing) | step peak MiB |")
    print("|---|---|---|---|---|")
    for (name, _), t, peak in zip(variants, times, peaks, strict=True):
        shown = "-" if peak is None else f"{peak / MIB:,.0f}"
        print(f"| {name} | {t * 1e3:.1f} | {t / t_ls:.2f}x | {t / t_torch:.2f}x | {shown} |")
    for name in skipped:
        print(f"| {name} (skipped: table above {args.full_limit_gib:g} GiB) | - | - | - | - |")
    print(f"\nfor scale: the logits are {logits.numel() * logits.element_size() / MIB:,.0f} MiB; "
          f"their gradient, which every variant writes, as much")
    return 0


if __name__ == "__main__":
    sys.exit(main())
