"""The model inside DistributedDataParallel and the trainers' own wrappers."""

from __future__ import annotations

import torch


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside DDP and fairseq's or accelerate's wrappers (which hold it as ``.module``)
    and PEFT's ``PeftModel`` (``get_base_model()``: the model with its adapter layers).

    Example:
        >>> inner = torch.nn.Linear(2, 2)
        >>> class Wrapper(torch.nn.Module):
        ...     def __init__(self, module):
        ...         super().__init__()
        ...         self.module = module
        >>> unwrap_model(Wrapper(Wrapper(inner))) is inner
        True
    """
    while True:
        if isinstance(getattr(model, "module", None), torch.nn.Module):
            model = model.module
        elif callable(getattr(type(model), "get_base_model", None)):  # PEFT's PeftModel
            model = model.get_base_model()
        else:
            return model
