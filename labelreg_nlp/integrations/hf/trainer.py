"""``LabelRegTrainer`` and ``LabelRegSeq2SeqTrainer``: the Hugging Face trainers with a
label-regularized loss (see :mod:`labelreg_nlp.integrations.hf`)."""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import asdict, fields
from typing import Any

import torch
from transformers import Seq2SeqTrainer, Trainer
from transformers.trainer_utils import get_last_checkpoint

from .arguments import IGNORE_INDEX, LabelRegArguments
from .loss import LabelRegLoss
from .output_head import is_causal_lm


def _num_classes(model: torch.nn.Module) -> int | None:
    """Vocabulary size for token-level models, ``config.num_labels`` for classification heads."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and getattr(head, "weight", None) is not None:
        return int(head.weight.shape[0])
    config = getattr(model, "config", None)
    return getattr(config, "num_labels", None)


def mask_sequence_starts(inputs: dict[str, Any]) -> dict[str, Any]:
    """``inputs`` with ``-100`` labels at the first token of every sequence packed into a row,
    when the batch is padding-free (``position_ids`` and no ``attention_mask``, as
    ``DataCollatorWithFlattening`` and TRL's ``padding_free=True`` make it), so that the shift of
    a causal LM never predicts one sequence's first token from the end of another (the collators
    of transformers and TRL already put ``-100`` there). Other batches are returned unchanged.

    Example:
        >>> import torch
        >>> batch = {"input_ids": torch.tensor([[5, 6, 7, 8, 9]]), "position_ids": torch.tensor([[0, 1, 2, 0, 1]]),
        ...          "labels": torch.tensor([[5, 6, 7, 8, 9]])}
        >>> mask_sequence_starts(batch)["labels"]
        tensor([[-100,    6,    7, -100,    9]])
    """
    labels, positions = inputs.get("labels"), inputs.get("position_ids")
    if labels is None or positions is None or inputs.get("attention_mask") is not None:
        return inputs
    if positions.shape != labels.shape:
        raise ValueError(f"position_ids has shape {tuple(positions.shape)}, labels {tuple(labels.shape)}: "
                         "a packed batch needs one position per label")
    # always a (small) copy rather than a check first: no host sync in the training step
    return {**inputs, "labels": labels.masked_fill(positions.to(labels.device) == 0, IGNORE_INDEX)}


class LabelRegTrainerMixin:
    """What :class:`LabelRegTrainer` and :class:`LabelRegSeq2SeqTrainer` add to their base.

    Keyword arguments: ``labelreg_args`` (a :class:`LabelRegArguments`) and/or any of its fields
    (``method="maxsup", alpha=0.1, ...``) to override them; ``num_classes`` and ``shift_labels``
    when they cannot be read from the model.
    """

    def __init__(self, *args: Any, labelreg_args: LabelRegArguments | None = None,
                 num_classes: int | None = None, shift_labels: bool | None = None, **kwargs: Any) -> None:
        arguments_class = type(labelreg_args) if labelreg_args is not None else LabelRegArguments
        names = {f.name for f in fields(arguments_class)}
        overrides = {name: kwargs.pop(name) for name in list(kwargs) if name in names}
        if kwargs.get("compute_loss_func") is not None:
            raise ValueError("LabelRegTrainer computes the loss itself; do not pass compute_loss_func")
        options = arguments_class(**{**asdict(labelreg_args or arguments_class()), **overrides})
        super().__init__(*args, **kwargs)
        if self.args.label_smoothing_factor:
            raise ValueError(
                f"label_smoothing_factor={self.args.label_smoothing_factor} would smooth twice; "
                "set it to 0 and use method='ls' with alpha instead"
            )
        model = self.model
        if model is None:
            raise ValueError("LabelRegTrainer needs a model (model_init is not supported)")
        if num_classes is None:
            num_classes = _num_classes(model)
        if shift_labels is None:
            shift_labels = is_causal_lm(model)
        self.labelreg_loss = LabelRegLoss(options, num_classes=num_classes, shift_labels=shift_labels)
        self.labelreg_loss.token_loss.to(self.args.device)
        # As a compute_loss_func, the base Trainer counts num_items_in_batch for it (over all
        # micro-batches and processes) and rescales for average_tokens_across_devices.
        self.compute_loss_func = self.labelreg_loss
        self.add_callback(self.labelreg_loss.callback())

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The base ``compute_loss`` with :class:`LabelRegLoss` as its ``compute_loss_func``.

        What this override owes the Trainer (see ``Trainer.training_step``): the loss is the summed
        loss divided by ``num_items_in_batch`` when the Trainer passes it, so it sets
        ``loss_is_scaled_for_ga`` and the Trainer does not divide by the accumulation steps again;
        without it, the micro-batch's own mean. Stateful methods accumulate only while the model
        is in training mode (never in evaluation or prediction). With ``fused_linear``, training
        steps run the model under :meth:`LabelRegLoss.capture_output_layer` (evaluation and
        prediction, which return the logits, never do).
        """
        if "labels" not in inputs:
            raise ValueError(
                f"the batch has no 'labels' (it holds {', '.join(map(str, inputs)) or 'nothing'}); a 'label' or "
                "'label_ids' column becomes 'labels' in the data collator, which cannot keep label names (strings): "
                "map them to integer ids first (datasets: Dataset.class_encode_column)")
        if self.labelreg_loss.shift_labels:
            inputs = mask_sequence_starts(inputs)
        self.labelreg_loss.token_loss.train(model.training)
        fused = (self.labelreg_loss.args.fused_linear and model.training and not return_outputs
                 and torch.is_grad_enabled())
        with self.labelreg_loss.capture_output_layer(model) if fused else nullcontext():
            result = self.base_compute_loss(model, inputs, return_outputs=return_outputs,
                                            num_items_in_batch=num_items_in_batch)
        # normalized by the whole accumulated batch, or by this micro-batch only
        self.loss_is_scaled_for_ga = num_items_in_batch is not None
        return result

    def base_compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The base trainer's ``compute_loss`` (with :class:`LabelRegLoss` as its ``compute_loss_func``)."""
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)

    def create_optimizer(self, *args: Any, **kwargs: Any) -> torch.optim.Optimizer:
        """The base optimizer plus, for methods with learnable parameters (LS++, LLS), one more
        parameter group holding them, with ``labelreg_lr`` and ``labelreg_weight_decay``."""
        optimizer = super().create_optimizer(*args, **kwargs)
        params = [p for p in self.labelreg_loss.token_loss.parameters() if p.requires_grad]
        known = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if params and not any(id(p) in known for p in params):
            options = self.labelreg_loss.args
            lr = self.args.learning_rate if options.labelreg_lr is None else float(options.labelreg_lr)
            decay = self.args.weight_decay if options.labelreg_weight_decay is None else float(options.labelreg_weight_decay)
            optimizer.add_param_group({"params": params, "lr": lr, "weight_decay": decay})
        return optimizer

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """The base ``save_model``, plus the method's state (``labelreg_state.pt``) beside the model,
        so every checkpoint directory holds it."""
        super().save_model(output_dir, _internal_call)
        if self.args.should_save:
            directory = output_dir or self.args.output_dir
            os.makedirs(directory, exist_ok=True)
            self.labelreg_loss.save(directory)

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any):
        """The base ``train``; when resuming, the method's state is read from the checkpoint first
        (an error if it is missing for a stateful method, or was saved for another method)."""
        checkpoint = resume_from_checkpoint
        if isinstance(checkpoint, bool) and checkpoint:
            checkpoint = get_last_checkpoint(self.args.output_dir)
        if isinstance(checkpoint, (str, os.PathLike)):
            self.labelreg_loss.load(checkpoint)
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        """The base ``log``; training lines also get :meth:`LabelRegLoss.log_values`."""
        if "loss" in logs:  # training log lines
            logs.update(self.labelreg_loss.log_values())
        super().log(logs, *args, **kwargs)


