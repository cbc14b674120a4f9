"""A model's output layer as the fused loss applies it (``fused_linear``)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from ..unwrap import unwrap_model

# Config attributes of models that change the logits after their output layer in ways the fused
# loss does not repeat (Gemma 2 soft-capping, Cohere's logit scale, Granite's logit divisor).
LOGIT_POSTPROCESSING = ("final_logit_softcapping", "logit_scale", "logits_scaling")


class LowRankUpdate(NamedTuple):
    """One active LoRA adapter of the output layer: ``logits += scaling * B(A(x))``."""

    a: torch.nn.Linear  # lora_A, [r, d], no bias
    b: torch.nn.Linear  # lora_B, [V, r], with a bias when the adapter has lora_bias
    scaling: float


class OutputHead:
    """A model's output layer as the fused loss applies it: the module the model calls
    (``layer``: its ``lm_head``, or PEFT's LoRA layer or ``modules_to_save`` wrapper around it),
    the plain ``nn.Linear`` it computes with (``linear``), the active LoRA updates, and, for models
    that add one after it (BART, Marian, mBART, Pegasus), ``final_logits_bias``.

    The weight the loss uses is ``linear.weight + sum scaling * B A`` over the LoRA updates: a
    [V, d] tensor, differentiable in A and B, never the [N, V] logits.
    """

    def __init__(self, linear: torch.nn.Linear, extra_bias: torch.Tensor | None,
                 layer: torch.nn.Module | None = None, updates: tuple[LowRankUpdate, ...] = ()) -> None:
        self.linear, self.extra_bias = linear, extra_bias
        self.layer = linear if layer is None else layer
        self.updates = updates

    @property
    def num_classes(self) -> int:
        return self.linear.weight.size(0)

    @property
    def weight(self) -> torch.Tensor:
        """``[V, d]``: the layer's weight plus its active low-rank updates."""
        weight = self.linear.weight
        for update in self.updates:
            delta = update.b.weight @ update.a.weight.to(update.b.weight.dtype)
            weight = weight + (update.scaling * delta).to(weight.dtype)
        return weight

    def bias(self) -> torch.Tensor | None:
        """The bias of the logits: the layer's, its LoRA updates' (``lora_bias``), plus
        ``final_logits_bias`` where the model has one."""
        parts = [self.linear.bias] + [u.scaling * u.b.bias for u in self.updates if u.b.bias is not None]
        if self.extra_bias is not None:
            parts.append(self.extra_bias.reshape(-1).to(self.linear.weight.dtype))
        parts = [p for p in parts if p is not None]
        return sum(parts[1:], parts[0]) if parts else None

    @classmethod
    def of(cls, model: torch.nn.Module) -> tuple[OutputHead | None, str]:
        """``(head, "")`` when the model's logits are ``lm_head(hidden) [+ final_logits_bias]``
        (``lm_head`` a plain ``nn.Linear``, or PEFT's LoRA or ``modules_to_save`` around one),
        else ``(None, why not)``."""
        model = unwrap_model(model)
        name = type(model).__name__
        config = getattr(model, "config", None)
        if not (is_causal_lm(model) or getattr(config, "is_encoder_decoder", False)):
            return None, f"{name} is neither a causal LM nor a seq2seq model"
        layer = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        linear, updates, why = _resolve_peft(layer)
        if linear is None:
            return None, f"{name}'s output layer {why}"
        for attr in LOGIT_POSTPROCESSING:
            if getattr(config, attr, None) not in (None, 1, 1.0):
                return None, f"{name} changes its logits after the output layer ({attr}={getattr(config, attr)!r})"
        extra = getattr(model, "final_logits_bias", None)
        return cls(linear, extra if torch.is_tensor(extra) else None, layer, updates), ""


def _resolve_peft(layer: torch.nn.Module | None) -> tuple[torch.nn.Linear | None, tuple[LowRankUpdate, ...], str]:
    """The plain ``nn.Linear`` that ``layer`` computes with and its active LoRA updates, or
    ``(None, (), why not)``. PEFT's layers are recognised by their attributes (no PEFT import):
    ``modules_to_save`` wrappers (``original_module``, ``modules_to_save``) and LoRA layers
    (``base_layer``, ``lora_A``, ``lora_B``, ``scaling``), as their ``forward`` reads them."""
    kind = type(layer).__name__
    if hasattr(layer, "modules_to_save") and hasattr(layer, "original_module"):
        active = list(getattr(layer, "active_adapters", []))
        if layer.disable_adapters or not active or any(a not in layer.modules_to_save for a in active):
            layer = layer.original_module
        else:
            layer = layer.modules_to_save[active[0]]
        kind = type(layer).__name__
    if not all(hasattr(layer, attr) for attr in ("base_layer", "lora_A", "lora_B", "scaling")):
        if type(layer) is not torch.nn.Linear:
            return None, (), f"is {kind}, not a plain nn.Linear"
        return layer, (), ""
    base = layer.base_layer
    if type(base) is not torch.nn.Linear:
        return None, (), f"is a LoRA layer over {type(base).__name__}, not over a plain nn.Linear"
    if layer.disable_adapters or layer.merged:  # the base layer alone (merged: the update is in its weight)
        return base, (), ""
    updates = []
    for adapter in layer.active_adapters:
        if adapter not in layer.lora_A:
            continue
        if adapter in getattr(layer, "lora_variant", {}):
            return None, (), f"has a LoRA variant (DoRA or another) in adapter {adapter!r}, not plain LoRA"
        dropout = layer.lora_dropout[adapter]
        if not isinstance(dropout, torch.nn.Identity) and dropout.training and getattr(dropout, "p", 0.0) > 0:
            return None, (), (f"has lora_dropout={dropout.p} in adapter {adapter!r}: the update then sees another "
                              "input than the base layer and cannot be merged into one weight")
        updates.append(LowRankUpdate(layer.lora_A[adapter], layer.lora_B[adapter], float(layer.scaling[adapter])))
    return base, tuple(updates), ""


def is_causal_lm(model: torch.nn.Module) -> bool:
    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False):
        return False
    return type(model).__name__ in set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
