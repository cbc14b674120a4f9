"""Hugging Face adapter: ``Trainer`` subclasses, a ``compute_loss_func`` callable and a callback.

One-line swap::

    trainer = LabelRegTrainer(model=model, args=args, train_dataset=ds, method="maxsup", alpha=0.1)

The loss is :class:`labelreg_nlp.token_loss.TokenLoss` over the model's logits (``[N, K]`` for
sequence classification, ``[N, T, V]`` for token-level models; causal LMs shifted so position t
predicts label t+1), ``-100`` labels left out of every term, and the summed loss divided by the
Trainer's ``num_items_in_batch`` (the non-ignored labels of the whole accumulated batch, over all
processes) when it passes one, else by this micro-batch's non-ignored labels. That makes gradient
accumulation exact, as with the models' own losses (DESIGN.md section 3, HF bullet).

The alpha schedule follows ``state.epoch`` or ``state.global_step``; OLS periods end at each epoch
end (or every N optimizer steps), are all-reduced across processes by ``torch.distributed``, and
the state is saved in every checkpoint directory (``labelreg_state.pt``) and read back by
``trainer.train(resume_from_checkpoint=...)``.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import torch
from transformers import Seq2SeqTrainer, Trainer, TrainerCallback
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
from transformers.trainer_utils import get_last_checkpoint

from .online_label_smoothing import INITS
from .token_loss import METHODS, TokenLoss

STATE_FILE = "labelreg_state.pt"
IGNORE_INDEX = -100


@dataclass
class LabelRegArguments:
    """Label-regularization options, readable by ``HfArgumentParser`` next to ``TrainingArguments``."""

    method: Literal["none", "ls", "maxsup", "ols"] = field(
        default="ls", metadata={"help": "none (plain CE), ls (label smoothing), maxsup (Max Suppression) "
                                        "or ols (Online Label Smoothing)"})
    alpha: float = field(default=0.1, metadata={"help": "LS smoothing / MaxSup weight in [0, 1] (start of the "
                                                        "schedule when --alpha_end is given)"})
    alpha_end: float | None = field(default=None, metadata={"help": "if set, alpha goes linearly from --alpha to "
                                                                    "this value over the schedule horizon"})
    schedule_unit: Literal["epoch", "step"] = field(
        default="epoch", metadata={"help": "what the alpha schedule counts: epochs (state.epoch) or optimizer "
                                           "steps (state.global_step)"})
    schedule_horizon: int | None = field(
        default=None, metadata={"help": "schedule length in its unit (default: the run's number of epochs, "
                                        "or its max steps)"})
    ols_hard_weight: float = field(default=0.5, metadata={"help": "OLS weight of CE(one-hot)"})
    ols_soft_weight: float = field(default=0.5, metadata={"help": "OLS weight of CE(soft label)"})
    ols_period_steps: int = field(default=0, metadata={"help": "OLS period in optimizer steps; 0 = one epoch"})
    ols_init: Literal["uniform", "ls", "zeros"] = field(
        default="uniform", metadata={"help": "OLS soft labels of the first period: uniform (paper), ls "
                                             "(label smoothing with --ols_init_alpha) or zeros (official code)"})
    ols_init_alpha: float = field(default=0.1, metadata={"help": "smoothing of --ols_init ls"})
    ols_topk: int | None = field(default=None, metadata={"help": "OLS sparse top-k per class (default: dense "
                                                                 "up to 2048 classes, else k = 64)"})
    ols_dense: bool = field(default=False, metadata={"help": "force the dense K x K OLS state"})

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.schedule_unit not in ("epoch", "step"):
            raise ValueError(f"schedule_unit must be 'epoch' or 'step', got {self.schedule_unit!r}")
        if self.ols_init not in INITS:
            raise ValueError(f"ols_init must be one of {INITS}, got {self.ols_init!r}")
        if int(self.ols_period_steps) < 0:
            raise ValueError(f"ols_period_steps must be >= 0, got {self.ols_period_steps!r}")
        if self.schedule_horizon is not None and int(self.schedule_horizon) < 1:
            raise ValueError(f"schedule_horizon must be >= 1, got {self.schedule_horizon!r}")

    def build_loss(self, num_classes: int | None) -> TokenLoss:
        return TokenLoss(
            self.method, self.alpha, alpha_end=self.alpha_end, schedule_horizon=self.schedule_horizon,
            num_classes=num_classes, ignore_index=IGNORE_INDEX,
            ols_hard_weight=self.ols_hard_weight, ols_soft_weight=self.ols_soft_weight, ols_init=self.ols_init,
            ols_init_alpha=self.ols_init_alpha, ols_topk=self.ols_topk, ols_dense=self.ols_dense,
        )


def _logits_of(outputs: Any) -> torch.Tensor:
    if isinstance(outputs, dict):
        return outputs["logits"]
    return outputs[0] if isinstance(outputs, (tuple, list)) else outputs


class LabelRegLoss:
    """A ``compute_loss_func``-style callable: ``loss(outputs, labels, num_items_in_batch=None)``.

    For a plain ``Trainer``::

        loss = LabelRegLoss(LabelRegArguments(method="ols"), num_classes=model.config.num_labels)
        Trainer(..., compute_loss_func=loss, callbacks=[loss.callback()])

    (The callback moves the schedule and ends OLS periods; checkpointing OLS state needs
    :class:`LabelRegTrainer`, or :meth:`save` / :meth:`load` by hand.)
    ``shift_labels``: compare logits at t with labels at t + 1 (causal LMs).
    """

    def __init__(self, args: LabelRegArguments | None = None, *, num_classes: int | None = None,
                 shift_labels: bool = False) -> None:
        self.args = args or LabelRegArguments()
        self.shift_labels = bool(shift_labels)
        self.token_loss = self.args.build_loss(num_classes)
        self.token_loss.train(False)  # the callback or the trainer switches it on for training steps

    def __call__(self, outputs: Any, labels: torch.Tensor | None, num_items_in_batch: torch.Tensor | int | None = None) -> torch.Tensor:
        if labels is None:
            raise ValueError("LabelRegLoss needs the batch's labels; the inputs had no 'labels'")
        logits = _logits_of(outputs)
        if self.shift_labels:
            # pad-and-shift the labels instead of slicing the logits: no copy of [B, T, V]
            labels = torch.nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
        self.token_loss.to(logits.device)
        return self.token_loss(logits, labels.to(logits.device), num_items_in_batch)

    @property
    def method(self) -> str:
        return self.token_loss.method

    def callback(self) -> LabelRegCallback:
        return LabelRegCallback(self)

    def log_values(self) -> dict[str, float]:
        """What the trainers add to each training log line."""
        out: dict[str, float] = {}
        if self.method in ("ls", "maxsup"):
            out["labelreg_alpha"] = self.token_loss.alpha
        ols = self.token_loss.ols
        if ols is not None:
            classes = torch.arange(ols.num_classes, device=ols.count.device)
            out["ols_periods"] = int(ols.periods)
            out["ols_self_mass"] = float(ols.target_mass(classes).mean())  # mean S[y][y]
        return out

    def save(self, directory: str | os.PathLike) -> None:
        state = {"method": self.method, "progress": self.token_loss.progress,
                 "state": self.token_loss.state_dict()}
        torch.save(state, os.path.join(directory, STATE_FILE))

    def load(self, directory: str | os.PathLike) -> None:
        path = os.path.join(directory, STATE_FILE)
        if not os.path.isfile(path):
            if self.token_loss.ols is None:
                return  # stateless methods rebuild their schedule position from the trainer state
            raise FileNotFoundError(f"{path} not found: this checkpoint holds no OLS state to resume from")
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved["method"] != self.method:
            raise ValueError(f"{path} was saved for method {saved['method']!r}, this trainer uses {self.method!r}")
        self.token_loss.load_state_dict(saved["state"])
        self.token_loss.set_progress(saved["progress"])


class LabelRegCallback(TrainerCallback):
    """Moves the alpha schedule with the trainer and ends OLS periods."""

    def __init__(self, loss: LabelRegLoss) -> None:
        self.loss = loss

    def on_train_begin(self, args, state, control, **kwargs):
        token_loss, options = self.loss.token_loss, self.loss.args
        if token_loss.alpha_end is not None and token_loss.schedule_horizon is None:
            total = math.ceil(state.num_train_epochs) if options.schedule_unit == "epoch" else state.max_steps
            token_loss.schedule_horizon = max(1, int(total))

    def on_epoch_begin(self, args, state, control, **kwargs):
        if self.loss.args.schedule_unit == "epoch":
            self.loss.token_loss.set_progress(math.floor((state.epoch or 0.0) + 1e-9))

    def on_step_begin(self, args, state, control, **kwargs):
        if self.loss.args.schedule_unit == "step":
            self.loss.token_loss.set_progress(state.global_step)
        self.loss.token_loss.train(True)

    def on_step_end(self, args, state, control, **kwargs):
        self.loss.token_loss.train(False)
        period = self.loss.args.ols_period_steps
        if period and state.global_step % period == 0:
            self.loss.token_loss.end_period()

    def on_epoch_end(self, args, state, control, **kwargs):
        self.loss.token_loss.train(False)
        if not self.loss.args.ols_period_steps:
            self.loss.token_loss.end_period()


def _num_classes(model: torch.nn.Module) -> int | None:
    """Vocabulary size for token-level models, ``config.num_labels`` for classification heads."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and getattr(head, "weight", None) is not None:
        return int(head.weight.shape[0])
    config = getattr(model, "config", None)
    return getattr(config, "num_labels", None)


