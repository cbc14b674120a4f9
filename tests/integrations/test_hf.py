"""Hugging Face adapter with real Trainers on tiny models built from configs."""

from __future__ import annotations

import pytest
import torch
from transformers import HfArgumentParser, Trainer, TrainerCallback, TrainingArguments

from labelreg_nlp.integrations.hf import (
    STATE_FILE,
    LabelRegArguments,
    LabelRegLoss,
    LabelRegSeq2SeqTrainer,
    LabelRegTrainer,
)
from labelreg_nlp.losses.token_loss import METHODS

from .hf_toy import (
    bart_seq2seq,
    bert_classifier,
    class_examples,
    collate,
    gpt2_lm,
    t5_seq2seq,
    token_examples,
    training_args,
)

MODELS = {
    "classification": (bert_classifier, lambda n, seed=0: class_examples(n, seed=seed)),
    "causal": (gpt2_lm, lambda n, seed=0: token_examples(n, seed=seed)),
    "seq2seq": (t5_seq2seq, lambda n, seed=0: token_examples(n, seed=seed, seq2seq=True)),
    "bart": (bart_seq2seq, lambda n, seed=0: token_examples(n, seed=seed, seq2seq=True)),
}


def _grads(model) -> list[torch.Tensor]:
    return [p.grad.detach().clone() for p in model.parameters() if p.grad is not None]


def _loss_and_grads(trainer, model, batch, num_items):
    model.zero_grad()
    model.train()
    loss = trainer.compute_loss(model, dict(batch), num_items_in_batch=num_items)
    loss.backward()
    return loss.detach(), _grads(model)


