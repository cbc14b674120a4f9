#!/usr/bin/env python
"""Fine-tune (or train from scratch) a seq2seq model with a label-regularized loss and report
detokenized SacreBLEU on the test split, and the confidence of every target token of validation
and test (teacher forcing), saved for ``labelreg-nlp evaluate``.

--model_name_or_path takes any AutoModelForSeq2SeqLM name or local path (Marian, T5, BART, ...);
the default 'scratch' builds a small T5 from a config with a BPE tokenizer trained on the
training pairs, so the script runs offline. The corpus is a local .csv/.tsv/.json/.jsonl file of
source/target pairs (translation or summarization); without one it uses the gettext De-En pairs
the system's gettext catalogs hold. Every transformers Seq2SeqTrainingArguments option works too.

Examples:
  python scripts/finetune_seq2seq.py --method maxsup --alpha 0.1 --num_train_epochs 5
  python scripts/finetune_seq2seq.py --model_name_or_path Helsinki-NLP/opus-mt-de-en \\
      --train_file pairs.jsonl --source_column de --target_column en --method ols
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from transformers import (  # noqa: E402
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    PreTrainedTokenizerFast,
    Seq2SeqTrainingArguments,
    T5Config,
    T5ForConditionalGeneration,
    set_seed,
)

from labelreg_nlp.analysis.token_confidence import hf_token_scores  # noqa: E402
from labelreg_nlp.experiments.corpora import offline_de_en_pairs  # noqa: E402
from labelreg_nlp.experiments.hf_scripts import (  # noqa: E402
    RunArguments,
    claim_output_dir,
    finish,
    limit_splits,
    parse_and_run,
    train_or_stop,
    write_results,
)
from labelreg_nlp.experiments.records import DataError, read_records, select_columns, split_records  # noqa: E402
from labelreg_nlp.experiments.run_dirs import release_run_dir  # noqa: E402
from labelreg_nlp.experiments.scratch_tokenizer import scratch_tokenizer  # noqa: E402
from labelreg_nlp.integrations.hf import LabelRegArguments, LabelRegSeq2SeqTrainer  # noqa: E402
from labelreg_nlp.metrics import evaluate_confidence  # noqa: E402

SCRATCH = "scratch"


@dataclass
class ScriptArguments:
    model_name_or_path: str = field(default=SCRATCH, metadata={
        "help": "AutoModelForSeq2SeqLM name or local path; 'scratch' = a small T5 from a config with a "
                "tokenizer trained on the training pairs (offline)"})
    train_file: str | None = field(default=None, metadata={
        "help": "local .csv/.tsv/.json/.jsonl with source and target columns (default: the gettext De-En "
                "pairs); split 80/10/10 with --split_seed unless --test_file is given"})
    validation_file: str | None = field(default=None, metadata={"help": "local validation file (same columns)"})
    test_file: str | None = field(default=None, metadata={"help": "local test file (same columns)"})
    source_column: str = field(default="source", metadata={"help": "column of the source text"})
    target_column: str = field(default="target", metadata={"help": "column of the target text"})
    source_prefix: str = field(default="", metadata={"help": "text put before every source, e.g. 'translate "
                                                             "German to English: ' for T5 checkpoints"})
    max_source_length: int = field(default=128, metadata={"help": "truncate sources to this many tokens"})
    max_target_length: int = field(default=128, metadata={"help": "truncate targets (and generations) to this many tokens"})
    max_train_samples: int | None = field(default=None, metadata={"help": "use only the first N training pairs"})
    max_eval_samples: int | None = field(default=None, metadata={"help": "use only the first N validation and test pairs"})
    num_beams: int = field(default=4, metadata={"help": "beam size for the test translations"})
    split_seed: int = field(default=0, metadata={"help": "seed of the split of a single corpus"})
    scratch_vocab_size: int = field(default=8000, metadata={"help": "'scratch': tokenizer vocabulary size"})
    scratch_d_model: int = field(default=256, metadata={"help": "'scratch': T5 width"})
    scratch_layers: int = field(default=3, metadata={"help": "'scratch': encoder and decoder layers each"})
    results_file: str | None = field(default=None, metadata={"help": "JSON results (default: OUTPUT_DIR/results.json)"})
    save_predictions: bool = field(default=True, metadata={
        "help": "score every target token of validation and test (teacher forcing) and save the scores to "
                "OUTPUT_DIR/predictions/{validation,test}.npz for 'labelreg-nlp evaluate'"})


TRAINING_DEFAULTS = dict(
    output_dir="runs/seq2seq", num_train_epochs=1.0, learning_rate=1e-3, weight_decay=0.01,
    per_device_train_batch_size=32, per_device_eval_batch_size=64, warmup_steps=0.05, logging_steps=50,
    save_strategy="epoch", save_total_limit=1, eval_strategy="no", report_to="none", seed=0,
)


def load_pairs(args: ScriptArguments) -> tuple[dict[str, list[dict]], str]:
    """train / validation / test lists of {"source", "target"} and the corpus name."""
    columns = {"source": args.source_column, "target": args.target_column}
    if args.train_file is None:
        if args.test_file or args.validation_file:
            raise DataError("--validation_file/--test_file need a --train_file")
        pairs, name = offline_de_en_pairs()
        rows = [{"source": de, "target": en} for de, en in pairs]
        return split_records(rows, args.split_seed), f"{name} De-En"
    rows = select_columns(read_records(args.train_file), columns, args.train_file)
    splits = {}
    for split, path in (("test", args.test_file), ("validation", args.validation_file)):
        if path:
            splits[split] = select_columns(read_records(path), columns, path)
    if "test" not in splits:
        return {**split_records(rows, args.split_seed, "validation" not in splits), **splits}, args.train_file
    return {**splits, "train": rows}, args.train_file


def scratch_model(args: ScriptArguments, fast: PreTrainedTokenizerFast) -> T5ForConditionalGeneration:
    """A small T5 sized to the tokenizer."""
    config = T5Config(vocab_size=len(fast), d_model=args.scratch_d_model, d_ff=4 * args.scratch_d_model,
                      d_kv=args.scratch_d_model // 4, num_layers=args.scratch_layers, num_heads=4, dropout_rate=0.1,
                      pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, tie_word_embeddings=True)
    return T5ForConditionalGeneration(config)


def main(argv: list[str] | None = None) -> int:
    return parse_and_run((ScriptArguments, LabelRegArguments, Seq2SeqTrainingArguments, RunArguments),
                         TRAINING_DEFAULTS, run, __doc__, argv)


def load_model(script: ScriptArguments, training: Seq2SeqTrainingArguments, train_rows: list[dict]):
    """``(tokenizer, model)``: a named model, or the scratch T5 with a BPE tokenizer trained on the
    training pairs (saved in the output folder, part of the run)."""
    if script.model_name_or_path == SCRATCH:
        saved = Path(training.output_dir) / "tokenizer"
        texts = [ex[side] for ex in train_rows for side in ("source", "target")]
        tokenizer = scratch_tokenizer(texts, script.scratch_vocab_size, saved)
        tokenizer.save_pretrained(saved)
        return tokenizer, scratch_model(script, tokenizer)
    try:
        return (AutoTokenizer.from_pretrained(script.model_name_or_path),
                AutoModelForSeq2SeqLM.from_pretrained(script.model_name_or_path))
    except OSError as error:
        release_run_dir(training.output_dir)
        raise DataError(f"could not load model {script.model_name_or_path!r}: {str(error).splitlines()[0]}") from None


def encoder(script: ScriptArguments, tokenizer):
    """``encode(rows)``: a ``datasets.Dataset`` of model inputs (with the source prefix) and labels."""
    import datasets

    def batch(b):
        out = tokenizer([script.source_prefix + s for s in b["source"]], truncation=True,
                        max_length=script.max_source_length)
        out["labels"] = tokenizer(text_target=b["target"], truncation=True, max_length=script.max_target_length)["input_ids"]
        return out

    def encode(rows: list[dict]) -> datasets.Dataset:
        return datasets.Dataset.from_list(rows).map(batch, batched=True, remove_columns=["source", "target"])

    return encode


def translate(trainer, tokenizer, test_data, script: ScriptArguments) -> list[str]:
    """Beam-search translations of the test split, detokenized."""
    output = trainer.predict(test_data, num_beams=script.num_beams, max_length=script.max_target_length)
    predictions = output.predictions
    predictions[predictions < 0] = tokenizer.pad_token_id  # generate pads with -100 across batches
    return [h.strip() for h in tokenizer.batch_decode(predictions, skip_special_tokens=True)]


def token_confidence(trainer, test_data, validation, out_dir: Path) -> dict:
    """The confidence of every target token of test (and validation) under teacher forcing, saved
    for ``labelreg-nlp evaluate``; returns its summary on test."""
    scored = {"test": hf_token_scores(trainer, test_data)}
    if validation is not None:
        scored["validation"] = hf_token_scores(trainer, validation)
    for split, data in scored.items():
        data.save(out_dir / "predictions" / f"{split}.npz")
    token = evaluate_confidence(scored["test"], scored.get("validation"))
    return {"n": token.n, "accuracy": token.accuracy, "nll": token.nll, "ece": token.ece,
            "aurc": token.row("msp").aurc, "aurc_pnorm": token.row("pnorm").aurc, "pnorm": token.pnorm.label}


def run(script: ScriptArguments, labelreg: LabelRegArguments, training: Seq2SeqTrainingArguments,
        run_args: RunArguments | None = None) -> int:
    run_args = run_args or RunArguments()
    import sacrebleu

    splits, corpus = load_pairs(script)
    for rows in splits.values():
        for ex in rows:
            ex["source"], ex["target"] = str(ex["source"] or ""), str(ex["target"] or "")
    limit_splits(splits, script.max_train_samples, script.max_eval_samples)
    training.predict_with_generate = True  # BLEU needs generated translations, not logits
    local = {"--train_file": script.train_file, "--validation_file": script.validation_file,
             "--test_file": script.test_file, "--model_name_or_path": script.model_name_or_path}
    resume = claim_output_dir("finetune_seq2seq", script, labelreg, training, run_args, local)
    set_seed(training.seed)  # the scratch model starts from the run's seed, as in HF's example scripts
    tokenizer, model = load_model(script, training, splits["train"])
    encode = encoder(script, tokenizer)
    train = encode(splits["train"])
    validation = encode(splits["validation"]) if splits.get("validation") else None
    trainer = LabelRegSeq2SeqTrainer(
        model=model, args=training, train_dataset=train,
        eval_dataset=validation if training.eval_strategy != "no" else None, processing_class=tokenizer,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model), labelreg_args=labelreg,
    )
    train_result = train_or_stop(trainer, resume, run_args)
    if train_result is None:  # --stop_after_steps
        return 0
    test_data = encode(splits["test"])
    hypotheses = translate(trainer, tokenizer, test_data, script)
    references = [ex["target"] for ex in splits["test"]]
    bleu = sacrebleu.metrics.BLEU()
    score = bleu.corpus_score(hypotheses, [references])
    results = {
        "method": labelreg.method, "alpha": labelreg.alpha if labelreg.method not in ("none", "ols") else None,
        "seed": training.seed, "model": script.model_name_or_path, "corpus": corpus,
        "sizes": {name: len(rows) for name, rows in splits.items()}, "epochs": training.num_train_epochs,
        "train_seconds": round(train_result.metrics["train_runtime"], 1), "bleu": round(score.score, 2),
        "signature": str(bleu.get_signature()), "labelreg": asdict(labelreg),
    }
    out_dir = Path(training.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if script.save_predictions:
        results["token_confidence"] = token_confidence(trainer, test_data, validation, out_dir)
    (out_dir / "test.hyp").write_text("\n".join(hypotheses) + "\n", encoding="utf-8")
    (out_dir / "test.ref").write_text("\n".join(references) + "\n", encoding="utf-8")  # for labelreg-nlp compare
    path = Path(script.results_file or out_dir / "results.json")
    write_results(path, results)
    finish(out_dir)
    print(f"\nBLEU {score.score:.2f} ({labelreg.method}, {len(references)} test pairs)")
    print(f"signature: {bleu.get_signature()}")
    if "token_confidence" in results:
        t = results["token_confidence"]
        print(f"test tokens (teacher forcing): accuracy {t['accuracy']:.4f}, AURC {t['aurc']:.4f} with the MSP, "
              f"{t['aurc_pnorm']:.4f} with pNorm ({t['pnorm']}); predictions: {out_dir / 'predictions'}")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
