"""The model inside DistributedDataParallel and the trainers' own wrappers."""

from __future__ import annotations

import torch


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside DDP and fairseq's or accelerate's wrappers (which hold it as ``.module``).

    Example:
        >>> inner = torch.nn.Linear(2, 2)
        >>> class Wrapper(torch.nn.Module):
        ...     def __init__(self, module):
        ...         super().__init__()
        ...         self.module = module
        >>> unwrap_model(Wrapper(Wrapper(inner))) is inner
        True
    """
    while isinstance(getattr(model, "module", None), torch.nn.Module):
        model = model.module
    return model
