"""What a training loop of one's own (accelerate, Lightning, plain DDP) needs for the methods'
state across processes: the learned tables' gradients averaged as DDP averages the model's.

OLS needs nothing more: :meth:`TokenLoss.end_period` all-reduces the period's counts itself
when ``torch.distributed`` is initialized.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


def average_gradients_across_processes(params: Iterable[torch.nn.Parameter]) -> None:
    """Average the gradients of ``params`` over the processes of torch.distributed (a parameter
    without a gradient counts as zero), as DDP does for the model's; no-op in one process.

    Call it between the backward of the last micro-batch and ``optimizer.step()`` with the loss's
    parameters (``token_loss.parameters()``: the LS++/LLS tables), which live outside the
    DDP-wrapped model.

    Args:
        params: the parameters whose ``.grad`` to average in place.

    Example:
        >>> import torch
        >>> table = torch.nn.Parameter(torch.zeros(3))
        >>> table.grad = torch.ones(3)
        >>> average_gradients_across_processes([table])  # one process: unchanged
        >>> table.grad
        tensor([1., 1., 1.])
    """
    params = list(params)
    if not params or not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    world = torch.distributed.get_world_size()
    if world == 1:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        torch.distributed.all_reduce(p.grad)  # SUM: gloo has no AVG
        p.grad.div_(world)
