"""``labelreg-nlp``: reach the fairseq criteria from a pip install.

    labelreg-nlp methods                      the registered methods, their options and papers
    labelreg-nlp user-dir                     print the folder to give fairseq as --user-dir
    labelreg-nlp neighbours CHECKPOINT        learned soft labels (LS++, LLS, OLS): top neighbours
                                              of each class, optionally a heat map PNG
    labelreg-nlp evaluate RUN [RUN...]        confidence evaluation of saved predictions: AURC,
                                              E-AURC, ECE, pNorm ...; tables and PNG figures
    labelreg-nlp fairseq-train ARGS...        fairseq-train with that --user-dir added
    labelreg-nlp fairseq-generate ARGS...     same for fairseq-generate (and -interactive,
                                              -validate, -eval-lm)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from .integrations.fairseq_command import allow_fairseq_checkpoints, user_dir

FAIRSEQ_COMMANDS = ("fairseq-train", "fairseq-generate", "fairseq-interactive", "fairseq-validate", "fairseq-eval-lm")


def fairseq_argv(command: str, args: list[str]) -> list[str]:
    """The command line to run: ``command`` with ``--user-dir`` added unless the user gave one."""
    sibling = Path(sys.executable).parent / command  # the fairseq installed beside this package
    exe = str(sibling) if sibling.exists() else shutil.which(command) or command
    has_user_dir = any(a == "--user-dir" or a.startswith("--user-dir=") for a in args)
    return [exe, *args] if has_user_dir else [exe, "--user-dir", user_dir(), *args]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in FAIRSEQ_COMMANDS:
        # Pass everything after the command through untouched (argparse would eat --options).
        cmd = fairseq_argv(argv[0], argv[1:])
        env = allow_fairseq_checkpoints(dict(os.environ))
        os.execve(cmd[0], cmd, env)
    parser = argparse.ArgumentParser(
        prog="labelreg-nlp",
        description="List labelreg_nlp's methods, and reach its fairseq criteria from a pip install, "
        "without a clone of the repository.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("methods", help="print the registered methods with their options (a markdown table)")
    sub.add_parser("user-dir", help="print the folder to pass to fairseq as --user-dir")
    nb = sub.add_parser(
        "neighbours", help="print the top neighbours of each class in learned soft labels (LS++, LLS, OLS)",
        description="Read a fairseq checkpoint (criterion state) or a Hugging Face checkpoint directory "
        "(labelreg_state.pt) trained with lspp, lls or ols, and print each class's learned distribution as "
        "its top neighbours (itself left out). Classes are named by the fairseq dictionary of the "
        "checkpoint's data directory, the model's id2label, a tokenizer in the directory, or --dict/--names.")
    nb.add_argument("checkpoint", help="fairseq checkpoint .pt, HF checkpoint directory, or labelreg_state.pt")
    nb.add_argument("--dict", dest="dictionary", help="fairseq dict.txt naming the classes (default: the "
                    "target dictionary of the checkpoint's data directory, if present)")
    nb.add_argument("--names", help="comma-separated class names, in class order")
    nb.add_argument("--classes", type=int, default=10, help="show the first N classes after the special symbols "
                    "(fairseq dictionaries: the N most frequent tokens; default: 10)")
    nb.add_argument("--tokens", help="comma-separated class names to show instead of the first N")
    nb.add_argument("--top", type=int, default=5, help="neighbours per class (default: 5)")
    nb.add_argument("--heatmap", metavar="PNG", help="also draw the learned distributions among the shown classes")
    _add_evaluate(sub)
    _add_compare(sub)
    for name in FAIRSEQ_COMMANDS:
        sub.add_parser(name, help=f"run {name} with --user-dir set (every argument passed through)")
    args = parser.parse_args(argv)
    if args.command == "neighbours":
        return _neighbours(parser, args)
    if args.command == "evaluate":
        return _evaluate(parser, args)
    if args.command == "compare":
        return _compare(parser, args)
    if args.command == "methods":
        from .losses.registry import methods_table

        print(methods_table())
    else:
        print(user_dir())
    return 0


def _add_evaluate(sub) -> None:
    ev = sub.add_parser(
        "evaluate", help="evaluate the confidence of saved predictions (AURC, ECE, pNorm, ...) and draw figures",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="For each run, print accuracy, NLL, ECE and, for every confidence score (MSP, max logit, "
        "negative entropy, margin, pNorm), AURC, E-AURC, coverage at a risk and risk at a coverage. pNorm's p is "
        "picked on the run's validation split by AURC, with the MSP as fallback.",
        epilog="A RUN is [NAME=]PATH: a folder holding test.npz (or .pt) and validation.npz (or valid.npz), directly "
        "or in predictions/ (what the fine-tuning scripts and scripts/nmt.py write), or a single file (p is then "
        "picked on the evaluated file itself, which flatters pNorm). A file holds either 'logits' [N, K] and "
        "'labels' [N] (-100 = skip), or the token scores of labelreg_nlp.metrics.ScoredPredictions.save.\n\n"
        "Example:\n  labelreg-nlp evaluate ls=runs/tc-ls maxsup=runs/tc-maxsup --plots figures/")
    ev.add_argument("runs", nargs="+", metavar="RUN", help="[NAME=]folder or file of saved predictions")
    ev.add_argument("--split", default="test", help="the split to report on (default: test)")
    ev.add_argument("--risk", type=float, default=0.05, help="tolerated risk of 'coverage at risk' (default: 0.05)")
    ev.add_argument("--coverage", type=float, default=0.8, help="coverage of 'risk at coverage' (default: 0.8)")
    ev.add_argument("--bins", type=int, default=15, help="ECE and reliability-diagram bins (default: 15)")
    ev.add_argument("--p-grid", default="0,1,2,3,4,5,6,7,8,9",
                    help="pNorm's orders p to search, comma-separated (default: 0,...,9)")
    ev.add_argument("--plots", metavar="DIR", help="write risk_coverage.png, reliability.png and confidence_hist.png")
    ev.add_argument("--json", metavar="FILE", help="write every number as JSON")


def _evaluate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from .analysis.confidence_runs import evaluate_runs, report_runs

    try:
        p_grid = [float(p) for p in args.p_grid.split(",") if p.strip()]
    except ValueError:
        parser.error(f"--p-grid must be comma-separated numbers, got {args.p_grid!r}")
    if not p_grid or min(p_grid) < 0:
        parser.error(f"--p-grid needs orders p >= 0, got {args.p_grid!r}")
    if not 0 <= args.risk <= 1:
        parser.error(f"--risk must be in [0, 1], got {args.risk}")
    if not 0 < args.coverage <= 1:
        parser.error(f"--coverage must be in (0, 1], got {args.coverage}")
    if args.bins < 1:
        parser.error(f"--bins must be >= 1, got {args.bins}")
    inputs = [Path(run.split("=", 1)[-1]) for run in args.runs]
    if args.json and _reads(Path(args.json), inputs):
        parser.error(f"--json {args.json} is one of the prediction files read: it would be overwritten")
    try:
        runs = evaluate_runs(args.runs, args.split, p_grid, args.risk, args.coverage, args.bins)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report_runs(runs, args.plots, args.json, args.bins))
    return 0


def _add_compare(sub) -> None:
    cp = sub.add_parser(
        "compare", help="is a method better than the baseline? paired differences with intervals and verdicts",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="For each method and metric (accuracy, NLL, ECE, AURC, E-AURC with the MSP as confidence; "
        "BLEU and chrF from saved hypotheses, resampled by sentence as sacrebleu's paired bootstrap does), the "
        "difference to the baseline (the first side) averaged over seeds, with a 95% interval from a paired "
        "bootstrap over the test examples and, with two or more seeds, a paired-by-seed t interval. A row is "
        "'better' or 'worse' when the bootstrap test rejects no difference after Holm-Bonferroni over all rows "
        "and the seed interval (if any) excludes 0.",
        epilog="A side is NAME=RUN[,RUN...]: its seed runs, each a folder or file as 'labelreg-nlp evaluate' reads "
        "it. Runs are paired with the baseline's by the seed in their results.json where every run records one, "
        "else by position. The runs of one seed must be scored on the same test examples in the same order; seeds "
        "may hold test sets of their own, each then resampled on its own.\n\n"
        "Example:\n  labelreg-nlp compare ls=runs/tc/ls-seed0,runs/tc/ls-seed1 "
        "maxsup=runs/tc/maxsup-seed0,runs/tc/maxsup-seed1 --plots figures/")
    cp.add_argument("sides", nargs="+", metavar="NAME=RUN[,RUN...]", help="the baseline first, then the methods")
    cp.add_argument("--split", default="test", help="the split compared (default: test)")
    cp.add_argument("--metrics", default=None,
                    help="comma-separated, of accuracy,nll,ece,aurc,eaurc,bleu,chrf (default: the first five, plus "
                    "bleu and chrf where every run saved SPLIT.hyp and SPLIT.ref)")
    cp.add_argument("--samples", type=int, default=1000, help="bootstrap resamples (default: 1000)")
    cp.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals (default: 0.95)")
    cp.add_argument("--seed", type=int, default=0, help="seed of the resampling (default: 0)")
    cp.add_argument("--bins", type=int, default=15, help="ECE bins (default: 15)")
    cp.add_argument("--plots", metavar="DIR", help="write one diff_METRIC.png per metric")
    cp.add_argument("--json", metavar="FILE", help="write every row as JSON")


def _compare(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from .analysis.comparison_runs import compare_sides, report_comparison

    if args.samples < 1:
        parser.error(f"--samples must be >= 1, got {args.samples}")
    if not 0 < args.level < 1:
        parser.error(f"--level must be in (0, 1), got {args.level}")
    if args.bins < 1:
        parser.error(f"--bins must be >= 1, got {args.bins}")
    metrics = None if args.metrics is None else [m.strip() for m in args.metrics.split(",") if m.strip()]
    inputs = [Path(p) for side in args.sides for p in side.partition("=")[2].split(",") if p]
    if args.json and _reads(Path(args.json), inputs):
        parser.error(f"--json {args.json} is one of the prediction files read: it would be overwritten")
    try:
        baseline, rows = compare_sides(args.sides, split=args.split, metrics=metrics, samples=args.samples,
                                       level=args.level, seed=args.seed, num_bins=args.bins)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report_comparison(baseline, rows, args.level, args.samples, args.plots, args.json))
    return 0


def _neighbours(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from .analysis.learned_labels import load_learned_labels, neighbour_table, pick_classes, save_heatmap

    if args.top < 1:
        parser.error(f"--top must be >= 1, got {args.top}")
    if args.heatmap and _reads(Path(args.heatmap), [Path(args.checkpoint)]):
        parser.error(f"--heatmap {args.heatmap} is the checkpoint read: it would be overwritten")
    try:
        labels = load_learned_labels(args.checkpoint, names=args.names.split(",") if args.names else None,
                                     dictionary=args.dictionary)
        classes = pick_classes(labels, args.classes, args.tokens.split(",") if args.tokens else None)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{labels.method}: {labels.num_classes} classes")
    print(neighbour_table(labels, classes, args.top))
    if args.heatmap:
        save_heatmap(labels, classes, args.heatmap)
        print(f"heat map: {args.heatmap}")
    return 0


def _reads(output: Path, inputs: list[Path]) -> bool:
    """Whether ``output`` is one of ``inputs``, or a prediction or checkpoint file (``.npz``,
    ``.pt``) inside an input folder."""
    target = output.expanduser().resolve()
    for source in (p.expanduser().resolve() for p in inputs):
        if target == source or (source.is_dir() and source in target.parents and target.suffix in (".npz", ".pt")):
            return True
    return False


if __name__ == "__main__":
    sys.exit(main())