@pytest.mark.parametrize("kind", list(MODELS))
def test_ls_equals_hf_label_smoothing_factor(kind, tmp_path):
    factory, examples = MODELS[kind]
    model = factory()
    batch = collate(examples(6))
    ours = LabelRegTrainer(model=model, args=training_args(tmp_path), method="ls", alpha=0.1)
    theirs = Trainer(model=model, args=training_args(tmp_path, label_smoothing_factor=0.1))
    for num_items in (None, 23):
        loss_a, grads_a = _loss_and_grads(ours, model, batch, num_items)
        loss_b, grads_b = _loss_and_grads(theirs, model, batch, num_items)
        torch.testing.assert_close(loss_a, loss_b, rtol=1e-6, atol=1e-7)
        for a, b in zip(grads_a, grads_b, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_none_equals_the_models_own_shifted_loss_with_ignored_labels(tmp_path):
    """Causal LM: logits at t predict the label at t + 1, -100 positions left out."""
    model = gpt2_lm()
    batch = collate(token_examples(5))
    batch["labels"][0, 2] = -100  # an ignored position inside a sequence, too
    trainer = LabelRegTrainer(model=model, args=training_args(tmp_path), method="none")
    assert trainer.labelreg_loss.shift_labels
    ours = trainer.compute_loss(model, dict(batch))
    own = model(**batch).loss
    torch.testing.assert_close(ours, own, rtol=1e-6, atol=1e-7)
    # by hand: shifted log-softmax over the active positions
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"][:, 1:]
    logp = torch.log_softmax(logits[:, :-1].double(), -1)
    active = labels != -100
    by_hand = -logp[active].gather(1, labels[active][:, None]).mean()
    torch.testing.assert_close(ours.double(), by_hand, rtol=1e-5, atol=1e-6)


class GradSnapshot(TrainerCallback):
    """Gradients summed over the accumulated micro-batches, just before the optimizer step."""

    def __init__(self, model):
        self.model, self.grads = model, None

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.grads = _grads(self.model)


def _one_update(kind, method, batch_size, accumulation, tmp_path, **options):
    factory, examples = MODELS[kind]
    model = factory()
    snapshot = GradSnapshot(model)
    cls = LabelRegSeq2SeqTrainer if kind == "seq2seq" else LabelRegTrainer
    args = training_args(tmp_path, seq2seq=kind == "seq2seq", per_device_train_batch_size=batch_size,
                         gradient_accumulation_steps=accumulation, max_steps=1)
    trainer = cls(model=model, args=args, train_dataset=examples(8), data_collator=collate, callbacks=[snapshot],
                  method=method, alpha=0.2, **options)
    trainer.train()
    logged = next(h["loss"] for h in trainer.state.log_history if "loss" in h)
    ols = getattr(trainer.labelreg_loss.token_loss, "ols", None)  # only an ols loss has one
    return logged, snapshot.grads, None if ols is None else (ols.count.clone(), ols.table.acc.clone())


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", ["causal", "seq2seq", "classification"])
def test_gradient_accumulation_is_exact(kind, method, tmp_path):
    """Batch 8 in one step == batch 2 with 4 accumulation steps (micro-batches padded unevenly)."""
    if kind != "causal" and method in ("none", "ls"):
        pytest.skip("kept short: every method runs on the causal LM, two on the other heads")
    loss_a, grads_a, ols_a = _one_update(kind, method, 8, 1, tmp_path / "a")
    loss_b, grads_b, ols_b = _one_update(kind, method, 2, 4, tmp_path / "b")
    assert loss_a == pytest.approx(loss_b, rel=1e-5, abs=1e-6)
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    if ols_a is not None:
        torch.testing.assert_close(ols_a, ols_b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", ["classification", "seq2seq"])
def test_models_train_with_every_method(kind, method, tmp_path):
    factory, examples = MODELS[kind]
    model = factory()
    before = [p.detach().clone() for p in model.parameters()]
    cls = LabelRegSeq2SeqTrainer if kind == "seq2seq" else LabelRegTrainer
    args = training_args(tmp_path, seq2seq=kind == "seq2seq", num_train_epochs=2)
    trainer = cls(model=model, args=args, train_dataset=examples(12),
                  eval_dataset=examples(6, seed=1), data_collator=collate, method=method, alpha=0.1)
    trainer.train()
    metrics = trainer.evaluate()
    assert torch.isfinite(torch.tensor(metrics["eval_loss"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 6 and all(torch.isfinite(torch.tensor(h["loss"])) for h in logs)
    if method in ("ls", "maxsup"):
        assert logs[-1]["labelreg_alpha"] == pytest.approx(0.1)
    if method == "ols":
        assert logs[-1]["ols_periods"] == 1  # the first epoch ended before the last log line
        assert trainer.labelreg_loss.token_loss.ols.periods == 2


def test_alpha_schedule_follows_epochs_and_steps(tmp_path):
    model = bert_classifier()
    trainer = LabelRegTrainer(model=model, args=training_args(tmp_path, num_train_epochs=3), train_dataset=class_examples(8),
                              data_collator=collate, method="maxsup", alpha=0.1, alpha_end=0.3)
    trainer.train()
    by_epoch = [round(h["labelreg_alpha"], 6) for h in trainer.state.log_history if "loss" in h]
    assert by_epoch == [0.1, 0.1, 0.2, 0.2, 0.3, 0.3]  # 2 steps per epoch, horizon = 3 epochs
    trainer = LabelRegTrainer(model=bert_classifier(), args=training_args(tmp_path, max_steps=5),
                              train_dataset=class_examples(8), data_collator=collate, method="maxsup",
                              alpha=0.1, alpha_end=0.2, schedule_unit="step")
    trainer.train()
    by_step = [round(h["labelreg_alpha"], 6) for h in trainer.state.log_history if "loss" in h]
    assert by_step == [0.1, 0.125, 0.15, 0.175, 0.2]


def test_evaluation_never_changes_ols_state(tmp_path):
    model = bert_classifier()
    trainer = LabelRegTrainer(model=model, args=training_args(tmp_path), train_dataset=class_examples(8),
                              eval_dataset=class_examples(8, seed=3), data_collator=collate, method="ols")
    trainer.train()
    before = {k: v.clone() for k, v in trainer.labelreg_loss.token_loss.state_dict().items()}
    trainer.evaluate()
    trainer.predict(class_examples(8, seed=4))
    after = trainer.labelreg_loss.token_loss.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def _ols_run(tmp_path, epochs, resume=None, topk=None):
    model = gpt2_lm()
    args = training_args(tmp_path, num_train_epochs=epochs, save_strategy="epoch", learning_rate=5e-2)
    trainer = LabelRegTrainer(model=model, args=args, train_dataset=token_examples(16), data_collator=collate,
                              method="ols", ols_topk=topk)
    trainer.train(resume_from_checkpoint=resume)
    return trainer


@pytest.mark.parametrize("topk", [None, 8])
def test_ols_resume_equals_uninterrupted_run(tmp_path, topk):
    full = _ols_run(tmp_path / "full", 3, topk=topk)
    part = _ols_run(tmp_path / "part", 3, topk=topk)  # same run, kept for its epoch-1 checkpoint
    checkpoint = tmp_path / "part" / "checkpoint-4"
    assert (checkpoint / STATE_FILE).is_file()
    resumed = _ols_run(tmp_path / "part", 3, resume=str(checkpoint), topk=topk)
    assert resumed.state.global_step == full.state.global_step == 12
    state_full = full.labelreg_loss.token_loss.state_dict()
    state_resumed = resumed.labelreg_loss.token_loss.state_dict()
    assert int(state_resumed["ols.periods"]) == 3
    for key, value in state_full.items():
        torch.testing.assert_close(state_resumed[key], value, rtol=1e-5, atol=1e-6, msg=key)
    del part


def test_resume_errors_name_the_problem(tmp_path):
    run = _ols_run(tmp_path / "run", 1)
    checkpoint = tmp_path / "run" / "checkpoint-4"
    (checkpoint / STATE_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="no OLS state"):
        _ols_run(tmp_path / "run", 2, resume=str(checkpoint))
    run.labelreg_loss.save(checkpoint)
    trainer = LabelRegTrainer(model=gpt2_lm(), args=training_args(tmp_path / "run", num_train_epochs=2),
                              train_dataset=token_examples(16), data_collator=collate, method="maxsup")
    with pytest.raises(ValueError, match="saved for method 'ols'"):
        trainer.train(resume_from_checkpoint=str(checkpoint))


def test_a_missing_checkpoint_folder_and_a_batch_without_labels_are_named(tmp_path):
    run = _ols_run(tmp_path / "run", 1)
    with pytest.raises(FileNotFoundError, match=f"checkpoint folder not found: {tmp_path / 'nope'}"):
        run.labelreg_loss.load(tmp_path / "nope")
    trainer = LabelRegTrainer(model=bert_classifier(), args=training_args(tmp_path), method="ls")
    batch = collate(class_examples(4))
    batch.pop("labels")
    with pytest.raises(ValueError, match=r"the batch has no 'labels' \(it holds input_ids, attention_mask\).*"
                                         r"map them to integer ids first"):
        trainer.compute_loss(trainer.model, batch)


def test_bad_configuration_is_refused(tmp_path):
    model = bert_classifier()
    with pytest.raises(ValueError, match="method must be one of"):
        LabelRegTrainer(model=model, args=training_args(tmp_path), method="focal")
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\], got 1.5"):
        LabelRegTrainer(model=model, args=training_args(tmp_path), method="ls", alpha=1.5)
    with pytest.raises(ValueError, match="label_smoothing_factor=0.1 would smooth twice"):
        LabelRegTrainer(model=model, args=training_args(tmp_path, label_smoothing_factor=0.1), method="ls")
    with pytest.raises(ValueError, match="do not pass compute_loss_func"):
        LabelRegTrainer(model=model, args=training_args(tmp_path), compute_loss_func=lambda *a, **k: 0)
    trainer = LabelRegTrainer(model=model, args=training_args(tmp_path), method="ls")
    batch = collate(class_examples(4))
    batch["labels"][1] = 7
    with pytest.raises(ValueError, match="target value 7 is outside"):
        trainer.compute_loss(model, batch)


def test_all_padding_batch_gives_zero_loss(tmp_path):
    model = gpt2_lm()
    batch = collate(token_examples(3))
    batch["labels"][:] = -100
    for method in METHODS:
        trainer = LabelRegTrainer(model=model, args=training_args(tmp_path), method=method)
        loss = trainer.compute_loss(model, dict(batch))
        assert loss.item() == 0.0


def test_compute_loss_func_for_a_plain_trainer(tmp_path):
    """Users who keep their own Trainer: the callable plus its callback."""
    model = bert_classifier()
    loss = LabelRegLoss(LabelRegArguments(method="ols"), num_classes=3)
    trainer = Trainer(model=model, args=training_args(tmp_path, num_train_epochs=2), train_dataset=class_examples(8),
                      data_collator=collate, compute_loss_func=loss, callbacks=[loss.callback()])
    trainer.train()
    assert int(loss.token_loss.ols.periods) == 2
    assert loss.token_loss.ols.soft_labels().sum(-1).sub(1).abs().max() < 1e-5


def test_arguments_parse_from_the_command_line():
    parser = HfArgumentParser((LabelRegArguments, TrainingArguments))
    labelreg, training = parser.parse_args_into_dataclasses(
        ["--method", "maxsup", "--alpha", "0.1", "--alpha_end", "0.2", "--output_dir", "x", "--ols_topk", "32"]
    )
    assert (labelreg.method, labelreg.alpha, labelreg.alpha_end, labelreg.ols_topk) == ("maxsup", 0.1, 0.2, 32)
    with pytest.raises(SystemExit):
        parser.parse_args_into_dataclasses(["--method", "focal", "--output_dir", "x"])


# ------------------------------------------------------------------ learned tables (LS++, LLS)
def _table(trainer):
    return {k: v.detach().clone() for k, v in trainer.labelreg_loss.token_loss.state_dict().items()}


def _learned_run(tmp_path, method, epochs, resume=None, weight_decay=0.0, **options):
    args = training_args(tmp_path, num_train_epochs=epochs, save_strategy="epoch", learning_rate=5e-2,
                         weight_decay=weight_decay)
    trainer = LabelRegTrainer(model=gpt2_lm(), args=args, train_dataset=token_examples(16), data_collator=collate,
                              method=method, **options)
    trainer.train(resume_from_checkpoint=resume)
    return trainer


@pytest.mark.parametrize("method", ["lspp", "lls"])
def test_learned_table_has_its_own_parameter_group_and_learns(tmp_path, method):
    trainer = _learned_run(tmp_path, method, 1, labelreg_lr=0.2, labelreg_weight_decay=0.0, weight_decay=0.01)
    groups = trainer.optimizer.param_groups
    table = list(trainer.labelreg_loss.token_loss.parameters())
    assert [id(p) for p in groups[-1]["params"]] == [id(p) for p in table]
    assert groups[-1]["weight_decay"] == 0.0 and groups[0]["weight_decay"] == 0.01
    assert groups[-1]["initial_lr"] == 0.2 and groups[0]["initial_lr"] == 5e-2
    # the learning-rate schedule (linear decay) moves both groups alike
    assert groups[-1]["lr"] / 0.2 == pytest.approx(groups[0]["lr"] / 5e-2)
    assert all(torch.count_nonzero(p) > 0 for p in table)  # zeros at init, learned now
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert 0 < logs[-1][f"{method}_top_mass"] < 1 and logs[-1][f"{method}_entropy"] > 0
    saved = torch.load(tmp_path / "checkpoint-4" / STATE_FILE, weights_only=True)
    for key, value in _table(trainer).items():
        assert torch.equal(saved["state"][key], value)


@pytest.mark.parametrize("method", ["lspp", "lls"])
def test_learned_table_resume_is_bit_exact(tmp_path, method):
    full = _learned_run(tmp_path / "full", method, 2)
    _learned_run(tmp_path / "part", method, 2)  # the same run, kept for its epoch-1 checkpoint
    resumed = _learned_run(tmp_path / "part", method, 2, resume=str(tmp_path / "part" / "checkpoint-4"))
    assert resumed.state.global_step == full.state.global_step == 8
    table_full, table_resumed = _table(full), _table(resumed)
    assert table_full.keys() == table_resumed.keys()
    for key in table_full:
        assert torch.equal(table_resumed[key], table_full[key]), key


def test_plain_trainer_without_the_table_in_its_optimizer_is_refused(tmp_path):
    loss = LabelRegLoss(LabelRegArguments(method="lls"), num_classes=3)
    trainer = Trainer(model=bert_classifier(), args=training_args(tmp_path), train_dataset=class_examples(8),
                      data_collator=collate, compute_loss_func=loss, callbacks=[loss.callback()])
    with pytest.raises(ValueError, match="lls table is not in the optimizer"):
        trainer.train()


@pytest.mark.parametrize("method", ["ls", "maxsup", "ols", "lls"])
@pytest.mark.parametrize("kind", ["causal", "seq2seq", "bart"])
def test_fused_linear_equals_the_models_logits(kind, method, tmp_path):
    """fused_linear=True: the lm_head inside the loss (GPT-2: tied, shifted labels; T5: tied, scaled
    before the head; BART: final_logits_bias after it), batch 2 x 2 accumulated: the same logged
    loss, gradients and OLS state as the plain path."""
    from labelreg_nlp.integrations.hf import OutputHead

    assert OutputHead.of(MODELS[kind][0]())[0] is not None  # the fused path is taken, not the fallback
    plain = _one_update(kind, method, 2, 2, tmp_path / "plain")
    fused = _one_update(kind, method, 2, 2, tmp_path / "fused", fused_linear=True)
    assert fused[0] == pytest.approx(plain[0], rel=1e-5, abs=1e-6)
    assert len(fused[1]) == len(plain[1])
    for a, b in zip(fused[1], plain[1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    if plain[2] is not None:
        torch.testing.assert_close(fused[2], plain[2], rtol=1e-5, atol=1e-6)


def test_fused_linear_holds_no_logits_and_evaluates_with_them(tmp_path):
    """In training the model returns a broadcast placeholder (no [B, T, V] memory); evaluation
    and prediction get the real logits."""
    model = gpt2_lm()
    trainer = LabelRegTrainer(model=model, args=training_args(tmp_path), method="maxsup", fused_linear=True)
    batch = collate(token_examples(4))
    seen = []
    hook = model.register_forward_hook(lambda module, args, out: seen.append(out.logits))
    model.train()
    trainer.compute_loss(model, dict(batch)).backward()
    model.eval()
    loss, logits, _ = trainer.prediction_step(model, dict(batch), prediction_loss_only=False)
    hook.remove()
    assert seen[0].stride() == (0, 0, 0)  # the placeholder: no storage per logit
    torch.testing.assert_close(logits, model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits)
    assert torch.isfinite(loss)
    assert type(model.lm_head).forward is torch.nn.Linear.forward and "forward" not in vars(model.lm_head)


def test_fused_linear_falls_back_with_a_reason(tmp_path, caplog):
    model = bert_classifier()
    batch = collate(class_examples(4))
    trainer = LabelRegTrainer(model=model, args=training_args(tmp_path), method="ls", fused_linear=True)
    plain = LabelRegTrainer(model=model, args=training_args(tmp_path), method="ls")
    model.train()
    with caplog.at_level("WARNING"):
        ours = trainer.compute_loss(model, dict(batch))
        trainer.compute_loss(model, dict(batch))
    messages = [r.getMessage() for r in caplog.records if "fused_linear" in r.getMessage()]
    assert messages == ["fused_linear: BertForSequenceClassification is neither a causal LM nor a seq2seq model; "
                        "using the model's logits instead"]
    torch.testing.assert_close(ours, plain.compute_loss(model, dict(batch)))
    gpt2 = gpt2_lm()
    gpt2.config.final_logit_softcapping = 30.0
    from labelreg_nlp.integrations.hf import OutputHead

    assert OutputHead.of(gpt2) == (None, "GPT2LMHeadModel changes its logits after the output layer "
                                         "(final_logit_softcapping=30.0)")


def test_validate_args_reaches_the_loss(tmp_path):
    trainer = LabelRegTrainer(model=gpt2_lm(), args=training_args(tmp_path), method="maxsup", validate_args=False)
    assert trainer.labelreg_loss.token_loss.method_loss.validate_args is False
    assert LabelRegTrainer(model=gpt2_lm(), args=training_args(tmp_path)).labelreg_loss.token_loss.method_loss.validate_args


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 training steps on CUDA only")
@pytest.mark.parametrize("fused", [False, True])
def test_bf16_training_step_on_cuda_equals_the_models_own_loss(tmp_path, fused):
    """A LabelRegTrainer training step under bf16=True on a GPU: ls = HF's label_smoothing_factor,
    none = the model's own loss (bf16 rounding), with and without fused_linear."""
    model = gpt2_lm().cuda()
    batch = {k: v.cuda() for k, v in collate(token_examples(6)).items()}
    args = training_args(tmp_path, use_cpu=False, bf16=True)
    for method, peer in (("ls", Trainer(model=model, args=training_args(tmp_path, use_cpu=False, bf16=True,
                                                                        label_smoothing_factor=0.1))),
                         ("none", Trainer(model=model, args=args))):
        ours = LabelRegTrainer(model=model, args=args, method=method, alpha=0.1, fused_linear=fused)
        loss_ours = ours.training_step(model, dict(batch))
        loss_peer = peer.training_step(model, dict(batch))
        torch.testing.assert_close(loss_ours.float(), loss_peer.float(), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("method", ["ls", "ols", "lspp"])
def test_packed_row_without_separators_equals_the_padded_batch(tmp_path, method):
    """A padding-free row (position_ids, no attention mask) whose label at each sequence's first
    token is a real token (transformers' DataCollatorWithFlattening with separator_id=7, not -100):
    the loss never predicts one sequence's first token from the end of another."""
    from transformers import DataCollatorWithFlattening

    from .hf_toy import llama_lm

    examples = token_examples(4)
    model = llama_lm()
    trainer = LabelRegTrainer(model=model, args=training_args(tmp_path), method=method, alpha=0.2)
    flat = DataCollatorWithFlattening(separator_id=7)([{"input_ids": e["input_ids"]} for e in examples])
    assert (flat["labels"] != -100).all() and "attention_mask" not in flat
    packed, _ = _loss_and_grads(trainer, model, flat, None)
    padded, _ = _loss_and_grads(trainer, model, collate(examples), None)
    torch.testing.assert_close(packed, padded, rtol=1e-5, atol=1e-6)


def test_sliced_logits_are_refused_with_the_shapes():
    loss = LabelRegLoss(LabelRegArguments(method="ls"), num_classes=5, shift_labels=True)
    with pytest.raises(ValueError, match=r"logits for \(2, 1\) positions and the labels are \(2, 4\).*logits_to_keep"):
        loss({"logits": torch.zeros(2, 1, 5)}, torch.zeros(2, 4, dtype=torch.long))
