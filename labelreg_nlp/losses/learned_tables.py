"""The learned per-class row logits of LS++ and LLS, in a full or a factored (low-rank) form.

Row ``y`` of a table holds the logits ``r_y`` [K] of the learned distribution ``softmax(r_y)`` of
class ``y``. With ``exclude_target`` (LS++) entry ``y`` of row ``y`` is not a parameter: it is
``-inf``, so the distribution lives on the K - 1 other classes.

* :class:`FullTable`: one parameter ``weight``, K x K (K x (K - 1) without the target, the
  paper's C matrix), zeros at init (uniform rows), as in the papers.
* :class:`FactoredTable`: ``r_y = u_y V^T`` with ``u`` [K, r] and ``v`` [K, r], 2 K r numbers:
  15.6 MiB at K = 32k, r = 64 in float32 instead of 3.8 GiB. ``v`` starts at zero (uniform rows,
  like the full form) and ``u`` at N(0, 1/r) from a fixed seed, so that ``v`` gets a gradient at
  the first step and every process starts from the same table.

Tables are used inside the chunked autograd function of :mod:`labelreg_nlp.losses.learned`: they
give the row logits of a chunk of targets and add a chunk's row gradients to their parameters'
gradients, so no [N, K] gradient of the row logits is ever held whole.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

INIT_SEED = 0  # the factored form's u: same numbers in every process and run


class RowTable(nn.Module):
    """Interface of the tables (see the module docstring)."""

    num_classes: int
    exclude_target: bool

    def params(self) -> tuple[Tensor, ...]:
        """The parameters, in the order :meth:`add_row_grad` fills their gradients."""
        raise NotImplementedError

    def rows(self, y: Tensor, dtype: torch.dtype) -> Tensor:
        """Row logits ``[n, K]`` of classes ``y`` in ``dtype`` (``-inf`` at the target when excluded)."""
        raise NotImplementedError

    def add_row_grad(self, y: Tensor, grad_rows: Tensor, grads: list[Tensor]) -> None:
        """Add the gradient of the row logits of classes ``y`` (``[n, K]``, zero at an excluded
        target) to ``grads`` (one tensor per parameter)."""
        raise NotImplementedError

    @property
    def form(self) -> str:
        raise NotImplementedError


def _exclude(rows: Tensor, y: Tensor) -> Tensor:
    return rows.scatter_(1, y[:, None], float("-inf"))


class FullTable(RowTable):
    """Row logits stored whole: ``weight`` [K, K] or, without the target, [K, K - 1] (row ``y``
    lists the classes other than ``y`` in increasing order).

    Example:
        >>> import torch
        >>> table = FullTable(3, exclude_target=True)
        >>> table.weight.data = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
        >>> table.rows(torch.tensor([1]), torch.float32)
        tensor([[3., -inf, 4.]])
    """

    def __init__(self, num_classes: int, exclude_target: bool) -> None:
        super().__init__()
        self.num_classes, self.exclude_target = int(num_classes), bool(exclude_target)
        k = self.num_classes
        self.weight = nn.Parameter(torch.zeros(k, k - 1 if exclude_target else k))

    @property
    def form(self) -> str:
        return "full"

    def params(self) -> tuple[Tensor, ...]:
        return (self.weight,)

    def rows(self, y: Tensor, dtype: torch.dtype) -> Tensor:
        stored = self.weight.detach()[y].to(dtype)
        if not self.exclude_target:
            return stored
        # column k < y holds stored[k], column k > y holds stored[k - 1], column y is -inf
        left = torch.nn.functional.pad(stored, (0, 1), value=float("-inf"))
        right = torch.nn.functional.pad(stored, (1, 0), value=float("-inf"))
        after = torch.arange(self.num_classes, device=y.device)[None, :] > y[:, None]
        return _exclude(torch.where(after, right, left), y)

    def add_row_grad(self, y: Tensor, grad_rows: Tensor, grads: list[Tensor]) -> None:
        if self.exclude_target:  # stored entry j is column j below y, column j + 1 from y on
            from_y = torch.arange(self.num_classes - 1, device=y.device)[None, :] >= y[:, None]
            grad_rows = torch.where(from_y, grad_rows[:, 1:], grad_rows[:, :-1])
        grads[0].index_add_(0, y, grad_rows.to(grads[0].dtype))


class FactoredTable(RowTable):
    """Row logits ``r_y = u_y V^T``: ``u`` [K, r], ``v`` [K, r] (``r_y[k] = u_y . v_k``).

    Exact for ``rank >= K`` (``u = I``, ``v = W^T`` holds any full table ``W``).

    Example:
        >>> import torch
        >>> table = FactoredTable(5, rank=2, exclude_target=False)
        >>> table.rows(torch.tensor([0, 3]), torch.float32)  # v = 0 at init: uniform rows
        tensor([[0., 0., 0., 0., 0.],
                [0., 0., 0., 0., 0.]])
    """

    def __init__(self, num_classes: int, rank: int, exclude_target: bool) -> None:
        super().__init__()
        self.num_classes, self.exclude_target = int(num_classes), bool(exclude_target)
        self.rank = int(rank)
        gen = torch.Generator().manual_seed(INIT_SEED)
        self.u = nn.Parameter(torch.randn(self.num_classes, self.rank, generator=gen) / math.sqrt(self.rank))
        self.v = nn.Parameter(torch.zeros(self.num_classes, self.rank))

    @property
    def form(self) -> str:
        return f"rank {self.rank}"

    def params(self) -> tuple[Tensor, ...]:
        return (self.u, self.v)

    def rows(self, y: Tensor, dtype: torch.dtype) -> Tensor:
        u, v = self.u.detach(), self.v.detach()
        out = (u[y].to(dtype) @ v.to(dtype).T).contiguous()
        return _exclude(out, y) if self.exclude_target else out

    def add_row_grad(self, y: Tensor, grad_rows: Tensor, grads: list[Tensor]) -> None:
        dtype = grad_rows.dtype
        u, v = self.u.detach().to(dtype), self.v.detach().to(dtype)
        grads[0].index_add_(0, y, (grad_rows @ v).to(grads[0].dtype))
        grads[1].add_((grad_rows.T @ u[y]).to(grads[1].dtype))
