#!/usr/bin/env python
"""Benchmark: real fairseq-train with this package's criteria against fairseq's own
``label_smoothed_cross_entropy``: words per second and epoch time, same data, model and seed.

Every run trains the same small transformer (the demo's, ``tiny_recipe``) for ``--max-epoch``
epochs without validation or checkpoints; the criteria take turns within every round, in an
order that rotates from round to round, so drift in the machine's speed hits all alike. Printed
per criterion: the median over rounds of fairseq's ``train_wps`` (target words per second) and
``train_wall`` (seconds of the epoch), their ratios to the built-in criterion and to
``ls_cross_entropy``, and the last training loss (the same for the LS variants: the same math).

The data: ``--data-bin``, or the offline German-English gettext corpus with ``--bpe-merges``
joint BPE merges (10,000: a vocabulary of about 10k), prepared once into ``--workdir``.
``ols`` runs end one OLS period every ``--ols-period-updates`` updates, so a period end (the
accumulated soft labels made the new ones) is inside the timed epoch.

Example:  python scripts/benchmark_fairseq.py --repeats 2 --criteria builtin ls maxsup ols
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

from labelreg_nlp.experiments import translation as T  # noqa: E402
from labelreg_nlp.experiments.corpora import DEFAULT_LOCALE_DIR, offline_de_en_pairs, split_pairs  # noqa: E402

# name -> fairseq-train arguments of the criterion
CRITERIA = {
    "builtin": ["--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"],
    "ls": ["--criterion", "ls_cross_entropy", "--label-smoothing", "0.1"],
    "maxsup": ["--criterion", "maxsup_cross_entropy", "--maxsup-alpha", "0.1"],
    "ols": ["--criterion", "ols_cross_entropy"],
    "ls+fused": ["--criterion", "ls_cross_entropy", "--label-smoothing", "0.1", "--fused-output-layer"],
    "maxsup+fused": ["--criterion", "maxsup_cross_entropy", "--maxsup-alpha", "0.1", "--fused-output-layer"],
    "ols+fused": ["--criterion", "ols_cross_entropy", "--fused-output-layer"],
    "lspp": ["--criterion", "lspp_cross_entropy", "--lspp-alpha", "0.1"],
    "lls": ["--criterion", "lls_cross_entropy", "--lls-alpha", "0.1"],
}
TITLES = {"builtin": "label_smoothed_cross_entropy (fairseq)", "ls": "ls_cross_entropy", "maxsup": "maxsup_cross_entropy",
          "ols": "ols_cross_entropy", "lspp": "lspp_cross_entropy", "lls": "lls_cross_entropy"}


def title(name: str) -> str:
    base, _, fused = name.partition("+")
    return TITLES[base] + (" --fused-output-layer" if fused else "")


def epoch_summary(output: str) -> dict:
    """The last training epoch summary of a ``--log-format json`` run."""
    rows = T.epoch_summaries(output, "train")
    if not rows:
        raise RuntimeError("fairseq-train printed no epoch summary:\n" + output[-2000:])
    return rows[-1]


def prepare(args: argparse.Namespace) -> Path:
    if args.data_bin:
        return args.data_bin
    pairs, name = offline_de_en_pairs(args.locale_dir)
    splits = split_pairs(pairs, valid=500, test=500, seed=1)
    opts = T.PrepareOptions(src="de", tgt="en", bpe_merges=args.bpe_merges, lowercase=False)
    T.prepare(splits, args.workdir, opts, corpus=name)
    return args.workdir / "data-bin"


def dictionary_size(data_bin: Path) -> int:
    """Entries of the target dictionary plus fairseq's 4 special symbols: the output layer's V."""
    files = sorted(data_bin.glob("dict.*.txt"))
    if not files:
        raise FileNotFoundError(f"no dict.*.txt in {data_bin}")
    return 4 + sum(1 for _ in files[-1].open(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--criteria", nargs="+", choices=list(CRITERIA), default=["builtin", "ls", "maxsup", "ols"],
                   help="criteria to run (default: builtin ls maxsup ols; '+fused' adds --fused-output-layer)")
    p.add_argument("--data-bin", type=Path, default=None, help="a fairseq data-bin (default: prepare the offline corpus)")
    p.add_argument("--workdir", type=Path, default=REPO / "runs" / "bench-fairseq",
                   help="where the offline corpus is prepared (default runs/bench-fairseq)")
    p.add_argument("--locale-dir", default=DEFAULT_LOCALE_DIR, help="gettext catalogs of the offline corpus")
    p.add_argument("--bpe-merges", type=int, default=10000, help="joint BPE merges (default 10000: about 10k types)")
    p.add_argument("--max-epoch", type=int, default=1, help="epochs per run (default 1)")
    p.add_argument("--repeats", type=int, default=3, help="rounds; the median is reported (default 3)")
    p.add_argument("--ols-period-updates", type=int, default=100, help="OLS period in updates (default 100)")
    p.add_argument("--seed", type=int, default=1, help="training seed (default 1)")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more fairseq-train arguments (last)")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.max_epoch < 1 or args.ols_period_updates < 0:
        p.error("--repeats and --max-epoch must be >= 1, --ols-period-updates >= 0")
    if "builtin" not in args.criteria:
        args.criteria.insert(0, "builtin")  # the ratios' base

    data_bin = prepare(args)
    vocab = dictionary_size(data_bin)
    model = T.tiny_recipe()
    results: dict[str, list[dict]] = {name: [] for name in args.criteria}
    for r in range(args.repeats):
        order = args.criteria[r % len(args.criteria):] + args.criteria[: r % len(args.criteria)]
        for name in order:
            extra = ["--ols-period-updates", str(args.ols_period_updates)] if name.startswith("ols") else []
            cmd = [str(data_bin), "--user-dir", str(T.USER_DIR), *model, *CRITERIA[name], *extra,
                   "--max-epoch", str(args.max_epoch), "--seed", str(args.seed), "--cpu", "--num-workers", "0",
                   "--disable-validation", "--no-save", "--log-format", "json", "--log-interval", "1000",
                   *args.extra]
            summary = epoch_summary(T.run_fairseq("train", cmd, echo=lambda line: "Error" in line))
            T.log(f"round {r + 1}/{args.repeats} {name}: {summary['train_wps']} wps, {summary['train_wall']} s")
            results[name].append(summary)

    def median(name: str, key: str) -> float:
        return statistics.median(float(s[key]) for s in results[name])

    base_wps, base_wall = median("builtin", "train_wps"), median("builtin", "train_wall")
    ls = "ls" if "ls" in results else "builtin"
    ls_wall = median(ls, "train_wall")
    print(f"\nfairseq-train on CPU, {data_bin} (output layer V = {vocab}), tiny transformer (embed 128, 2 + 2 layers), "
          f"{args.max_epoch} epoch(s) per run, median of {args.repeats} interleaved rounds\n")
    print("| criterion | train_wps | wps vs built-in | epoch s (train_wall) | time vs built-in | time vs ls_cross_entropy "
          "| train_loss | updates |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.criteria:
        wps, wall = median(name, "train_wps"), median(name, "train_wall")
        last = results[name][-1]
        print(f"| {title(name)} | {wps:,.0f} | {wps / base_wps:.3f}x | {wall:.1f} | {wall / base_wall:.3f}x "
              f"| {wall / ls_wall:.3f}x | {last['train_loss']} | {last.get('train_num_updates', '-')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
