"""TRL: LabelRegSFTTrainer with a real trl.SFTTrainer on a tiny Llama built from a config."""

from __future__ import annotations

import os

import pytest
import torch

trl = pytest.importorskip("trl")
from datasets import Dataset  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402

from labelreg_nlp import LabelRegSFTTrainer  # noqa: E402
from labelreg_nlp.integrations.hf import STATE_FILE  # noqa: E402
from labelreg_nlp.losses.token_loss import METHODS  # noqa: E402

from .hf_toy import llama_lm, token_examples, word_tokenizer  # noqa: E402

STEPS = 3


def dataset(n: int = 12, seed: int = 0) -> Dataset:
    return Dataset.from_dict({"input_ids": [e["input_ids"] for e in token_examples(n, seed=seed)]})


def sft(tmp_path, trainer_class=LabelRegSFTTrainer, model=None, steps=STEPS, data=None, **options):
    """(trainer, the logged training lines) after ``steps`` optimizer steps."""
    names = {"per_device_train_batch_size", "gradient_accumulation_steps", "padding_free", "max_length",
             "label_smoothing_factor", "save_steps", "save_strategy", "learning_rate", "bf16"}
    config = {k: options.pop(k) for k in list(options) if k in names}
    # float32 unless asked: SFTConfig's default is bf16=True, autocast on the CPU too
    config = {"per_device_train_batch_size": 4, "learning_rate": 1e-2, "save_strategy": "no", "bf16": False, **config}
    if config.get("padding_free"):
        config["max_length"] = None  # TRL enforces no max_length on padding-free batches without packing
    args = SFTConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, max_steps=steps, logging_steps=1,
                     seed=0, data_seed=0, disable_tqdm=True, dataloader_num_workers=0, **config)
    trainer = trainer_class(model=model or llama_lm(), args=args, train_dataset=data or dataset(),
                            processing_class=word_tokenizer(), **options)
    trainer.train()
    return trainer, [h for h in trainer.state.log_history if "loss" in h]


def column(lines, key):
    return [line[key] for line in lines]


@pytest.mark.parametrize("accumulation", [1, 2])
def test_ls_equals_trl_label_smoothing_factor_step_by_step(tmp_path, accumulation):
    """Loss per step and TRL's own metrics (token accuracy, entropy), with and without gradient
    accumulation (TRL's average_tokens_across_devices and num_items_in_batch in play)."""
    batch = {"per_device_train_batch_size": 4 // accumulation, "gradient_accumulation_steps": accumulation}
    _, theirs = sft(tmp_path / "trl", SFTTrainer, label_smoothing_factor=0.1, **batch)
    trainer, ours = sft(tmp_path / "ours", method="ls", alpha=0.1, **batch)
    for key in ("loss", "mean_token_accuracy", "entropy", "num_tokens"):
        assert column(ours, key) == pytest.approx(column(theirs, key), rel=1e-5), key
    assert column(ours, "labelreg_alpha") == [0.1] * STEPS


@pytest.mark.parametrize("method", METHODS)
def test_fused_linear_gives_the_same_steps(tmp_path, method):
    _, plain = sft(tmp_path / "plain", method=method, alpha=0.2)
    trainer, fused = sft(tmp_path / "fused", method=method, alpha=0.2, fused_linear=True)
    for key in ("loss", "mean_token_accuracy", "entropy"):
        assert column(fused, key) == pytest.approx(column(plain, key), rel=1e-5), key


def test_fused_linear_under_trls_default_bf16_autocast(tmp_path):
    """SFTConfig's default bf16=True: the logits path rounds whole-batch bf16 logits, the fused
    path bf16 logits chunk by chunk; the losses agree to bf16's rounding."""
    _, plain = sft(tmp_path / "plain", method="ls", alpha=0.1, bf16=True)
    _, fused = sft(tmp_path / "fused", method="ls", alpha=0.1, bf16=True, fused_linear=True)
    assert column(fused, "loss") == pytest.approx(column(plain, "loss"), rel=1e-3)


@pytest.mark.parametrize("method", METHODS)
def test_padding_free_batches_equal_padded_ones(tmp_path, method):
    """TRL's padding_free=True (one packed row, position_ids, no attention mask), fused, against
    the same sequences padded, on the logits: the shift never crosses a sequence boundary."""
    _, padded = sft(tmp_path / "padded", method=method, alpha=0.2)
    _, packed = sft(tmp_path / "packed", method=method, alpha=0.2, padding_free=True, fused_linear=True)
    assert column(packed, "loss") == pytest.approx(column(padded, "loss"), rel=1e-5)


@pytest.mark.parametrize("method", ["ols", "lls"])
def test_state_is_checkpointed_and_resumed_exactly(tmp_path, method):
    """A run of 4 steps saved at step 2, resumed from there in a new trainer: the same state at the
    end (OLS: one epoch is 3 steps, so a period ends after the resume)."""
    whole, _ = sft(tmp_path / "run", method=method, alpha=0.2, steps=4, save_strategy="steps", save_steps=2)
    checkpoint = tmp_path / "run" / "checkpoint-2"
    assert os.path.isfile(checkpoint / STATE_FILE)
    resumed = LabelRegSFTTrainer(model=llama_lm(), train_dataset=dataset(), processing_class=word_tokenizer(),
                                 args=whole.args, method=method, alpha=0.2)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    ours, theirs = whole.labelreg_loss.token_loss.state_dict(), resumed.labelreg_loss.token_loss.state_dict()
    assert list(ours) == list(theirs)
    for name in ours:
        torch.testing.assert_close(theirs[name], ours[name], rtol=1e-6, atol=1e-7, msg=name)


def test_label_smoothing_factor_and_compute_loss_func_are_refused(tmp_path):
    with pytest.raises(ValueError, match="label_smoothing_factor=0.1 would smooth twice"):
        sft(tmp_path, method="ls", label_smoothing_factor=0.1)
    with pytest.raises(ValueError, match="do not pass compute_loss_func"):
        sft(tmp_path, method="ls", compute_loss_func=lambda *a, **k: 0)


def test_peft_lora_through_sft_trainer_fused_equals_logits(tmp_path):
    """SFTTrainer's own peft_config: LoRA on attention and MLP, lm_head trained whole
    (modules_to_save; TRL refuses LoRA on lm_head itself); the fused steps use the trained copy."""
    peft = pytest.importorskip("peft")
    config = dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"], modules_to_save=["lm_head"])
    _, plain = sft(tmp_path / "plain", method="lls", alpha=0.2, peft_config=peft.LoraConfig(**config))
    trainer, fused = sft(tmp_path / "fused", method="lls", alpha=0.2, fused_linear=True,
                         peft_config=peft.LoraConfig(**config))
    assert trainer.labelreg_loss._fallback_reason is None
    assert column(fused, "loss") == pytest.approx(column(plain, "loss"), rel=1e-5)
    assert column(fused, "loss")[0] != column(fused, "loss")[-1]  # the adapters learn
