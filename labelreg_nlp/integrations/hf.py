"""Hugging Face adapter: ``Trainer`` subclasses, a ``compute_loss_func`` callable and a callback.

One-line swap::

    trainer = LabelRegTrainer(model=model, args=args, train_dataset=ds, method="maxsup", alpha=0.1)

The loss is :class:`~labelreg_nlp.losses.token_loss.TokenLoss` over the model's logits (``[N, K]``
for sequence classification, ``[N, T, V]`` for token-level models; causal LMs shifted so position
t predicts label t+1), ``-100`` labels left out of every term, and the summed loss divided by the
Trainer's ``num_items_in_batch`` (the non-ignored labels of the whole accumulated batch, over all
processes) when it passes one, else by this micro-batch's non-ignored labels. That makes
gradient accumulation exact, as with the models' own losses.

The alpha schedule follows ``state.epoch`` or ``state.global_step``; periods of stateful methods
(OLS) end at each epoch end (or every N optimizer steps), are all-reduced across processes by
``torch.distributed``, and the state is saved in every checkpoint directory
(``labelreg_state.pt``) and read back by ``trainer.train(resume_from_checkpoint=...)``.

Methods with learnable parameters (LS++ and LLS tables) get their own optimizer parameter group
(``labelreg_lr``, ``labelreg_weight_decay``), follow the model's learning-rate schedule, are saved
in every checkpoint with the rest of the method's state, and have their gradients averaged across
processes before each optimizer step (they live outside the DDP-wrapped model).

:class:`LabelRegArguments` is built from the method registry: one field per option of every
method (``labelreg-nlp methods`` lists them), readable by ``HfArgumentParser``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, field, fields, make_dataclass
from typing import Any, Literal, Optional

import torch
from transformers import Seq2SeqTrainer, Trainer, TrainerCallback
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
from transformers.trainer_utils import get_last_checkpoint

from ..losses.parts import check_alpha
from ..losses.registry import ALPHA, METHODS, Method, Option, check_choices, flat_options, get_method
from ..losses.token_loss import TokenLoss
from ..metrics.prediction_files import read_torch_file

logger = logging.getLogger(__name__)
STATE_FILE = "labelreg_state.pt"
IGNORE_INDEX = -100
HF_SCHEDULE_UNITS = ("epoch", "step")  # what the alpha schedule counts: epochs or optimizer steps


def _period_field(method: Method) -> str:
    return f"{method.prefix}period_steps"


def _field_type(option: Option) -> Any:
    kind: Any = Literal[option.choices] if option.choices else option.type
    return Optional[kind] if option.nullable else kind  # noqa: UP045 (a runtime type for HfArgumentParser)


def _argument_fields() -> list[tuple[str, Any, Any]]:
    """(name, type, field) of every LabelRegArguments field, in registry order."""
    names = ", ".join(f"{m.name} ({m.title})" for m in METHODS.values())
    out: list[tuple[str, Any, Any]] = [
        ("method", Literal[tuple(METHODS)], field(default="ls", metadata={"help": names})),
        ("alpha", float, field(default=ALPHA.default, metadata={"help": f"{ALPHA.help}; {ALPHA.valid}"})),
        ("alpha_end", Optional[float], field(default=None, metadata={  # noqa: UP045
            "help": "if set, alpha goes linearly from --alpha to this value over the schedule horizon"})),
        ("schedule_unit", Literal[HF_SCHEDULE_UNITS], field(default="epoch", metadata={
            "help": "what the alpha schedule counts: epochs (state.epoch) or optimizer steps (state.global_step)"})),
        ("schedule_horizon", Optional[int], field(default=None, metadata={  # noqa: UP045
            "help": "schedule length in its unit (default: the run's number of epochs, or its max steps)"})),
    ]
    out += [
        ("labelreg_lr", Optional[float], field(default=None, metadata={  # noqa: UP045
            "help": "lspp, lls: learning rate of the learned table (its own optimizer group, same schedule); "
                    "default: --learning_rate"})),
        ("labelreg_weight_decay", Optional[float], field(default=None, metadata={  # noqa: UP045
            "help": "lspp, lls: weight decay of the learned table; default: --weight_decay; 0 = none"})),
        ("fused_linear", bool, field(default=False, metadata={
            "help": "training steps of causal LMs and seq2seq models: apply the model's lm_head inside the loss, "
                    "in row chunks, so the [tokens, vocab] logits are never held whole (a plain nn.Linear head; "
                    "otherwise a warning naming why, and the model's logits)"})),
        ("validate_args", bool, field(default=True, metadata={
            "help": "check that every label is a class or -100 (one device-to-host sync per step)"})),
    ]
    for method in METHODS.values():
        for flat, option in method.flat_options().items():
            if flat != "alpha":
                valid = f"; {option.valid}" if option.valid else ""
                out.append((flat, _field_type(option), field(default=option.default, metadata={
                    "help": f"{method.name}: {option.help}{valid}"})))
        if method.periodic:
            out.append((_period_field(method), int, field(default=0, metadata={
                "help": f"{method.name}: period in optimizer steps; 0 = one epoch"})))
    return out


def _check_arguments(self: Any) -> None:
    get_method(self.method)
    check_alpha(self.alpha, "alpha")
    if self.alpha_end is not None:
        check_alpha(self.alpha_end, "alpha_end")
    if self.schedule_unit not in HF_SCHEDULE_UNITS:
        raise ValueError(f"schedule_unit must be one of {HF_SCHEDULE_UNITS}, got {self.schedule_unit!r}")
    check_choices({flat: getattr(self, flat) for flat in flat_options()})
    for method in METHODS.values():
        if method.periodic and int(getattr(self, _period_field(method))) < 0:
            raise ValueError(f"{_period_field(method)} must be >= 0, got {getattr(self, _period_field(method))!r}")
    if self.schedule_horizon is not None and int(self.schedule_horizon) < 1:
        raise ValueError(f"schedule_horizon must be >= 1, got {self.schedule_horizon!r}")
    for name in ("labelreg_lr", "labelreg_weight_decay"):
        value = getattr(self, name)
        if value is not None and not (float(value) >= 0 and math.isfinite(float(value))):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _build_loss(self: Any, num_classes: int | None) -> TokenLoss:
    """The :class:`TokenLoss` these arguments describe, ignoring ``-100`` labels."""
    options = {flat: getattr(self, flat) for flat in flat_options() if flat != "alpha"}
    return TokenLoss(self.method, self.alpha, alpha_end=self.alpha_end, schedule_horizon=self.schedule_horizon,
                     num_classes=num_classes, ignore_index=IGNORE_INDEX, validate_args=self.validate_args, **options)


def _period_steps(self: Any) -> int:
    """Optimizer steps per period of the chosen method (0: one epoch, or no periods)."""
    method = get_method(self.method)
    return int(getattr(self, _period_field(method))) if method.periodic else 0


LabelRegArguments = make_dataclass(
    "LabelRegArguments", _argument_fields(),
    namespace={"__post_init__": _check_arguments, "build_loss": _build_loss, "period_steps": _period_steps,
               "__module__": __name__,
               "__doc__": "Label-regularization options, readable by ``HfArgumentParser`` next to "
                          "``TrainingArguments``; one field per registry option (``--method --alpha "
                          "--alpha_end --schedule_unit --schedule_horizon --convention --ols_topk ...``)."},
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

    def __call__(self, outputs: Any, labels: torch.Tensor | None, num_items_in_batch: torch.Tensor | int | None = None) -> torch.Tensor:
        if labels is None:
            raise ValueError("LabelRegLoss needs the batch's labels; the inputs had no 'labels'")
        if self.shift_labels:
            # pad-and-shift the labels instead of slicing the logits: no copy of [B, T, V]
            labels = torch.nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
        if self._hidden is not None:  # the forward ran under capture_output_layer(): no logits were made
            hidden, self._hidden = self._hidden, None
            self.token_loss.to(hidden.device)
            return self.token_loss.fused(hidden, self._head.weight, labels.to(hidden.device), num_items_in_batch,
                                         bias=self._head.bias())
        logits = _logits_of(outputs)
        self.token_loss.to(logits.device)
        return self.token_loss(logits, labels.to(logits.device), num_items_in_batch)

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
            return hidden.new_zeros(()).expand(*hidden.shape[:-1], head.weight.size(0))

        self._head, self._hidden = head, None
        head.linear.forward = keep_input  # an instance attribute, before the class's forward
        try:
            yield True
        finally:
            del head.linear.forward
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
        while isinstance(getattr(model, "module", None), torch.nn.Module):  # DDP and other wrappers
            model = model.module
        name = type(model).__name__
        config = getattr(model, "config", None)
        if not (_is_causal_lm(model) or getattr(config, "is_encoder_decoder", False)):
            return None, f"{name} is neither a causal LM nor a seq2seq model"
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        if type(head) is not torch.nn.Linear:
            return None, f"{name}'s output layer is {type(head).__name__}, not a plain nn.Linear"
        for attr in LOGIT_POSTPROCESSING:
            if getattr(config, attr, None) not in (None, 1, 1.0):
                return None, f"{name} changes its logits after the output layer ({attr}={getattr(config, attr)!r})"
        extra = getattr(model, "final_logits_bias", None)
        return cls(head, extra if torch.is_tensor(extra) else None), ""


def average_gradients_across_processes(params: list[torch.nn.Parameter]) -> None:
    """Average the gradients of ``params`` over the processes of torch.distributed (a parameter
    without a gradient counts as zero), as DDP does for the model's; no-op in one process."""
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


