#!/usr/bin/env python
"""The main job on an embedded default: De->En translation with LS vs MaxSup, no download.

1. build a German-English corpus from the system's gettext catalogs
   (/usr/share/locale/de/LC_MESSAGES; a generated toy corpus where there are none);
2. the translation pipeline's prepare (``labelreg_nlp.experiments.translation``, also behind scripts/nmt.py):
   Moses-tokenize, clean the training pairs, learn and apply joint BPE, ``fairseq-preprocess``;
3. train a small transformer on CPU with each criterion for ``--max-epoch`` epochs (a fixed amount
   of work, so every machine trains the same model: a slower one takes longer, it does not get
   a worse one);
4. ``fairseq-generate`` (beam 5) on the test split, remove BPE, detokenize, score with SacreBLEU;
5. score the confidence of every target token of valid and test (teacher forcing) and save it for
   ``labelreg-nlp evaluate``;
6. print a table.

A --workdir that holds a demo is refused unless --resume (same options: finished criteria are
kept, an interrupted one continues from its last checkpoint) or --overwrite.

Example:  python scripts/demo.py --max-epoch 7 --criteria ls,maxsup
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from labelreg_nlp.experiments import translation as T  # noqa: E402
from labelreg_nlp.experiments.corpora import DEFAULT_LOCALE_DIR, offline_de_en_pairs, split_pairs  # noqa: E402
from labelreg_nlp.experiments.run_dirs import RunDirError, RunManifest, claim_run_dir, mark_run  # noqa: E402

SRC, TGT = "de", "en"


def log(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def prepare(work: Path, args) -> tuple[str, dict[str, int]]:
    """The pipeline's prepare (Moses tokenization, cleaning, joint BPE, fairseq-preprocess) on the
    offline corpus, cased, with fixed valid/test splits. Re-runs are skipped."""
    pairs, name = offline_de_en_pairs(args.locale_dir)
    if args.max_pairs:
        pairs = pairs[: args.max_pairs]
    splits = split_pairs(pairs, valid=args.valid_size, test=args.test_size, seed=args.seed)
    opts = T.PrepareOptions(src=SRC, tgt=TGT, bpe_merges=args.bpe_merges, lowercase=False)
    done = T.prepare(splits, work, opts, corpus=name)
    return name, done["sizes"]


# seconds per epoch of the default model and corpus on a 2-core CPU (for the estimate printed up front)
SECONDS_PER_EPOCH = 43


def progress(name: str, epochs: int):
    """An ``echo`` for the training output: one line per finished epoch, errors as they are."""
    start = time.time()
    summary = re.compile(r"\| valid \| epoch (\d+) \|.*?\| nll_loss ([\d.]+).*?\| num_updates (\d+)")

    def echo(line: str) -> bool:
        match = summary.search(line)
        if match:
            epoch, nll, updates = int(match[1]), float(match[2]), int(match[3])
            minutes = (time.time() - start) / 60
            log(f"{name}: epoch {epoch}/{epochs} done, {updates} updates, valid nll {nll:.3f} (base 2), "
                f"{minutes:.1f} min so far")
        return "Error" in line or "Traceback" in line

    return echo


def train(work: Path, name: str, args) -> dict:
    """fairseq-train; with --resume it continues from the criterion's checkpoint_last.pt."""
    model = T.tiny_recipe(embed_dim=args.embed_dim, layers=args.layers, heads=args.heads, lr=args.lr,
                          warmup=args.warmup, max_tokens=args.max_tokens)
    extra = ["--log-interval", str(args.log_interval)]
    save = work / "checkpoints" / name
    return T.train(work / "data-bin", save, name, args.seed, alpha=args.alpha, model=model, max_epoch=args.max_epoch,
                   extra=extra, fp16=args.fp16, echo=progress(name, args.max_epoch), log_file=save / "train.log")


# options that change nothing in the results: left out of the run manifest
NOT_RESULT_OPTIONS = ("workdir", "log_interval", "resume", "overwrite")


