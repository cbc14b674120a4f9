"""PEFT: the fused loss with LoRA adapters, against the adapted model's own logits."""

from __future__ import annotations

import logging

import pytest
import torch

peft = pytest.importorskip("peft")
from peft import LoraConfig, get_peft_model  # noqa: E402

from labelreg_nlp.integrations.hf import LabelRegArguments, LabelRegLoss, OutputHead  # noqa: E402

from .hf_toy import VOCAB, collate, llama_lm, token_examples  # noqa: E402

BODY = ["q_proj", "v_proj", "up_proj", "down_proj"]


def adapted(target_modules, modules_to_save=None, dropout=0.0, seed=0):
    """A tiny Llama with LoRA (random B, so every update is non-zero) on ``target_modules``."""
    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=target_modules, modules_to_save=modules_to_save,
                        lora_dropout=dropout, init_lora_weights=False)
    model = get_peft_model(llama_lm(seed=seed), config)
    if modules_to_save:  # the trainable copy differs from the frozen original
        with torch.no_grad():
            model.base_model.model.lm_head.modules_to_save["default"].weight.mul_(1.5)
    return model


def loss_and_grads(model, method, fused):
    """Loss of one batch and the gradients of every trainable parameter."""
    batch = collate(token_examples(4))
    labels = batch.pop("labels")
    loss_fn = LabelRegLoss(LabelRegArguments(method=method, alpha=0.2, fused_linear=fused), num_classes=VOCAB,
                           shift_labels=True)
    model.train()
    model.zero_grad()
    with loss_fn.capture_output_layer(model) if fused else torch.enable_grad() as used:
        loss = loss_fn(model(**batch), labels)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss.detach(), grads, used


@pytest.mark.parametrize("method", ["ls", "maxsup", "lls"])
@pytest.mark.parametrize("where", ["body", "body+lm_head", "modules_to_save"])
def test_fused_loss_equals_the_adapted_models_logits(method, where):
    targets = BODY + (["lm_head"] if where == "body+lm_head" else [])
    model = adapted(targets, modules_to_save=["lm_head"] if where == "modules_to_save" else None)
    plain, plain_grads, _ = loss_and_grads(model, method, fused=False)
    fused, fused_grads, used = loss_and_grads(model, method, fused=True)
    assert used is True
    torch.testing.assert_close(fused, plain, rtol=1e-6, atol=1e-6)
    assert set(fused_grads) == set(plain_grads)
    if where == "body+lm_head":
        assert any("lm_head.lora_A" in n for n in fused_grads) and any("lm_head.lora_B" in n for n in fused_grads)
    if where == "modules_to_save":
        assert any("lm_head.modules_to_save" in n for n in fused_grads)
    for name in plain_grads:
        torch.testing.assert_close(fused_grads[name], plain_grads[name], rtol=1e-5, atol=1e-6, msg=name)


def test_lora_dropout_on_the_output_layer_falls_back_with_one_warning(caplog):
    model = adapted(["lm_head"], dropout=0.1)
    head, reason = OutputHead.of(model.train())
    assert head is None and "lora_dropout=0.1" in reason
    model.eval()  # dropout off: the update merges again
    assert OutputHead.of(model)[0] is not None
    model.train()
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            loss, _, used = loss_and_grads(model, "ls", fused=True)
            assert used is False and torch.isfinite(loss)
    warnings = [r for r in caplog.records if "fused_linear" in r.getMessage()]
    assert len(warnings) == 2 and "lora_dropout=0.1" in warnings[0].getMessage()


def test_merged_and_disabled_adapters_use_the_base_weight():
    model = adapted(["lm_head"])
    with model.disable_adapter():
        head, _ = OutputHead.of(model)
        assert head.updates == () and torch.equal(head.weight, model.base_model.model.lm_head.base_layer.weight)
    merged = model.merge_and_unload().requires_grad_(True)  # PEFT froze the base weights
    plain, _, _ = loss_and_grads(merged, "ls", fused=False)
    fused, _, used = loss_and_grads(merged, "ls", fused=True)
    assert used is True
    torch.testing.assert_close(fused, plain, rtol=1e-6, atol=1e-6)
