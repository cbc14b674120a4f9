"""``LabelRegLoss``: the loss of the Hugging Face trainers as a ``compute_loss_func`` callable,
over the model's logits or, with ``fused_linear``, over its last hidden states."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from ...losses.token_metrics import TokenMetrics, fused_token_metrics, token_metrics
from ...metrics.prediction_files import read_torch_file
from ..state_file import STATE_FILE
from .arguments import IGNORE_INDEX, LabelRegArguments
from .callback import LabelRegCallback
from .output_head import OutputHead

logger = logging.getLogger(__name__)


def _logits_of(outputs: Any) -> torch.Tensor:
    if isinstance(outputs, dict):
        return outputs["logits"]
    return outputs[0] if isinstance(outputs, (tuple, list)) else outputs


class LabelRegLoss:
    """A ``compute_loss_func``-style callable: ``loss(outputs, labels, num_items_in_batch=None)``.

    For a plain ``Trainer``::

        loss = LabelRegLoss(LabelRegArguments(method="ols"), num_classes=model.config.num_labels)
        Trainer(..., compute_loss_func=loss, callbacks=[loss.callback()])

    (The callback moves the schedule and ends OLS periods; checkpointing the OLS state needs
    :class:`LabelRegTrainer`, or :meth:`save` / :meth:`load` by hand.)

    Args:
        args: the method and its options (default: ``LabelRegArguments()``, label smoothing 0.1).
        num_classes: K (required by stateful methods such as ``ols``).
        shift_labels: compare logits at t with labels at t + 1 (causal LMs).

    Returns (when called):
        The summed loss over non-``-100`` labels divided by ``num_items_in_batch`` when given,
        else by this batch's count.

    Example:
        >>> import torch
        >>> loss = LabelRegLoss(LabelRegArguments(method="maxsup", alpha=0.1), num_classes=5)
        >>> labels = torch.tensor([[1, 2, -100]])
        >>> float(loss({"logits": torch.zeros(1, 3, 5)}, labels, num_items_in_batch=4))  # 2 * log(5) / 4
        0.8047189712524414
    """

    def __init__(self, args: LabelRegArguments | None = None, *, num_classes: int | None = None,
                 shift_labels: bool = False) -> None:
        self.args = args or LabelRegArguments()
        self.shift_labels = bool(shift_labels)
        self.token_loss = self.args.build_loss(num_classes)
        self.token_loss.train(False)  # the callback or the trainer switches it on for training steps
        self._head: OutputHead | None = None  # inside capture_output_layer()
        self._hidden: torch.Tensor | None = None  # what the head was given in this forward
        self._fallback_reason: str | None = None
        #: set to compute :attr:`metrics` at every call (entropy and top-1 hits, no gradient)
        self.track_metrics = False
        #: the last call's :class:`~labelreg_nlp.losses.token_metrics.TokenMetrics`, when tracked
        self.metrics: TokenMetrics | None = None

    def __call__(self, outputs: Any, labels: torch.Tensor | None, num_items_in_batch: torch.Tensor | int | None = None) -> torch.Tensor:
        if labels is None:
            raise ValueError("LabelRegLoss needs the batch's labels; the inputs had no 'labels'")
        if self.shift_labels:
            # pad-and-shift the labels instead of slicing the logits: no copy of [B, T, V]
            labels = torch.nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
        if self._hidden is not None:  # the forward ran under capture_output_layer(): no logits were made
            hidden, self._hidden = self._hidden, None
            self.token_loss.to(hidden.device)
            weight, bias, labels = self._head.weight, self._head.bias(), labels.to(hidden.device)
            if self.track_metrics:
                self.metrics = fused_token_metrics(hidden, weight, labels, bias=bias, ignore_index=IGNORE_INDEX)
            return self.token_loss.fused(hidden, weight, labels, num_items_in_batch, bias=bias)
        logits = _logits_of(outputs)
        if logits.dim() == labels.dim() + 1 and logits.shape[:-1] != labels.shape:
            raise ValueError(
                f"the model returned logits for {tuple(logits.shape[:-1])} positions and the labels are "
                f"{tuple(labels.shape)}: sliced logits (logits_to_keep) cannot be scored against every label; "
                "train with logits_to_keep=0")
        self.token_loss.to(logits.device)
        labels = labels.to(logits.device)
        if self.track_metrics:
            self.metrics = token_metrics(logits, labels, ignore_index=IGNORE_INDEX)
        return self.token_loss(logits, labels, num_items_in_batch)

    @contextmanager
    def capture_output_layer(self, model: torch.nn.Module) -> Iterator[bool]:
        """Within this context the model's output layer does not compute logits: it keeps its input
        (the last hidden states) for the next call of this loss, which applies the layer inside the
        loss in row chunks (:meth:`TokenLoss.fused`), and returns a zero-memory placeholder
        (a broadcast zero of the logits' shape) as the model's logits.

        Yields whether it could: a model whose output layer is not a plain ``nn.Linear`` (or whose
        logits are changed after it in a way the loss cannot repeat) keeps its usual forward, with
        one warning naming why.
        """
        head, reason = OutputHead.of(model)
        if head is None:
            if self._fallback_reason is None:
                self._fallback_reason = reason
                logger.warning(f"fused_linear: {reason}; using the model's logits instead")
            yield False
            return

        def keep_input(hidden: torch.Tensor) -> torch.Tensor:
            self._hidden = hidden
            return hidden.new_zeros(()).expand(*hidden.shape[:-1], head.num_classes)

        self._head, self._hidden = head, None
        head.layer.forward = keep_input  # an instance attribute, before the class's forward
        try:
            yield True
        finally:
            del head.layer.forward
            self._head = self._hidden = None

    @property
    def method(self) -> str:
        return self.token_loss.method

    def callback(self) -> LabelRegCallback:
        return LabelRegCallback(self)

    def log_values(self) -> dict[str, float]:
        """What the trainers add to each training log line (``labelreg_alpha``, OLS counters)."""
        return self.token_loss.log_values()

    def save(self, directory: str | os.PathLike) -> None:
        state = {"method": self.method, "progress": self.token_loss.progress,
                 "state": self.token_loss.state_dict()}
        torch.save(state, os.path.join(directory, STATE_FILE))

    def load(self, directory: str | os.PathLike) -> None:
        path = os.path.join(directory, STATE_FILE)
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"checkpoint folder not found: {directory}")
        if not os.path.isfile(path):
            if not self.token_loss.state_dict():
                return  # stateless methods rebuild their schedule position from the trainer state
            raise FileNotFoundError(
                f"{path} not found: this checkpoint holds no {self.method.upper()} state to resume from")
        saved = read_torch_file(path, f"a {STATE_FILE} (the method's state of a checkpoint)")
        if not isinstance(saved, dict) or not {"method", "progress", "state"} <= set(saved):
            raise ValueError(f"{path} is not a {STATE_FILE}: it lacks 'method', 'progress' or 'state'")
        if saved["method"] != self.method:
            raise ValueError(f"{path} was saved for method {saved['method']!r}, this trainer uses {self.method!r}")
        self.token_loss.load_state_dict(saved["state"])
        self.token_loss.set_progress(saved["progress"])


# Config attributes of models that change the logits after their output layer in ways the fused
# loss does not repeat (Gemma 2 soft-capping, Cohere's logit scale, Granite's logit divisor).