class LabelRegTrainer(LabelRegTrainerMixin, Trainer):
    """``transformers.Trainer`` with a label-regularized loss (see the module docstring).

    Args:
        *args, **kwargs: what ``Trainer`` takes (``compute_loss_func`` excepted).
        labelreg_args: a :class:`LabelRegArguments`; its fields may also be given as keywords
            (``method="maxsup", alpha=0.1``), which override it.
        num_classes: K, when it cannot be read from the model's output embeddings or config.
        shift_labels: compare logits at t with labels at t + 1; default: True for causal LMs.

    Example:
        >>> from transformers import BertConfig, BertForSequenceClassification, TrainingArguments
        >>> model = BertForSequenceClassification(BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1,
        ...     num_attention_heads=2, intermediate_size=16, num_labels=3))
        >>> args = TrainingArguments(output_dir="/tmp/labelreg-doc", report_to=[], use_cpu=True)
        >>> trainer = LabelRegTrainer(model=model, args=args, method="maxsup", alpha=0.1)
        >>> trainer.labelreg_loss.token_loss
        TokenLoss(
          method='maxsup', ignore_index=-100
          (maxsup): MaxSupLoss(alpha=0.1)
        )
    """


class LabelRegSeq2SeqTrainer(LabelRegTrainerMixin, Seq2SeqTrainer):
    """``transformers.Seq2SeqTrainer`` with a label-regularized loss (see the module docstring)."""
