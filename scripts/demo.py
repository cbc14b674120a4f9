#!/usr/bin/env python
"""The main job on an embedded default: De->En translation with LS vs MaxSup, no download.

1. build a German-English corpus from this machine's gettext catalogs
   (/usr/share/locale/de/LC_MESSAGES; a generated toy corpus where there are none);
2. Moses-tokenize, learn and apply joint BPE, ``fairseq-preprocess --joined-dictionary``;
3. train a small transformer on CPU with each criterion for ``--minutes`` minutes;
4. ``fairseq-generate`` (beam 5) on the test split, remove BPE, detokenize, score with SacreBLEU;
5. print a table.

Example:  python scripts/demo.py --minutes 3 --criteria ls,maxsup
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a clone without installing too

from labelreg_nlp.corpora import DEFAULT_LOCALE_DIR, offline_de_en_pairs, split_pairs  # noqa: E402

SRC, TGT = "de", "en"

# name -> fairseq criterion arguments (alpha filled in from --alpha)
CRITERIA = {
    "ce": lambda a: ["--criterion", "ls_cross_entropy", "--label-smoothing", "0"],
    "ls": lambda a: ["--criterion", "ls_cross_entropy", "--label-smoothing", str(a)],
    "maxsup": lambda a: ["--criterion", "maxsup_cross_entropy", "--maxsup-alpha", str(a)],
}


def log(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def fairseq(command: str, args: list[str], echo=lambda line: True) -> str:
    """Run ``python -m fairseq_cli.<command> args``; print the lines ``echo`` accepts as they
    come; return the whole output. On failure, show its last lines and raise."""
    cmd = [sys.executable, "-m", f"fairseq_cli.{command}", *args]
    log("$ fairseq-" + command + " " + " ".join(args))
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "PYTHONUNBUFFERED": "1"}
    lines = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        for line in proc.stdout:
            lines.append(line)
            if echo(line):
                print("    " + line.rstrip(), flush=True)
    if proc.returncode:
        sys.stderr.write("".join(lines[-40:]))
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return "".join(lines)


def _progress_line(line: str) -> bool:
    return any(tag in line for tag in ("| INFO | train |", "| INFO | valid |", "done training", "Error"))


def prepare(work: Path, args) -> tuple[str, dict[str, int]]:
    """Corpus -> tokenized -> BPE -> fairseq binary data in work/data-bin. Re-runs are skipped."""
    from sacremoses import MosesTokenizer
    from subword_nmt.apply_bpe import BPE
    from subword_nmt.learn_bpe import learn_bpe

    pairs, name = offline_de_en_pairs(args.locale_dir)
    if args.max_pairs:
        pairs = pairs[: args.max_pairs]
    splits = split_pairs(pairs, valid=args.valid_size, test=args.test_size, seed=args.seed)
    sizes = {k: len(v) for k, v in splits.items()}
    stamp = work / "prepared.json"
    meta = {"corpus": name, "sizes": sizes, "bpe_merges": args.bpe_merges, "max_pairs": args.max_pairs}
    if stamp.exists() and json.loads(stamp.read_text()) == meta:
        log(f"corpus already prepared in {work} ({name}: {sizes})")
        return name, sizes
    log(f"corpus: {name}, {len(pairs)} pairs -> {sizes}")
    raw, tok, bpe_dir = work / "raw", work / "tok", work / "bpe"
    for d in (raw, tok, bpe_dir):
        d.mkdir(parents=True, exist_ok=True)
    tokenizers = {lang: MosesTokenizer(lang=lang) for lang in (SRC, TGT)}
    for split, items in splits.items():
        for i, lang in enumerate((SRC, TGT)):
            lines = [p[i] for p in items]
            (raw / f"{split}.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
            toks = [tokenizers[lang].tokenize(s, escape=False, return_str=True) for s in lines]
            (tok / f"{split}.{lang}").write_text("\n".join(toks) + "\n", encoding="utf-8")
    log(f"learning joint BPE ({args.bpe_merges} merges)")
    joint = tok / "train.joint"
    joint.write_text((tok / f"train.{SRC}").read_text("utf-8") + (tok / f"train.{TGT}").read_text("utf-8"), "utf-8")
    codes = bpe_dir / "codes"
    with joint.open(encoding="utf-8") as fin, codes.open("w", encoding="utf-8") as fout:
        learn_bpe(fin, fout, args.bpe_merges)
    with codes.open(encoding="utf-8") as fin:
        bpe = BPE(fin)
    for split in splits:
        for lang in (SRC, TGT):
            lines = (tok / f"{split}.{lang}").read_text("utf-8").splitlines()
            (bpe_dir / f"{split}.{lang}").write_text("\n".join(bpe.process_line(s) for s in lines) + "\n", "utf-8")
    fairseq("preprocess", [
        "--source-lang", SRC, "--target-lang", TGT, "--joined-dictionary", "--workers", "2",
        "--trainpref", str(bpe_dir / "train"), "--validpref", str(bpe_dir / "valid"),
        "--testpref", str(bpe_dir / "test"), "--destdir", str(work / "data-bin"),
    ])
    stamp.write_text(json.dumps(meta))
    return name, sizes


def model_args(args) -> list[str]:
    d, f, layers, heads = str(args.embed_dim), str(args.embed_dim * 2), str(args.layers), str(args.heads)
    return [
        "--arch", "transformer", "--share-all-embeddings",
        "--encoder-layers", layers, "--decoder-layers", layers,
        "--encoder-embed-dim", d, "--decoder-embed-dim", d,
        "--encoder-ffn-embed-dim", f, "--decoder-ffn-embed-dim", f,
        "--encoder-attention-heads", heads, "--decoder-attention-heads", heads,
    ]


def train(work: Path, name: str, args) -> dict:
    save_dir = work / "checkpoints" / name
    cmd = [
        str(work / "data-bin"), "--user-dir", str(REPO / "criterions"), *model_args(args),
        *CRITERIA[name](args.alpha), "--report-accuracy",
        "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--lr", str(args.lr),
        "--lr-scheduler", "inverse_sqrt", "--warmup-updates", str(args.warmup), "--clip-norm", "0.0",
        "--dropout", "0.1", "--weight-decay", "0.0001", "--max-tokens", str(args.max_tokens),
        "--max-epoch", str(args.max_epoch), "--stop-time-hours", f"{args.minutes / 60:.6f}",
        "--save-dir", str(save_dir), "--no-epoch-checkpoints", "--no-last-checkpoints",
        "--seed", str(args.seed), "--num-workers", "0", "--log-format", "simple",
        "--log-interval", str(args.log_interval), "--patience", "-1",
    ]
    if not _cuda():
        cmd.append("--cpu")
    start = time.time()
    out = fairseq("train", cmd, echo=_progress_line)
    minutes = (time.time() - start) / 60
    epochs = re.findall(r"end of epoch (\d+)", out)
    valid = re.findall(r"\| valid on 'valid' subset \|.*?\| nll_loss ([\d.]+)", out)
    updates = re.findall(r"num_updates (\d+)", out)
    return {
        "epochs": int(epochs[-1]) if epochs else 0,
        "updates": int(updates[-1]) if updates else 0,
        "best_valid_nll": min(map(float, valid)) if valid else float("nan"),
        "train_minutes": minutes,
        "checkpoint": str(save_dir / "checkpoint_best.pt"),
    }


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def evaluate(work: Path, checkpoint: str, args) -> tuple[float, str]:
    """Detokenized SacreBLEU of beam-5 translations of the test split."""
    import sacrebleu
    from sacremoses import MosesDetokenizer

    results = Path(checkpoint).parent
    cmd = [str(work / "data-bin"), "--user-dir", str(REPO / "criterions"), "--path", checkpoint,
           "--gen-subset", "test", "--beam", "5", "--remove-bpe", "--batch-size", "128",
           "--max-len-a", "1.2", "--max-len-b", "10", "--results-path", str(results),
           # fairseq main drops the tail of a fixed-size batching that is not a multiple of 8
           # (the longest sentences, silently); 1 keeps every test sentence.
           "--required-batch-size-multiple", "1"]
    if not _cuda():
        cmd.append("--cpu")
    fairseq("generate", cmd, echo=lambda line: "Generate test with beam" in line)
    # its own file: on a shared pipe, log lines could interleave with the hypotheses
    hyps = {}
    for line in (results / "generate-test.txt").read_text("utf-8").splitlines():
        if line.startswith("H-"):
            idx, _score, *text = line.rstrip("\n").split("\t", 2)
            hyps[int(idx[2:])] = text[0] if text else ""
    refs = (work / "raw" / f"test.{TGT}").read_text("utf-8").splitlines()
    if len(hyps) != len(refs):
        raise RuntimeError(f"fairseq-generate produced {len(hyps)} hypotheses for {len(refs)} test sentences")
    detok = MosesDetokenizer(lang=TGT)
    sys_out = [detok.detokenize(hyps[i].split()) for i in range(len(refs))]
    (results / "test.hyp.detok.en").write_text("\n".join(sys_out) + "\n", "utf-8")
    bleu = sacrebleu.metrics.BLEU()
    score = bleu.corpus_score(sys_out, [refs])
    return score.score, str(bleu.get_signature())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=REPO / "runs" / "demo", help="where data, checkpoints and results go (default: runs/demo)")
    p.add_argument("--criteria", default="ls,maxsup", help=f"comma-separated, from {sorted(CRITERIA)} (ce = no smoothing; default: ls,maxsup)")
    p.add_argument("--alpha", type=float, default=0.1, help="label-smoothing / MaxSup weight (default 0.1)")
    p.add_argument("--minutes", type=float, default=3.0, help="training wall time per criterion (default 3)")
    p.add_argument("--max-epoch", type=int, default=100, help="epoch cap; training stops at --minutes first (default 100)")
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
    args = p.parse_args(argv)
    names = [c.strip() for c in args.criteria.split(",") if c.strip()]
    unknown = [c for c in names if c not in CRITERIA]
    if unknown or not names:
        p.error(f"--criteria: unknown {unknown or names!r}; choose from {sorted(CRITERIA)}")
    if not (0.0 <= args.alpha <= 1.0):
        p.error(f"--alpha must be in [0, 1], got {args.alpha}")
    if args.minutes <= 0:
        p.error(f"--minutes must be > 0, got {args.minutes}")

    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    corpus, sizes = prepare(work, args)
    rows = []
    for name in names:
        log(f"training '{name}' (alpha={args.alpha}) for up to {args.minutes:g} min")
        stats = train(work, name, args)
        log(f"evaluating '{name}' on the test split ({sizes['test']} sentences, beam 5)")
        bleu, signature = evaluate(work, stats["checkpoint"], args)
        rows.append({"criterion": name, "alpha": 0.0 if name == "ce" else args.alpha, **stats, "bleu": bleu})
    results = {"corpus": corpus, "sizes": sizes, "signature": signature, "rows": rows}
    (work / "results.json").write_text(json.dumps(results, indent=2))

    print()
    print(f"De->En, {corpus} corpus {sizes}, detokenized SacreBLEU on test")
    print(f"signature: {signature}")
    print()
    print("| criterion | alpha | epochs | updates | train min | best valid nll (base 2) | BLEU |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['criterion']} | {r['alpha']:g} | {r['epochs']} | {r['updates']} | {r['train_minutes']:.1f} "
              f"| {r['best_valid_nll']:.3f} | {r['bleu']:.2f} |")
    print(f"\nresults: {work / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