def _is_causal_lm(model: torch.nn.Module) -> bool:
    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False):
        return False
    return type(model).__name__ in set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())


class LabelRegTrainerMixin:
    """What :class:`LabelRegTrainer` and :class:`LabelRegSeq2SeqTrainer` add to their base.

    Keyword arguments: ``labelreg_args`` (a :class:`LabelRegArguments`) and/or any of its fields
    (``method="maxsup", alpha=0.1, ...``) to override them; ``num_classes`` and ``shift_labels``
    when they cannot be read from the model.
    """

    def __init__(self, *args: Any, labelreg_args: LabelRegArguments | None = None,
                 num_classes: int | None = None, shift_labels: bool | None = None, **kwargs: Any) -> None:
        names = {f.name for f in fields(LabelRegArguments)}
        overrides = {name: kwargs.pop(name) for name in list(kwargs) if name in names}
        if kwargs.get("compute_loss_func") is not None:
            raise ValueError("LabelRegTrainer computes the loss itself; do not pass compute_loss_func")
        options = LabelRegArguments(**{**asdict(labelreg_args or LabelRegArguments()), **overrides})
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
            shift_labels = _is_causal_lm(model)
        self.labelreg_loss = LabelRegLoss(options, num_classes=num_classes, shift_labels=shift_labels)
        # As a compute_loss_func, the base Trainer counts num_items_in_batch for it (over all
        # micro-batches and processes) and rescales for average_tokens_across_devices.
        self.compute_loss_func = self.labelreg_loss
        self.add_callback(self.labelreg_loss.callback())

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        self.labelreg_loss.token_loss.train(model.training)
        result = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                      num_items_in_batch=num_items_in_batch)
        # normalized by the whole accumulated batch, or by this micro-batch only
        self.loss_is_scaled_for_ga = num_items_in_batch is not None
        return result

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        super().save_model(output_dir, _internal_call)
        if self.args.should_save:
            directory = output_dir or self.args.output_dir
            os.makedirs(directory, exist_ok=True)
            self.labelreg_loss.save(directory)

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any):
        checkpoint = resume_from_checkpoint
        if isinstance(checkpoint, bool) and checkpoint:
            checkpoint = get_last_checkpoint(self.args.output_dir)
        if isinstance(checkpoint, (str, os.PathLike)):
            self.labelreg_loss.load(checkpoint)
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if "loss" in logs:  # training log lines
            logs.update(self.labelreg_loss.log_values())
        super().log(logs, *args, **kwargs)


class LabelRegTrainer(LabelRegTrainerMixin, Trainer):
    """``transformers.Trainer`` with a label-regularized loss (see the module docstring)."""


class LabelRegSeq2SeqTrainer(LabelRegTrainerMixin, Seq2SeqTrainer):
    """``transformers.Seq2SeqTrainer`` with a label-regularized loss (see the module docstring)."""
