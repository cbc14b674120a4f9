"""Translation pipeline on fairseq: prepare, train, evaluate (detokenized SacreBLEU), compare.

``prepare`` follows fairseq's ``examples/translation/prepare-iwslt14.sh`` on any parallel text:
Moses tokenization (sacremoses, no XML escaping), length-ratio cleaning of the training pairs
(``clean-corpus-n.perl -ratio 1.5``, 1..175 words), lowercasing, every 23rd training pair as
validation, joint BPE (subword-nmt, 10k merges), ``fairseq-preprocess --joined-dictionary``.
The untokenized test targets (lowercased like the model's output) are the BLEU references.

``train`` runs one criterion and seed with fairseq's IWSLT14 recipe (or a tiny CPU model);
``evaluate`` decodes the test set with beam 5, removes BPE, detokenizes and appends SacreBLEU to
a JSON-lines file; ``compare`` prints mean +- sample std per criterion, like the MaxSup paper's
Table 6.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..integrations.fairseq_command import allow_fairseq_checkpoints, fairseq_command_line, user_dir
from ..losses.registry import METHODS, get_method
from .run_dirs import RunManifest

USER_DIR = user_dir()
CRITERIA: tuple[str, ...] = tuple(METHODS)  # what ``train --criterion`` accepts: the registry's methods


def criterion_args(method: str, alpha: float) -> list[str]:
    """fairseq-train arguments that select ``method`` with weight ``alpha`` (ignored by methods
    without one): ``--criterion maxsup_cross_entropy --maxsup-alpha 0.1``."""
    return fairseq_command_line(method, alpha if get_method(method).has_alpha else None)


# fairseq's examples/translation README, IWSLT'14 German to English (transformer_iwslt_de_en)
IWSLT_RECIPE = [
    "--arch", "transformer_iwslt_de_en", "--share-decoder-input-output-embed",
    "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--clip-norm", "0.0",
    "--lr", "5e-4", "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "4000",
    "--dropout", "0.3", "--weight-decay", "0.0001", "--max-tokens", "4096",
]


def tiny_recipe(embed_dim: int = 128, layers: int = 2, heads: int = 4, lr: float = 1e-3, warmup: int = 200,
                max_tokens: int = 2048) -> list[str]:
    """A small transformer for CPU runs and tests (same optimizer family as the recipe)."""
    d, f = str(embed_dim), str(2 * embed_dim)
    return [
        "--arch", "transformer", "--share-all-embeddings",
        "--encoder-layers", str(layers), "--decoder-layers", str(layers),
        "--encoder-embed-dim", d, "--decoder-embed-dim", d, "--encoder-ffn-embed-dim", f,
        "--decoder-ffn-embed-dim", f, "--encoder-attention-heads", str(heads), "--decoder-attention-heads", str(heads),
        "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--clip-norm", "0.0", "--lr", str(lr),
        "--lr-scheduler", "inverse_sqrt", "--warmup-updates", str(warmup), "--dropout", "0.1",
        "--weight-decay", "0.0001", "--max-tokens", str(max_tokens),
    ]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


class FairseqFailed(RuntimeError):
    """A fairseq command that exited with an error; the message is one line: the command, its exit
    status, its last error line and where its whole output was written (``log_file``)."""

    def __init__(self, command: str, returncode: int, error: str, log_file: str | Path, when: str = "") -> None:
        self.command, self.returncode, self.error, self.log_file = command, returncode, error, Path(log_file)
        super().__init__(f"fairseq-{command} failed{when} (exit status {returncode}): {error[:300]} "
                         f"(its whole output: {log_file})")


def error_line(lines: list[str]) -> str:
    """The last line of an output that reads like an error (an exception, fairseq's ``| ERROR |``)."""
    for line in reversed(lines):
        text = line.strip()
        if text and ("Error" in text or "Exception" in text or "| ERROR |" in text) and not text.startswith("File "):
            return text
    return next((line.strip() for line in reversed(lines) if line.strip()), "no output")


def run_fairseq(command: str, args: list[str], echo: Callable[[str], bool] = lambda line: True,
                log_file: str | Path | None = None) -> str:
    """``python -m fairseq_cli.<command> args``, printing the lines ``echo`` accepts. Returns the
    whole output, also written to ``log_file`` when given.

    Raises:
        FairseqFailed: one line naming the command, its exit status and its last error line
            (the whole output is in ``log_file``, or a temporary file named in the message).
    """
    cmd = [sys.executable, "-m", f"fairseq_cli.{command}", *args]
    log("$ fairseq-" + command + " " + " ".join(args))
    env = allow_fairseq_checkpoints({**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        for line in proc.stdout:
            lines.append(line)
            if echo(line):
                print("    " + line.rstrip(), flush=True)
    output = "".join(lines)
    if proc.returncode and log_file is None:  # a failure's output is kept somewhere all the same
        import tempfile

        handle, log_file = tempfile.mkstemp(prefix=f"fairseq-{command}-", suffix=".log")
        os.close(handle)
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        Path(log_file).write_text(output, encoding="utf-8")
    if proc.returncode:
        raise FairseqFailed(command, proc.returncode, error_line(lines), log_file)
    return output


def epoch_summaries(output: str, prefix: str = "train") -> list[dict]:
    """The per-epoch summaries (``{prefix}_loss``, ``{prefix}_wps``, ``epoch``, ...) that a
    ``fairseq-train --log-format json`` run printed, in order; ``prefix`` is ``train`` or ``valid``."""
    rows = []
    for line in output.splitlines():
        start = line.find("{")
        if start < 0:
            continue
        try:
            row = json.loads(line[start:])
        except json.JSONDecodeError:
            continue
        if f"{prefix}_loss" in row and "epoch" in row and f"{prefix}_wps" in row:
            rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------- prepare
@dataclass
class PrepareOptions:
    src: str = "de"
    tgt: str = "en"
    bpe_merges: int = 10000
    lowercase: bool = True
    max_words: int = 175
    length_ratio: float = 1.5
    valid_every: int = 23
    workers: int = 2


def _keep_pair(src_tokens: str, tgt_tokens: str, opts: PrepareOptions) -> bool:
    """clean-corpus-n.perl: 1..max words on each side and a length ratio of at most ``length_ratio``."""
    n_src, n_tgt = len(src_tokens.split()), len(tgt_tokens.split())
    if not (1 <= n_src <= opts.max_words and 1 <= n_tgt <= opts.max_words):
        return False
    return n_src / n_tgt <= opts.length_ratio and n_tgt / n_src <= opts.length_ratio


def tokenize_splits(splits: dict[str, list[tuple[str, str]]], opts: PrepareOptions) -> dict[str, list[tuple[str, str]]]:
    """Moses-tokenized (and lowercased) ``train``/``valid``/``test`` pairs; training pairs cleaned by
    ``clean-corpus-n``'s rules, and without a ``valid`` split every ``valid_every``-th of them held out."""
    from sacremoses import MosesTokenizer

    tokenizers = {lang: MosesTokenizer(lang=lang) for lang in (opts.src, opts.tgt)}

    def tok(text: str, lang: str) -> str:
        text = tokenizers[lang].tokenize(text, escape=False, return_str=True)
        return text.lower() if opts.lowercase else text

    def tokenize(pairs):
        return [(tok(s, opts.src), tok(t, opts.tgt)) for s, t in pairs]

    log(f"tokenizing {sum(len(v) for v in splits.values())} pairs")
    train = [p for p in tokenize(splits["train"]) if _keep_pair(*p, opts)]
    if splits.get("valid"):
        valid = tokenize(splits["valid"])
    else:  # prepare-iwslt14.sh: awk '{if (NR%23 == 0) print > valid; else print > train}'
        valid = [p for i, p in enumerate(train, 1) if i % opts.valid_every == 0]
        train = [p for i, p in enumerate(train, 1) if i % opts.valid_every != 0]
    if not train or not valid:
        raise ValueError(f"after cleaning, {len(train)} training and {len(valid)} validation pairs are left")
    return {"train": train, "valid": valid, "test": tokenize(splits["test"])}


def apply_joint_bpe(tok_dir: Path, bpe_dir: Path, splits: Iterable[str], opts: PrepareOptions) -> None:
    """Learn joint BPE codes on the tokenized training text of both languages (``bpe_dir/code``)
    and apply them to every split."""
    from subword_nmt.apply_bpe import BPE
    from subword_nmt.learn_bpe import learn_bpe

    log(f"learning joint BPE ({opts.bpe_merges} merges)")
    joint = tok_dir / f"train.{opts.src}-{opts.tgt}"
    joint.write_text((tok_dir / f"train.{opts.src}").read_text("utf-8") + (tok_dir / f"train.{opts.tgt}").read_text("utf-8"),
                     encoding="utf-8")
    codes = bpe_dir / "code"
    with joint.open(encoding="utf-8") as fin, codes.open("w", encoding="utf-8") as fout:
        learn_bpe(fin, fout, opts.bpe_merges)
    with codes.open(encoding="utf-8") as fin:
        bpe = BPE(fin)
    for split in splits:
        for lang in (opts.src, opts.tgt):
            lines = (tok_dir / f"{split}.{lang}").read_text("utf-8").splitlines()
            (bpe_dir / f"{split}.{lang}").write_text("".join(bpe.process_line(s) + "\n" for s in lines), "utf-8")


def prepare(splits: dict[str, list[tuple[str, str]]], out_dir: str | Path, opts: PrepareOptions | None = None,
            corpus: str = "") -> dict:
    """``splits``: untokenized pairs for ``train`` and ``test`` (``valid`` optional: else every
    ``valid_every``-th cleaned training pair). Writes ``out_dir/data-bin`` (fairseq), ``out_dir/bpe``,
    ``out_dir/ref/test.<tgt>`` and ``out_dir/prepared.json``; skips everything when a finished
    run with the same inputs and options is there."""
    opts = opts or PrepareOptions()
    out = Path(out_dir)
    for split in ("train", "test"):
        if not splits.get(split):
            raise ValueError(f"prepare needs non-empty {split!r} pairs, got {len(splits.get(split) or [])}")
    fingerprint = {"corpus": corpus, "options": asdict(opts),
                   "sizes_in": {k: len(v) for k, v in splits.items()},
                   "head": {k: v[:3] for k, v in splits.items()}}
    stamp = out / "prepared.json"
    if stamp.exists():
        done = json.loads(stamp.read_text())
        if done.get("fingerprint") == json.loads(json.dumps(fingerprint)):
            log(f"already prepared in {out}: {done['sizes']}")
            return done
    tokenized = tokenize_splits(splits, opts)
    tok_dir, bpe_dir, ref_dir = out / "tok", out / "bpe", out / "ref"
    for d in (tok_dir, bpe_dir, ref_dir):
        d.mkdir(parents=True, exist_ok=True)
    for split, pairs in tokenized.items():
        for i, lang in enumerate((opts.src, opts.tgt)):
            (tok_dir / f"{split}.{lang}").write_text("".join(p[i] + "\n" for p in pairs), encoding="utf-8")
    references = [t.lower() if opts.lowercase else t for _, t in splits["test"]]
    (ref_dir / f"test.{opts.tgt}").write_text("".join(r + "\n" for r in references), encoding="utf-8")
    apply_joint_bpe(tok_dir, bpe_dir, tokenized, opts)
    run_fairseq("preprocess", [
        "--source-lang", opts.src, "--target-lang", opts.tgt, "--joined-dictionary", "--workers", str(opts.workers),
        "--trainpref", str(bpe_dir / "train"), "--validpref", str(bpe_dir / "valid"),
        "--testpref", str(bpe_dir / "test"), "--destdir", str(out / "data-bin"),
    ], echo=lambda line: "| INFO | fairseq_cli.preprocess | [" in line)
    done = {"fingerprint": fingerprint, "corpus": corpus, "src": opts.src, "tgt": opts.tgt,
            "sizes": {k: len(v) for k, v in tokenized.items()}}
    stamp.write_text(json.dumps(done, indent=1))
    return done


def read_parallel(source: str | Path, target: str | Path) -> list[tuple[str, str]]:
    """Line-aligned plain text files -> pairs (an error names the files when counts differ)."""
    for path in (source, target):
        if not Path(path).is_file():
            raise FileNotFoundError(f"parallel text file not found: {path}")
    src_lines = Path(source).read_text(encoding="utf-8").splitlines()
    tgt_lines = Path(target).read_text(encoding="utf-8").splitlines()
    if len(src_lines) != len(tgt_lines):
        raise ValueError(f"{source} has {len(src_lines)} lines but {target} has {len(tgt_lines)}")
    return [(s.strip(), t.strip()) for s, t in zip(src_lines, tgt_lines, strict=True)]


# ------------------------------------------------------------------------------------------ train
@dataclass
class TrainSettings:
    """Every option of one training run that changes its result; the run's folder is named by them.

    Example:
        >>> a = TrainSettings("ls", 1, alpha=0.1, model=tiny_recipe(), max_epoch=7)
        >>> b = TrainSettings("ls", 1, alpha=0.3, model=tiny_recipe(), max_epoch=7)
        >>> a.run_name().startswith("ls-a0.1-seed1-"), a.run_name() != b.run_name()
        (True, True)
        >>> b.manifest().differences(a.manifest())
        ['alpha 0.1 (now 0.3)']
    """

    criterion: str
    seed: int
    alpha: float | None = None  # None for methods without one
    recipe: str = "iwslt"
    model: list[str] = field(default_factory=list)  # fairseq model and optimizer arguments
    max_epoch: int | None = None
    minutes: float | None = None
    device: str = "cpu"  # "cpu" or "cuda"
    fp16: bool = False
    extra: list[str] = field(default_factory=list)  # further fairseq-train arguments

    def grouping(self) -> dict[str, Any]:
        """The settings without the seed: runs that differ only by seed are seeds of one setting."""
        return {k: v for k, v in asdict(self).items() if k != "seed"}

    def run_name(self) -> str:
        """``CRITERION[-aALPHA]-seedSEED-HASH``, HASH of every setting but the seed."""
        digest = hashlib.sha1(json.dumps(self.grouping(), sort_keys=True).encode()).hexdigest()[:8]
        alpha = f"-a{self.alpha:g}" if self.alpha is not None else ""
        return f"{self.criterion}{alpha}-seed{self.seed}-{digest}"

    def manifest(self) -> RunManifest:
        return RunManifest("nmt.train", asdict(self))


def train(data_dir: str | Path, save_dir: str | Path, criterion: str, seed: int, *, alpha: float = 0.1,
          model: list[str] | None = None, max_epoch: int | None = None, minutes: float | None = None,
          extra: Iterable[str] = (), cpu: bool | None = None, fp16: bool | None = None,
          echo: Callable[[str], bool] | None = None, log_file: str | Path | None = None) -> dict:
    """One ``fairseq-train`` run; returns epochs, updates, best valid nll, minutes, seconds per
    epoch and the best checkpoint. ``model``: fairseq arguments of the model and optimizer
    (default :data:`IWSLT_RECIPE`). ``echo(line)`` decides which output lines are shown (default:
    fairseq's epoch summaries and errors)."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    cpu = (not cuda_available()) if cpu is None else cpu
    fp16 = (not cpu) if fp16 is None else fp16
    save = Path(save_dir)
    cmd = [str(data_dir), "--user-dir", str(USER_DIR), *(model or IWSLT_RECIPE), *criterion_args(criterion, alpha),
           "--report-accuracy", "--save-dir", str(save), "--seed", str(seed), "--no-epoch-checkpoints",
           "--log-format", "simple", "--log-interval", "100", "--num-workers", "0", "--patience", "-1"]
    if max_epoch:
        cmd += ["--max-epoch", str(max_epoch)]
    if minutes:
        cmd += ["--stop-time-hours", f"{minutes / 60:.6f}"]
    if cpu:
        cmd.append("--cpu")
    if fp16:
        cmd.append("--fp16")
    cmd += list(extra)
    start = time.time()
    output = run_fairseq("train", cmd, echo=echo or (lambda line: any(
        tag in line for tag in ("| INFO | train |", "| INFO | valid |", "done training", "Error"))),
        log_file=log_file)
    seconds = time.time() - start
    epoch_times = [float(t) for t in re.findall(r"\| train \| epoch \d+ \|.*?\| train_wall ([\d.]+)", output)]
    valid = re.findall(r"\| valid on 'valid' subset \|.*?\| nll_loss ([\d.]+)", output)
    updates = re.findall(r"num_updates (\d+)", output)
    epochs = re.findall(r"end of epoch (\d+)", output)
    return {
        "epochs": int(epochs[-1]) if epochs else 0,
        "updates": int(updates[-1]) if updates else 0,
        "best_valid_nll": min(map(float, valid)) if valid else None,
        "train_minutes": round(seconds / 60, 2),
        "seconds_per_epoch": round(statistics.mean(epoch_times), 1) if epoch_times else None,
        "checkpoint": str(save / "checkpoint_best.pt"),
    }


# --------------------------------------------------------------------------------------- evaluate
def evaluate(data_dir: str | Path, checkpoint: str | Path, reference: str | Path, *, beam: int = 5,
             tgt: str = "en", batch_size: int = 128, cpu: bool | None = None) -> dict:
    """Beam search on the test split, BPE removed, Moses-detokenized, SacreBLEU against the raw
    references. Returns bleu, signature and the hypotheses file."""
    import sacrebleu
    from sacremoses import MosesDetokenizer

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    references = Path(reference).read_text(encoding="utf-8").splitlines()
    results = checkpoint.parent / "generate"
    cpu = (not cuda_available()) if cpu is None else cpu
    cmd = [str(data_dir), "--user-dir", str(USER_DIR), "--path", str(checkpoint), "--gen-subset", "test",
           "--beam", str(beam), "--remove-bpe", "--batch-size", str(batch_size), "--max-len-a", "1.2",
           "--max-len-b", "10", "--results-path", str(results),
           # fairseq main silently drops the tail of a fixed-size batching that is not a multiple of 8
           "--required-batch-size-multiple", "1"]
    if cpu:
        cmd.append("--cpu")
    run_fairseq("generate", cmd, echo=lambda line: "Generate test with beam" in line)
    hypotheses = {}
    for line in (results / "generate-test.txt").read_text("utf-8").splitlines():
        if line.startswith("H-"):
            index, _score, *text = line.split("\t", 2)
            hypotheses[int(index[2:])] = text[0] if text else ""
    if len(hypotheses) != len(references):
        raise RuntimeError(f"fairseq-generate gave {len(hypotheses)} hypotheses for {len(references)} references")
    detok = MosesDetokenizer(lang=tgt)
    system = [detok.detokenize(hypotheses[i].split()) for i in range(len(references))]
    hyp_file = results / f"test.detok.{tgt}"
    hyp_file.write_text("".join(s + "\n" for s in system), encoding="utf-8")
    bleu = sacrebleu.metrics.BLEU()
    score = bleu.corpus_score(system, [references])
    return {"bleu": round(score.score, 2), "signature": str(bleu.get_signature()), "hypotheses": str(hyp_file)}


def save_token_scores(data_dir: str | Path, checkpoint: str | Path, out_dir: str | Path,
                      splits: Iterable[str] = ("valid", "test"), cpu: bool | None = None) -> dict:
    """Teacher-forced token confidence of ``checkpoint`` on ``splits``, saved as
    ``OUT_DIR/SPLIT.npz`` for ``labelreg-nlp evaluate``. Returns the last split's token accuracy
    and AURC with the MSP and with pNorm (p picked on the first split)."""
    from ..analysis.token_confidence import fairseq_token_scores
    from ..metrics.evaluation import evaluate_confidence

    scored = {}
    for split in splits:
        scored[split] = fairseq_token_scores(data_dir, checkpoint, split, cpu=cpu)
        scored[split].save(Path(out_dir) / f"{split}.npz")
    names = list(scored)
    report = evaluate_confidence(scored[names[-1]], scored[names[0]] if len(names) > 1 else None)
    return {"token_accuracy": round(report.accuracy, 4), "token_aurc_msp": round(report.row("msp").aurc, 4),
            "token_aurc_pnorm": round(report.row("pnorm").aurc, 4), "pnorm": report.pnorm.label,
            "token_scores": str(out_dir)}


def save_for_compare(out_dir: str | Path, scores: dict, reference: str | Path, **record) -> None:
    """Save what ``labelreg-nlp compare`` reads beside the token scores: the detokenized
    hypotheses (``test.hyp``), the raw references (``test.ref``) and ``results.json`` with
    ``record`` (the seed, which pairs runs across methods) and the BLEU.

    Args:
        out_dir: the run's predictions folder (the one ``save_token_scores`` wrote).
        scores: what :func:`evaluate` returned.
        reference: the raw test references ``scores`` was computed against.
        record: more fields for results.json, e.g. ``criterion="ls", seed=1``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(scores["hypotheses"], out_dir / "test.hyp")
    shutil.copyfile(reference, out_dir / "test.ref")
    (out_dir / "results.json").write_text(json.dumps({**record, "bleu": scores["bleu"]}) + "\n")


def append_result(path: str | Path, record: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def read_results(paths: Iterable[str | Path]) -> list[dict]:
    records = []
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"results file not found: {path}")
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    raise ValueError(f"{path}:{number}: not a JSON line") from None
                if "criterion" not in record or "bleu" not in record:
                    raise ValueError(f"{path}:{number}: a result needs 'criterion' and 'bleu'")
                records.append(record)
    return records


# ---------------------------------------------------------------------------------------- compare
def setting_groups(records: list[dict], order: Iterable[str] = CRITERIA) -> list[tuple[str, list[dict]]]:
    """The results rows grouped by setting (criterion and every other result-changing option;
    runs that differ only by seed are one group), in ``order`` of criteria: ``(label, runs in
    seed order)``. A criterion with several settings is labelled by the options that tell them
    apart. The last result per (setting, seed) counts."""
    def group_of(record: dict) -> str:
        return json.dumps([record["criterion"], record.get("settings") or {}], sort_keys=True)

    latest: dict[tuple[str, str], dict] = {}
    for record in records:
        latest[(group_of(record), str(record.get("seed")))] = record
    groups: dict[str, dict] = {}
    for (group, _seed), record in latest.items():
        groups.setdefault(group, record)
    labels = _setting_labels(groups)
    rank = {name: i for i, name in enumerate(order)}
    names = sorted(groups, key=lambda g: (rank.get(groups[g]["criterion"], len(rank)), groups[g]["criterion"], labels[g]))
    out = []
    for group in names:
        seeds = sorted((s for g, s in latest if g == group), key=lambda s: (len(s), s))
        out.append((labels[group], [latest[(group, s)] for s in seeds]))
    return out


def compare_table(records: list[dict], order: Iterable[str] = CRITERIA) -> str:
    """Markdown, one row per setting (:func:`setting_groups`): runs, seeds, BLEU mean +- sample
    std, BLEU per seed, and the means of seconds per epoch and best validation nll ("-" where no
    run recorded them)."""
    def mean_of(runs: list[dict], key: str, fmt: str) -> str:
        values = [float(r[key]) for r in runs if r.get(key) is not None]
        return format(statistics.mean(values), fmt) if values else "-"

    lines = ["| criterion | runs | seeds | BLEU (mean ± std) | BLEU per seed | s / epoch | best valid nll |",
             "|---|---|---|---|---|---|---|"]
    for label, runs in setting_groups(records, order):
        scores = [float(r["bleu"]) for r in runs]
        std = statistics.stdev(scores) if len(scores) > 1 else 0.0
        lines.append(f"| {label} | {len(runs)} | {', '.join(str(r.get('seed')) for r in runs)} | "
                     f"{statistics.mean(scores):.2f} ± {std:.2f} | {', '.join(f'{b:.2f}' for b in scores)} | "
                     f"{mean_of(runs, 'seconds_per_epoch', '.1f')} | {mean_of(runs, 'best_valid_nll', '.3f')} |")
    return "\n".join(lines)


def paired_sides(records: list[dict], baseline: str | None = None, order: Iterable[str] = CRITERIA) -> list[str]:
    """``labelreg-nlp compare`` sides (``LABEL=RUN,RUN,...``) of the settings in ``records``:
    each run's predictions folder (token scores, test.hyp, test.ref, seed), the baseline first.

    Args:
        records: results rows as ``scripts/nmt.py evaluate`` appends them.
        baseline: the label of the baseline setting (default: the first in ``order``).
        order: criteria order.

    Returns:
        The sides, baseline first.

    Raises:
        ValueError: a run saved no token scores (evaluated with --no-token-scores), fewer than two
            settings, or an unknown ``baseline``.
    """
    groups = setting_groups(records, order)
    labels = [label for label, _ in groups]
    if len(groups) < 2:
        raise ValueError(f"a paired comparison needs two settings, the results hold {labels}")
    if baseline is not None and baseline not in labels:
        raise ValueError(f"baseline {baseline!r} is not among the settings {labels}")
    sides = []
    for label, runs in groups:
        missing = [r for r in runs if not r.get("token_scores")]
        if missing:
            raise ValueError(f"{label}, seed {missing[0].get('seed')}: its run saved no token scores (evaluated with "
                             "--no-token-scores)")
        sides.append(f"{label}=" + ",".join(str(r["token_scores"]) for r in runs))
    first = labels.index(baseline) if baseline is not None else 0
    return [sides[first]] + sides[:first] + sides[first + 1:]


def _setting_labels(groups: dict[str, dict]) -> dict[str, str]:
    """The criterion, plus ``(key value, ...)`` of the settings that differ between the groups of
    one criterion (none when it has one setting)."""
    labels = {}
    for group, record in groups.items():
        same = [r.get("settings") or {} for r in groups.values() if r["criterion"] == record["criterion"]]
        mine = record.get("settings") or {}
        differ = [k for k in sorted({k for s in same for k in s}) if len({json.dumps(s.get(k)) for s in same}) > 1]
        shown = ", ".join(f"{k} {' '.join(map(str, mine.get(k))) if isinstance(mine.get(k), list) else mine.get(k)}"
                          for k in differ)
        labels[group] = f"{record['criterion']} ({shown})" if shown else record["criterion"]
    return labels
