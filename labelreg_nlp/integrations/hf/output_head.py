"""A model's output layer as the fused loss applies it (``fused_linear``)."""

from __future__ import annotations

import torch
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from ..unwrap import unwrap_model

# Config attributes of models that change the logits after their output layer in ways the fused
# loss does not repeat (Gemma 2 soft-capping, Cohere's logit scale, Granite's logit divisor).
LOGIT_POSTPROCESSING = ("final_logit_softcapping", "logit_scale", "logits_scaling")


class OutputHead:
    """A model's output layer as the fused loss applies it: ``linear`` (the model's ``lm_head``)
    plus, for models that add one after it (BART, Marian, mBART, Pegasus), ``final_logits_bias``."""

    def __init__(self, linear: torch.nn.Linear, extra_bias: torch.Tensor | None) -> None:
        self.linear, self.extra_bias = linear, extra_bias

    @property
    def weight(self) -> torch.Tensor:
        return self.linear.weight

    def bias(self) -> torch.Tensor | None:
        """The bias of the logits: the layer's, plus ``final_logits_bias`` where the model has one."""
        bias = self.linear.bias
        if self.extra_bias is None:
            return bias
        extra = self.extra_bias.reshape(-1).to(self.weight.dtype)
        return extra if bias is None else bias + extra

    @classmethod
    def of(cls, model: torch.nn.Module) -> tuple[OutputHead | None, str]:
        """``(head, "")`` when the model's logits are ``lm_head(hidden) [+ final_logits_bias]``,
        else ``(None, why not)``."""
        model = unwrap_model(model)
        name = type(model).__name__
        config = getattr(model, "config", None)
        if not (is_causal_lm(model) or getattr(config, "is_encoder_decoder", False)):
            return None, f"{name} is neither a causal LM nor a seq2seq model"
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        if type(head) is not torch.nn.Linear:
            return None, f"{name}'s output layer is {type(head).__name__}, not a plain nn.Linear"
        for attr in LOGIT_POSTPROCESSING:
            if getattr(config, attr, None) not in (None, 1, 1.0):
                return None, f"{name} changes its logits after the output layer ({attr}={getattr(config, attr)!r})"
        extra = getattr(model, "final_logits_bias", None)
        return cls(head, extra if torch.is_tensor(extra) else None), ""


def is_causal_lm(model: torch.nn.Module) -> bool:
    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False):
        return False
    return type(model).__name__ in set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