def manifest(args) -> RunManifest:
    options = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k not in NOT_RESULT_OPTIONS}
    return RunManifest("demo", options)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path("runs") / "demo", help="where data, checkpoints and results go (default: runs/demo, under the current folder)")
    p.add_argument("--criteria", default="ls,maxsup", help=f"comma-separated, from {sorted(T.CRITERIA)} (none = no smoothing; default: ls,maxsup)")
    p.add_argument("--alpha", type=float, default=0.1, help="weight of ls, maxsup, lspp, lls (default 0.1)")
    p.add_argument("--max-epoch", type=int, default=7, help="training epochs per criterion (default 7: about 1,280 "
                   "updates, 5 minutes on an idle 2-core CPU)")
    p.add_argument("--seed", type=int, default=1, help="data split and training seed (default 1)")
    p.add_argument("--locale-dir", default=DEFAULT_LOCALE_DIR, help="gettext catalogs to read the corpus from")
    p.add_argument("--max-pairs", type=int, default=0, help="use only the first N pairs (0 = all)")
    p.add_argument("--valid-size", type=int, default=500, help="validation pairs (default 500)")
    p.add_argument("--test-size", type=int, default=500, help="test pairs (default 500)")
    p.add_argument("--bpe-merges", type=int, default=4000, help="joint BPE merges (default 4000)")
    p.add_argument("--embed-dim", type=int, default=128, help="transformer width (ffn = 2x; default 128)")
    p.add_argument("--layers", type=int, default=2, help="encoder and decoder layers (default 2)")
    p.add_argument("--heads", type=int, default=4, help="attention heads (default 4)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    p.add_argument("--warmup", type=int, default=200, help="inverse_sqrt warmup updates (default 200)")
    p.add_argument("--max-tokens", type=int, default=2048, help="tokens per batch (default 2048)")
    p.add_argument("--log-interval", type=int, default=50, help="updates between progress lines (default 50)")
    p.add_argument("--fp16", action="store_true", help="train in mixed precision (fairseq's --fp16; needs a CUDA "
                                                       "device, which the demo uses whenever there is one)")
    p.add_argument("--resume", action="store_true", help="continue the demo in --workdir (same options): finished "
                   "criteria are kept, an interrupted one continues from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="delete the demo in --workdir and run it anew")
    args = p.parse_args(argv)
    names = [c.strip() for c in args.criteria.split(",") if c.strip()]
    unknown = [c for c in names if c not in T.CRITERIA]
    if unknown or not names:
        p.error(f"--criteria: unknown {unknown or names!r}; choose from {sorted(T.CRITERIA)}")
    if not (0.0 <= args.alpha <= 1.0):
        p.error(f"--alpha must be in [0, 1], got {args.alpha}")
    if args.max_epoch < 1:
        p.error(f"--max-epoch must be >= 1, got {args.max_epoch}")
    if args.fp16 and not T.cuda_available():
        p.error("--fp16 needs a CUDA device, and torch sees none")

    work = args.workdir.resolve()
    try:
        return run(work, names, args)
    except RunDirError as error:  # the folder is left as it was
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (T.FairseqFailed, ValueError, FileNotFoundError) as error:
        mark_run(work, "stopped")  # what finished is kept: --resume continues
        print(f"error: {error}", file=sys.stderr)
        return 2


def run(work: Path, names: list[str], args) -> int:
    claim_run_dir(work, manifest(args), resume=args.resume, overwrite=args.overwrite, flag="--workdir",
                  overwrite_flag="--overwrite (make demo DEMO_ARGS=--overwrite)")
    corpus, sizes = prepare(work, args)
    expected = SECONDS_PER_EPOCH * args.max_epoch * len(names) / 60
    log(f"{len(names)} criteria x {args.max_epoch} epochs: about {expected:.0f} min of training with the default "
        "model on an idle 2-core CPU (longer on a busy one, same result), then beam search")
    rows = []
    for name in names:
        done = work / "checkpoints" / name / "row.json"
        if done.is_file():
            log(f"'{name}' finished before (--resume): kept")
            rows.append(json.loads(done.read_text()))
            signature = rows[-1]["signature"]
            continue
        log(f"training '{name}' (alpha={args.alpha}) for {args.max_epoch} epochs")
        stats = train(work, name, args)
        log(f"evaluating '{name}' on the test split ({sizes['test']} sentences, beam 5)")
        scores = T.evaluate(work / "data-bin", stats["checkpoint"], work / "ref" / f"test.{TGT}", beam=5, tgt=TGT)
        signature = scores["signature"]
        log(f"token confidence of '{name}' on valid and test (teacher forcing) -> {work / 'predictions' / name}")
        scores.update(T.save_token_scores(work / "data-bin", stats["checkpoint"], work / "predictions" / name))
        T.save_for_compare(work / "predictions" / name, scores, work / "ref" / f"test.{TGT}", criterion=name,
                           seed=args.seed)
        alpha = args.alpha if name not in ("none", "ols") else 0.0
        rows.append({"criterion": name, "alpha": alpha, **stats, "bleu": scores["bleu"], "signature": signature,
                     **{k: scores[k] for k in ("token_aurc_msp", "token_aurc_pnorm", "pnorm")}})
        done.write_text(json.dumps(rows[-1], indent=1))
    results = {"corpus": corpus, "sizes": sizes, "signature": signature, "rows": rows}
    (work / "results.json").write_text(json.dumps(results, indent=2))
    mark_run(work, "finished")

    print()
    print(f"De->En, {corpus} corpus {sizes}, detokenized SacreBLEU on test")
    print(f"signature: {signature}")
    print()
    print("| criterion | alpha | epochs | updates | train min | best valid nll (base 2) | BLEU "
          "| token AURC (MSP) | token AURC (pNorm) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['criterion']} | {r['alpha']:g} | {r['epochs']} | {r['updates']} | {r['train_minutes']:.1f} "
              f"| {r['best_valid_nll'] or float('nan'):.3f} | {r['bleu']:.2f} | {r['token_aurc_msp']:.4f} "
              f"| {r['token_aurc_pnorm']:.4f} ({r['pnorm']}) |")
    print(f"\nresults: {work / 'results.json'}")
    print(f"token confidence (AURC, pNorm, figures): labelreg-nlp evaluate {work / 'predictions'}/* --plots FOLDER")
    return 0


if __name__ == "__main__":
    sys.exit(main())