class LabelRegCallback(TrainerCallback):
    """Moves the alpha schedule with the trainer and ends the periods of stateful methods (OLS)."""

    def __init__(self, loss: LabelRegLoss) -> None:
        self.loss = loss

    def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
        token_loss, options = self.loss.token_loss, self.loss.args
        params = list(token_loss.parameters())
        if params and optimizer is not None:
            known = {id(p) for group in optimizer.param_groups for p in group["params"]}
            if not all(id(p) in known for p in params):
                raise ValueError(f"the {token_loss.method} table is not in the optimizer, so it would never learn: "
                                 "use LabelRegTrainer, or give your optimizer the loss's parameters "
                                 "(LabelRegLoss.token_loss.parameters())")
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

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        average_gradients_across_processes(list(self.loss.token_loss.parameters()))

    def on_optimizer_step(self, args, state, control, **kwargs):
        # the Trainer zeroes the model's gradients only (model.zero_grad())
        for p in self.loss.token_loss.parameters():
            p.grad = None

    def on_step_end(self, args, state, control, **kwargs):
        self.loss.token_loss.train(False)
        period = self.loss.args.period_steps()
        if period and state.global_step % period == 0:
            self.loss.token_loss.end_period()

    def on_epoch_end(self, args, state, control, **kwargs):
        self.loss.token_loss.train(False)
        if not self.loss.args.period_steps():
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
        self.labelreg_loss.token_loss.train(model.training)
        fused = (self.labelreg_loss.args.fused_linear and model.training and not return_outputs
                 and torch.is_grad_enabled())
        with self.labelreg_loss.capture_output_layer(model) if fused else nullcontext():
            result = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                          num_items_in_batch=num_items_in_batch)
        # normalized by the whole accumulated batch, or by this micro-batch only
        self.loss_is_scaled_for_ga = num_items_in_batch is not None
        return result

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
