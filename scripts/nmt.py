#!/usr/bin/env python
"""IWSLT14 De-En (or any parallel corpus) with fairseq: prepare, train, evaluate, compare.

  prepare   raw IWSLT14 release, plain parallel text files, or the gettext De-En corpus
            -> tokenized, cleaned, lowercased, joint BPE, fairseq-preprocess (never downloads)
  train     one criterion and seed (fairseq's IWSLT14 recipe, or --recipe tiny on CPU)
  evaluate  best checkpoint, beam 5, BPE removed, detokenized SacreBLEU -> results.jsonl
  compare   table of mean +- std BLEU per criterion and paired differences to a baseline;
            with --run, trains and evaluates what is missing

Runs are never overwritten or mixed: each run's folder, DATA/checkpoints/NAME, is named by
every option that changes its result (criterion, alpha, seed, model, epochs, device, fairseq
arguments), recorded in its run.json. train refuses a folder that holds a run unless --resume
(continue it) or --overwrite; evaluate finds the run by the same options (or refuses, naming the
runs there); results rows carry the options and compare groups by them. prepare skips finished
work; compare --run continues unfinished runs and skips evaluated ones.

Example (the MaxSup paper's Table 6 on a GPU):
  python scripts/nmt.py prepare --raw-dir ~/data/iwslt14/de-en --out runs/iwslt14
  python scripts/nmt.py compare --run --data runs/iwslt14 --criteria ls,maxsup --seeds 1,2,3 --max-epoch 50
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from labelreg_nlp.experiments import translation as T  # noqa: E402
from labelreg_nlp.experiments.corpora import offline_de_en_pairs, split_pairs  # noqa: E402
from labelreg_nlp.experiments.iwslt14 import ReleaseError, read_release  # noqa: E402
from labelreg_nlp.experiments.run_dirs import (  # noqa: E402
    RunDirError,
    RunManifest,
    claim_run_dir,
    mark_run,
    release_run_dir,
)


def _prepare(args: argparse.Namespace) -> int:
    opts = T.PrepareOptions(src=args.src, tgt=args.tgt, bpe_merges=args.bpe_merges, lowercase=not args.keep_case,
                            max_words=args.max_words, length_ratio=args.length_ratio, valid_every=args.valid_every)
    if args.raw_dir:
        splits, corpus = read_release(args.raw_dir, args.src, args.tgt), f"IWSLT14 {args.raw_dir}"
    elif args.train_src:
        if not (args.train_tgt and args.test_src and args.test_tgt):
            raise ValueError("--train-src needs --train-tgt, --test-src and --test-tgt")
        splits = {"train": T.read_parallel(args.train_src, args.train_tgt),
                  "test": T.read_parallel(args.test_src, args.test_tgt)}
        if args.valid_src or args.valid_tgt:
            splits["valid"] = T.read_parallel(args.valid_src, args.valid_tgt)
        corpus = f"parallel text {args.train_src}"
    else:
        pairs, name = offline_de_en_pairs()
        cut = split_pairs(pairs, valid=0, test=args.test_size, seed=1)
        splits, corpus = {"train": cut["train"], "test": cut["test"]}, f"{name} De-En"
    done = T.prepare(splits, args.out, opts, corpus=corpus)
    print(json.dumps({"out": str(args.out), "corpus": corpus, "sizes": done["sizes"]}))
    return 0


def _model_args(args: argparse.Namespace) -> list[str]:
    if args.recipe == "iwslt":
        return T.IWSLT_RECIPE
    return T.tiny_recipe(embed_dim=args.tiny_dim, layers=args.tiny_layers)


def _settings(args: argparse.Namespace, criterion: str, seed: int, extra: list[str]) -> T.TrainSettings:
    """Every option of the run that changes its result (the run folder is named after them)."""
    cpu = True if args.cpu else not T.cuda_available()
    has_alpha = T.get_method(criterion).has_alpha
    return T.TrainSettings(criterion=criterion, seed=seed, alpha=args.alpha if has_alpha else None, recipe=args.recipe,
                           model=_model_args(args), max_epoch=args.max_epoch, minutes=args.minutes,
                           device="cpu" if cpu else "cuda", fp16=not cpu, extra=list(extra))


def _run_dir(args: argparse.Namespace, settings: T.TrainSettings) -> Path:
    return Path(args.data) / "checkpoints" / settings.run_name()


def _need_data(args: argparse.Namespace) -> Path:
    if not args.data or not (Path(args.data) / "prepared.json").is_file():
        raise ValueError(f"--data must be a folder made by 'prepare', got {args.data!r}")
    return Path(args.data)


def _other_runs(args: argparse.Namespace, settings: T.TrainSettings) -> str:
    """The runs of the same criterion and seed under DATA/checkpoints, each with how its options
    differ from ``settings`` (for a message), or ''."""
    found = []
    for folder in sorted((Path(args.data) / "checkpoints").glob(f"{settings.criterion}*-seed{settings.seed}-*")):
        saved = RunManifest.read(folder)
        if saved is not None and saved.options.get("criterion") == settings.criterion:
            found.append(f"{folder.name}: {'; '.join(settings.manifest().differences(saved)) or 'same options'}")
    return " | ".join(found)


def _train_one(args: argparse.Namespace, criterion: str, seed: int, extra: list[str], resume: bool = False) -> dict:
    _need_data(args)
    settings = _settings(args, criterion, seed, extra)
    save = _run_dir(args, settings)
    asked = getattr(args, "resume", False)  # compare --run continues its own runs without being asked
    resume = resume or asked
    others = _other_runs(args, settings) if asked and not save.exists() else ""
    if others:
        raise RunDirError(f"--resume: no run of {criterion} seed {seed} with these options; the runs there: {others}")
    overwrite = getattr(args, "overwrite", False)
    claimed = claim_run_dir(save, settings.manifest(), resume=resume and not overwrite, overwrite=overwrite,
                            flag="the run folder")
    if claimed == "resume" and (save / "train.json").is_file():
        T.log(f"{save.name}: finished before, nothing to train")
        return json.loads((save / "train.json").read_text())
    stop = getattr(args, "stop_after_epoch", None)
    if stop is not None and (stop < 1 or (args.max_epoch and stop >= args.max_epoch)):
        raise ValueError(f"--stop-after-epoch must be >= 1 and below --max-epoch, got {stop}")
    try:
        stats = T.train(Path(args.data) / "data-bin", save, criterion, seed, alpha=args.alpha, model=settings.model,
                        max_epoch=stop or args.max_epoch, minutes=args.minutes, extra=extra,
                        cpu=settings.device == "cpu", fp16=settings.fp16, log_file=save / "train.log")
    except T.FairseqFailed as failure:
        if not any(save.glob("checkpoint*.pt")):  # nothing to continue from: leave no run behind
            kept = Path(args.data) / "logs" / f"{save.name}.train.log"
            kept.parent.mkdir(parents=True, exist_ok=True)
            failure.log_file.replace(kept)
            release_run_dir(save)
            raise T.FairseqFailed(failure.command, failure.returncode, failure.error, kept,
                                  when=" before its first checkpoint, so no run was kept") from None
        mark_run(save, "stopped")
        raise
    if stop is not None:
        mark_run(save, "stopped")
        T.log(f"{save.name}: stopped after epoch {stop} (--stop-after-epoch); continue with --resume")
        return {**stats, "run": save.name, "stopped_after_epoch": stop}
    stats.update({"criterion": criterion, "seed": seed, "alpha": settings.alpha, "recipe": args.recipe,
                  "run": save.name, "settings": _shown_settings(settings)})
    (save / "train.json").write_text(json.dumps(stats, indent=1))
    mark_run(save, "finished")
    return stats


def _shown_settings(settings: T.TrainSettings) -> dict:
    """The settings a results row carries (``compare`` groups by them): all but criterion and seed."""
    return {k: v for k, v in settings.grouping().items() if k != "criterion"}


def _evaluate_one(args: argparse.Namespace, criterion: str, seed: int, checkpoint: str | None = None,
                  extra: list[str] = ()) -> dict:
    data = _need_data(args)
    prepared = json.loads((data / "prepared.json").read_text())
    settings = _settings(args, criterion, seed, list(extra))
    save = _run_dir(args, settings)
    if checkpoint is None:
        if not (save / "checkpoint_best.pt").is_file():
            others = _other_runs(args, settings)
            raise FileNotFoundError(f"no trained run of {criterion} seed {seed} with these options ({save.name})"
                                    + (f"; the runs there: {others}" if others else "; train it first"))
        checkpoint = str(save / "checkpoint_best.pt")
    run_folder = Path(checkpoint).parent
    manifest = RunManifest.read(run_folder)
    if manifest is not None and manifest.script == "nmt.train":
        shown = _shown_settings(T.TrainSettings(**manifest.options))
    else:  # a checkpoint from elsewhere (--checkpoint): its file is its setting
        shown = {"checkpoint": str(checkpoint)}
    scores = T.evaluate(data / "data-bin", checkpoint, data / "ref" / f"test.{prepared['tgt']}", beam=args.beam,
                        tgt=prepared["tgt"], cpu=True if args.cpu else None)
    if not args.no_token_scores:
        scores.update(T.save_token_scores(data / "data-bin", checkpoint, data / "predictions" / run_folder.name,
                                          cpu=True if args.cpu else None))
    T.save_for_compare(data / "predictions" / run_folder.name, scores, data / "ref" / f"test.{prepared['tgt']}",
                       criterion=criterion, seed=seed)
    train_file = run_folder / "train.json"
    train_stats = json.loads(train_file.read_text()) if train_file.is_file() else {}
    record = {**train_stats, "criterion": criterion, "seed": seed, "run": run_folder.name, "settings": shown,
              "corpus": prepared["corpus"], "test_sentences": prepared["sizes"]["test"], "beam": args.beam, **scores,
              "checkpoint": checkpoint}
    T.append_result(args.results or data / "results.jsonl", record)
    print(f"BLEU {scores['bleu']:.2f}  ({run_folder.name})\nsignature: {scores['signature']}", flush=True)
    return record


def _train(args: argparse.Namespace, extra: list[str]) -> int:
    stats = _train_one(args, args.criterion, args.seed, extra)
    print(json.dumps(stats))
    return 0


def _evaluate(args: argparse.Namespace, extra: list[str]) -> int:
    _evaluate_one(args, args.criterion, args.seed, args.checkpoint, extra)
    return 0


def _compare(args: argparse.Namespace, extra: list[str]) -> int:
    files = list(args.results_files)
    if args.run:
        if not args.data:
            raise ValueError("compare --run needs --data (a prepared folder)")
        _need_data(args)
        results = Path(args.results or Path(args.data) / "results.jsonl")
        have = {r.get("run") for r in T.read_results([results])} if results.exists() else set()
        for criterion in args.criteria.split(","):
            if criterion not in T.CRITERIA:
                raise ValueError(f"--criteria: unknown {criterion!r}; choose from {sorted(T.CRITERIA)}")
            for seed in (int(s) for s in args.seeds.split(",")):
                name = _settings(args, criterion, seed, extra).run_name()
                if name in have:
                    T.log(f"{name}: already evaluated, skipped")
                    continue
                _train_one(args, criterion, seed, extra, resume=True)  # same options by the folder's name
                _evaluate_one(args, criterion, seed, extra=extra)
        files.append(results)
    elif extra:
        raise ValueError(f"unrecognized arguments: {' '.join(extra)}")
    if not files:
        raise ValueError("give results files to collect, or --run --data DIR")
    if args.json and Path(args.json).resolve() in {Path(f).resolve() for f in files}:
        raise ValueError(f"--json {args.json} is one of the results files read: it would be overwritten")
    records = T.read_results(files)
    print(T.compare_table(records))
    if args.no_paired:
        return 0
    # the same runs through `labelreg-nlp compare`: paired intervals and verdicts against the baseline
    from labelreg_nlp.analysis.comparison_runs import compare_sides, report_comparison

    try:
        baseline, rows = compare_sides(T.paired_sides(records, args.baseline), samples=args.samples)
    except ValueError as error:  # e.g. settings with other seeds, runs without token scores
        if args.baseline is None and args.plots is None and args.json is None:  # not asked for: say why, go on
            print(f"\n(no paired comparison: {error})")
            return 0
        raise
    print()
    print(report_comparison(baseline, rows, 0.95, args.samples, args.plots, args.json))
    return 0


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="a folder made by 'prepare' (holds data-bin/, ref/, prepared.json)")
    p.add_argument("--alpha", type=float, default=0.1, help="LS / MaxSup weight (default 0.1)")
    p.add_argument("--recipe", choices=["iwslt", "tiny"], default="iwslt",
                   help="iwslt: fairseq's transformer_iwslt_de_en recipe (default); tiny: a small CPU transformer")
    p.add_argument("--tiny-dim", type=int, default=128, help="tiny recipe: model width (default 128)")
    p.add_argument("--tiny-layers", type=int, default=2, help="tiny recipe: encoder and decoder layers (default 2)")
    p.add_argument("--max-epoch", type=int, default=None, help="stop after this many epochs")
    p.add_argument("--minutes", type=float, default=None, help="stop training after this many minutes")
    p.add_argument("--cpu", action="store_true", help="train/decode on CPU even when a GPU is present (no fp16)")
    p.add_argument("--beam", type=int, default=5, help="beam size for evaluation (default 5)")
    p.add_argument("--no-token-scores", action="store_true",
                   help="skip the teacher-forced token confidence of valid and test (saved as DATA/predictions/"
                        "RUN/{valid,test}.npz for 'labelreg-nlp evaluate')")
    p.add_argument("--results", help="JSON-lines results file (default DATA/results.jsonl)")


def _add_refusal_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resume", action="store_true",
                   help="continue a run that stopped (its folder DATA/checkpoints/NAME is named by every option that "
                        "changes the result, recorded in its run.json)")
    p.add_argument("--overwrite", action="store_true", help="delete a run with these options and train it anew")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="raw corpus -> fairseq binary data",
                       description="Tokenize (Moses), clean (length ratio 1.5, 1..175 words), lowercase, split "
                                   "every 23rd training pair off as validation, learn and apply joint BPE, "
                                   "fairseq-preprocess --joined-dictionary. Sources, in order of precedence: "
                                   "--raw-dir, --train-src/..., else the gettext De-En corpus of the system.")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--raw-dir", help="unpacked IWSLT14 de-en release (train.tags.de-en.*, IWSLT14.TED*.xml)")
    for split in ("train", "valid", "test"):
        for side in ("src", "tgt"):
            p.add_argument(f"--{split}-{side}", help=f"plain text {split} {'source' if side == 'src' else 'target'} "
                                                      "file, one sentence per line")
    p.add_argument("--test-size", type=int, default=500, help="gettext corpus: test pairs (default 500)")
    recipe = T.PrepareOptions()  # the defaults are the recipe's, defined once there
    p.add_argument("--src", default=recipe.src, help=f"source language code (default {recipe.src})")
    p.add_argument("--tgt", default=recipe.tgt, help=f"target language code (default {recipe.tgt})")
    p.add_argument("--bpe-merges", type=int, default=recipe.bpe_merges,
                   help=f"joint BPE merges (default {recipe.bpe_merges})")
    p.add_argument("--keep-case", action="store_true", help="do not lowercase")
    p.add_argument("--max-words", type=int, default=recipe.max_words,
                   help=f"cleaning: longest training sentence (default {recipe.max_words})")
    p.add_argument("--length-ratio", type=float, default=recipe.length_ratio,
                   help=f"cleaning: largest length ratio (default {recipe.length_ratio})")
    p.add_argument("--valid-every", type=int, default=recipe.valid_every,
                   help=f"every N-th training pair becomes validation (default {recipe.valid_every})")
    p.set_defaults(handler=lambda a, extra: _prepare(a) if not extra else _unknown(extra))

    p = sub.add_parser("train", help="fairseq-train one criterion and seed",
                       description="Train with one criterion and seed; arguments this script does not know go to "
                                   "fairseq-train as they are (e.g. --max-update 100 --patience 5).")
    _add_run_options(p)
    _add_refusal_options(p)
    p.add_argument("--criterion", choices=sorted(T.CRITERIA), required=True, help="the method (labelreg-nlp methods lists them)")
    p.add_argument("--seed", type=int, default=1, help="training seed (default 1)")
    p.add_argument("--stop-after-epoch", type=int, default=None,
                   help="stop after this epoch, as an interrupted run would (for time-limited jobs); continue with "
                        "--resume (not part of the run's options: the run is the same)")
    p.set_defaults(handler=_train)

    p = sub.add_parser("evaluate", help="detokenized SacreBLEU of the best checkpoint",
                       description="Beam search on the test split, BPE removed, Moses-detokenized, SacreBLEU (its "
                                   "signature printed); the result is appended to --results with the run's options. "
                                   "The run is found by the options it was trained with: give the same ones "
                                   "(arguments this script does not know are the fairseq-train arguments of train).")
    _add_run_options(p)
    p.add_argument("--criterion", choices=sorted(T.CRITERIA), required=True, help="which run to evaluate")
    p.add_argument("--seed", type=int, default=1, help="which run to evaluate (default 1)")
    p.add_argument("--checkpoint", help="checkpoint file (default: checkpoint_best.pt of the run trained with these options)")
    p.set_defaults(handler=_evaluate)

    p = sub.add_parser("compare", help="mean +- std BLEU per criterion, and paired differences to a baseline",
                       description="Collect results files (or --run the missing trainings and evaluations) and print "
                                   "a markdown table of BLEU mean +- sample std per criterion; then every setting "
                                   "against the baseline as `labelreg-nlp compare` does (BLEU, chrF and token "
                                   "accuracy, NLL, ECE, AURC, E-AURC: differences with paired-bootstrap and "
                                   "paired-by-seed intervals, Holm-Bonferroni verdicts).")
    _add_run_options(p)
    p.add_argument("results_files", nargs="*", type=Path, help="JSON-lines results files to collect")
    p.add_argument("--run", action="store_true", help="train (or continue) and evaluate every run without a result")
    p.add_argument("--overwrite", action="store_true", help="with --run: delete and retrain the runs without a result")
    p.add_argument("--criteria", default="none,ls,maxsup,ols", help="with --run (default none,ls,maxsup,ols)")
    p.add_argument("--seeds", default="1,2,3", help="with --run (default 1,2,3)")
    p.add_argument("--baseline", help="the setting the others are compared with, as the table labels it (default: "
                   "its first row)")
    p.add_argument("--samples", type=int, default=1000, help="bootstrap resamples of the paired comparison "
                   "(default 1000)")
    p.add_argument("--plots", metavar="DIR", help="write the paired comparison's diff_METRIC.png figures there")
    p.add_argument("--json", metavar="FILE", help="write the paired comparison's rows as JSON")
    p.add_argument("--no-paired", action="store_true", help="print only the BLEU table, not the paired comparison "
                   "(labelreg-nlp compare) of every setting against the baseline")
    p.set_defaults(handler=_compare)
    return parser


def _unknown(extra: list[str]) -> int:
    raise ValueError(f"unrecognized arguments: {' '.join(extra)}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    try:
        return args.handler(args, extra)
    except (ReleaseError, ValueError, FileNotFoundError, T.FairseqFailed) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
