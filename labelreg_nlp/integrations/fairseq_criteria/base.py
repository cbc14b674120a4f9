"""What every criterion of this package shares: reading fairseq samples, logging as fairseq's
``label_smoothed_cross_entropy`` does, following epochs and updates, and holding the method's
module (:class:`MethodCriterion`). The criteria themselves, one class per method, are in the
modules beside this one.
"""

# No `from __future__ import annotations` here: fairseq reads the config dataclasses'
# field types at runtime to build its command-line options.
import inspect
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from fairseq import utils
from fairseq.criterions import FairseqCriterion
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.logging import metrics
from omegaconf import II

from ...losses.base import MethodLoss, ScheduledAlphaLoss
from ...losses.fused_linear import fused_linear_parts
from ...losses.options import option_fields
from ...losses.parts import LossParts
from ...losses.registry import get_method
from ..fairseq_command import fairseq_flag
from ..unwrap import unwrap_model

logger = logging.getLogger(__name__)
LN2 = math.log(2.0)
FAIRSEQ_SCHEDULE_UNITS = ("epoch", "update")  # what a fairseq alpha schedule counts
ScheduleUnit = ChoiceEnum(list(FAIRSEQ_SCHEDULE_UNITS))


flag = fairseq_flag


def optional_int(value: int) -> int | None:
    """fairseq has no null on its command line: an int option's 0 means "the default" (``None``)."""
    return None if int(value) == 0 else int(value)


def options_field(options_class: type, name: str) -> Any:
    """A config field for the options dataclass field ``name``: its default and help (with the
    accepted range), so fairseq's ``--help`` says what the method's own docs say. A nullable int
    (``None`` = chosen automatically) becomes 0, as fairseq has no null on its command line
    (:func:`optional_int` reads it back)."""
    option = next(f for f in option_fields(options_class) if f.name == name)
    auto = option.nullable and option.type is int
    help = option.help + ("; 0 = that default" if auto else "") + (f"; {option.valid}" if option.valid else "")
    return field(default=0 if auto else option.default, metadata={"help": help})


@dataclass
class TokenCriterionConfig(FairseqDataclass):
    """Options shared by every criterion of this package (same names as fairseq's)."""

    report_accuracy: bool = field(default=False, metadata={"help": "report accuracy metric"})
    ignore_prefix_size: int = field(default=0, metadata={"help": "Ignore first N tokens"})
    sentence_avg: bool = II("optimization.sentence_avg")
    fused_output_layer: bool = field(default=False, metadata={
        "help": "compute the decoder's output projection inside the loss, in row chunks, so the [tokens, vocab] "
                "logits are never held whole (a plain linear or tied-embedding output layer, as fairseq's "
                "transformers have; otherwise a warning and the usual path)"})
    no_validate_args: bool = field(default=False, metadata={
        "help": "skip the check that every target is inside the dictionary (it costs a device-to-host sync per batch)"})


class TokenCriterion(FairseqCriterion):
    """Base: translate a fairseq sample into ``(logits, target, padding_idx)``, call the core,
    return ``(summed loss, sample_size, logging_output)`` exactly as fairseq's criteria do."""

    def __init__(self, task, sentence_avg: bool, ignore_prefix_size: int = 0, report_accuracy: bool = False,
                 fused_output_layer: bool = False):
        super().__init__(task)
        if ignore_prefix_size < 0:
            raise ValueError(f"--ignore-prefix-size must be >= 0, got {ignore_prefix_size}")
        self.sentence_avg = sentence_avg
        self.ignore_prefix_size = ignore_prefix_size
        self.report_accuracy = report_accuracy
        self.fused_output_layer = bool(fused_output_layer)
        self._fallback_reason: str | None = None  # why --fused-output-layer could not be used, once known

    # -- subclasses implement this ------------------------------------------------------------
    def compute_parts(self, logits: torch.Tensor, target: torch.Tensor, keep_per_position: bool) -> LossParts:
        raise NotImplementedError

    def compute_fused_parts(self, features: torch.Tensor, projection: torch.nn.Linear,
                            target: torch.Tensor) -> LossParts:
        """The loss of ``projection(features)`` without those logits (``--fused-output-layer``)."""
        raise NotImplementedError

    def extra_logging(self, parts: LossParts, sample_size: int, target: torch.Tensor) -> dict[str, Any]:
        return {}

    # -- fairseq plumbing -----------------------------------------------------------------------
    def logits_and_target(self, model, net_output, sample, features: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """What the loss reads, ``[B, T, V]``, and the targets ``[B, T]``, prefix removed
        (``features=True``: the decoder's features ``[B, T, d]`` of a ``features_only`` call).

        The decoder's raw logits when the model's log-probabilities are known to be their plain
        log-softmax (:func:`log_softmax_of_output`): the same numbers, since every loss here
        depends on the logits only up to a constant per row, without fairseq's float32
        ``[B*T, V]`` copy. Otherwise (adaptive softmax, decoders that output probabilities or
        normalize in their own way, such as the pointer-generator) the model's
        ``get_normalized_probs(net_output, log_probs=True)``, as fairseq's criteria read.
        """
        if features or log_softmax_of_output(model):
            logits = net_output[0]
        else:
            logits = model.get_normalized_probs(net_output, log_probs=True)
        target = model.get_targets(sample, net_output)
        if self.ignore_prefix_size > 0:
            logits = logits[:, self.ignore_prefix_size :, :]
            target = target[:, self.ignore_prefix_size :]
        return logits, target

    def fused_projection(self, model) -> torch.nn.Linear | None:
        """The decoder's output projection when ``--fused-output-layer`` can compute it inside
        the loss, else ``None`` (with one warning naming why)."""
        if not self.fused_output_layer:
            return None
        projection, reason = plain_output_projection(model)
        if projection is None and self._fallback_reason is None:
            self._fallback_reason = reason
            logger.warning(f"--fused-output-layer: {reason}; computing the full logits instead")
        return projection

    def forward(self, model, sample, reduce: bool = True):
        """``(loss, sample_size, logging_output)`` as fairseq's criteria: the summed loss, or with
        ``reduce=False`` the loss per target position, shape ``[B*T, 1]`` (padding 0), as
        ``label_smoothed_cross_entropy`` returns it (its logged loss and nll_loss likewise).

        With ``--fused-output-layer`` (and ``reduce=True``) the decoder returns its features
        (``features_only=True``) and the loss applies the output projection chunk by chunk."""
        projection = self.fused_projection(model) if reduce else None
        net_output = model(**sample["net_input"], **({"features_only": True} if projection is not None else {}))
        if projection is not None:
            features, target = self.logits_and_target(model, net_output, sample, features=True)
            parts = self.compute_fused_parts(features, projection, target)
        else:
            logits, target = self.logits_and_target(model, net_output, sample)
            parts = self.compute_parts(logits, target, keep_per_position=not reduce)
        if reduce:
            loss, nll = parts.loss, parts.nll
        else:
            loss, nll = parts.per_position.reshape(-1, 1), parts.per_position_nll.reshape(-1, 1)
        sample_size = sample["target"].size(0) if self.sentence_avg else sample["ntokens"]
        logging_output = {
            "loss": loss.data,
            "nll_loss": nll.data,
            "ntokens": sample["ntokens"],
            "nsentences": sample["target"].size(0),
            "sample_size": sample_size,
            **self.extra_logging(parts, sample_size, target),
        }
        if self.report_accuracy:
            logging_output["n_correct"] = utils.item(parts.ncorrect.data)
            logging_output["total"] = utils.item(parts.ntokens.data)
        return loss, sample_size, logging_output

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        """Aggregate logging outputs from data parallel training (fairseq's formulas)."""
        loss_sum = sum(log.get("loss", 0) for log in logging_outputs)
        nll_loss_sum = sum(log.get("nll_loss", 0) for log in logging_outputs)
        ntokens = sum(log.get("ntokens", 0) for log in logging_outputs)
        sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)

        metrics.log_scalar("loss", loss_sum / sample_size / LN2, sample_size, round=3)
        metrics.log_scalar("nll_loss", nll_loss_sum / ntokens / LN2, ntokens, round=3)
        metrics.log_derived("ppl", lambda meters: utils.get_perplexity(meters["nll_loss"].avg))

        total = utils.item(sum(log.get("total", 0) for log in logging_outputs))
        if total > 0:
            metrics.log_scalar("total", total)
            n_correct = utils.item(sum(log.get("n_correct", 0) for log in logging_outputs))
            metrics.log_scalar("n_correct", n_correct)
            metrics.log_derived(
                "accuracy",
                lambda meters: round(meters["n_correct"].sum * 100.0 / meters["total"].sum, 3)
                if meters["total"].sum > 0
                else float("nan"),
            )
        cls.reduce_extra_metrics(logging_outputs, sample_size, ntokens)

    @classmethod
    def reduce_extra_metrics(cls, logging_outputs, sample_size, ntokens) -> None:
        pass

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True


def log_softmax_of_output(model) -> bool:
    """Whether ``model.get_normalized_probs(net_output, log_probs=True)`` is known to be the plain
    ``log_softmax(net_output[0])``: neither the model (unwrapped from DDP) nor its decoder
    overrides fairseq's default normalization, and the decoder has no adaptive softmax."""
    from fairseq.models import BaseFairseqModel, FairseqDecoder
    from fairseq.models.transformer import TransformerModelBase

    model = unwrap_model(model)
    decoder = getattr(model, "decoder", None)
    if not isinstance(decoder, FairseqDecoder) or getattr(decoder, "adaptive_softmax", None) is not None:
        return False
    model_type, decoder_type = type(model), type(decoder)
    # TransformerModelBase restates the base method (for TorchScript) without changing it
    delegating = (BaseFairseqModel.get_normalized_probs, TransformerModelBase.get_normalized_probs)
    return (model_type.get_normalized_probs in delegating
            and model_type.get_normalized_probs_scriptable is BaseFairseqModel.get_normalized_probs_scriptable
            and decoder_type.get_normalized_probs is FairseqDecoder.get_normalized_probs
            and decoder_type.get_normalized_probs_scriptable is FairseqDecoder.get_normalized_probs_scriptable)


def plain_output_projection(model) -> tuple[torch.nn.Linear | None, str]:
    """``(decoder.output_projection, "")`` when the model's log-probabilities are the plain
    log-softmax of ``output_projection(features)`` and its forward takes ``features_only``
    (fairseq's transformer models and language models), else ``(None, why not)``."""
    from fairseq.models.transformer import TransformerDecoderBase

    model = unwrap_model(model)
    decoder = getattr(model, "decoder", None)
    name = type(model).__name__
    if not log_softmax_of_output(model):
        return None, f"{name}'s output is not a plain log-softmax of its decoder's logits (adaptive softmax, or own normalization)"
    projection = getattr(decoder, "output_projection", None)
    if type(projection) is not torch.nn.Linear:
        return None, f"{type(decoder).__name__} has no plain nn.Linear output_projection"
    if not isinstance(decoder, TransformerDecoderBase) or type(decoder).output_layer is not TransformerDecoderBase.output_layer:
        return None, f"{type(decoder).__name__} is not a fairseq transformer decoder with its output_layer"
    if "features_only" not in inspect.signature(model.forward).parameters:
        return None, f"{name}.forward takes no features_only argument"
    return projection, ""


def follow_training_progress(task, on_epoch: Callable[[int], None], on_update: Callable[[int], None]) -> None:
    """Call ``on_epoch(epoch)`` (1-based) and ``on_update(num_updates)`` as fairseq trains.

    fairseq gives criteria no such hooks, but its Trainer calls ``task.begin_epoch(epoch, model)``
    at every epoch start (resume included) and ``task.train_step(..., update_num, ...)`` at every
    step, for any task; wrapping those bound methods on this task instance works for all tasks.
    """
    begin_epoch, train_step = task.begin_epoch, task.train_step

    def begin_epoch_hook(epoch, model):
        on_epoch(int(epoch))
        return begin_epoch(epoch, model)

    def train_step_hook(sample, model, criterion, optimizer, update_num, *args, **kwargs):
        on_update(int(update_num))
        return train_step(sample, model, criterion, optimizer, update_num, *args, **kwargs)

    task.begin_epoch = begin_epoch_hook
    task.train_step = train_step_hook


@dataclass(frozen=True)
class FairseqSchedule:
    """An alpha schedule as fairseq options give it.

    Args:
        unit: ``"epoch"`` or ``"update"``.
        horizon: epochs/updates from alpha to alpha_end; 0 = ``max_epoch`` or ``max_update``.
        max_epoch, max_update: fairseq's ``--max-epoch`` and ``--max-update``.
    """

    unit: str = "epoch"
    horizon: int = 0
    max_epoch: int = 0
    max_update: int = 0

    def resolve(self, alpha: float, alpha_end: float | None, flags: dict[str, str]) -> int | None:
        """The horizon in :attr:`unit` (``None`` when alpha does not move), or ``ValueError``
        naming the flags to set."""
        if self.unit not in FAIRSEQ_SCHEDULE_UNITS:
            raise ValueError(f"{flags['schedule_unit']} must be one of {FAIRSEQ_SCHEDULE_UNITS}, got {self.unit!r}")
        horizon = int(self.horizon) or int((self.max_epoch if self.unit == "epoch" else self.max_update) or 0)
        if alpha_end is not None and alpha_end != alpha and not horizon:
            raise ValueError(f"{flags['alpha_end']}={alpha_end} needs a horizon: set "
                             f"{flags['schedule_horizon']} or --max-{self.unit}")
        return horizon or None


class MethodCriterion(TokenCriterion):
    """The criterion of one registry method; each subclass is written out in its own module
    (:class:`~labelreg_nlp.integrations.fairseq_criteria.maxsup.MaxSupCrossEntropyCriterion`, ...)
    with its config dataclass, and calls this ``__init__`` with the method's options dataclass.

    The method's module is a submodule named after the method (``criterion.ols``), so its state
    is in ``state_dict()``; a stateful method without parameters gets an empty parameter, because
    fairseq checkpoints a criterion's state only when it has one.

    Class attributes a subclass sets:
        method: the registry name (``"maxsup"``).
        option_fields: options dataclass field -> config field (``{"alpha": "maxsup_alpha"}``),
            for error messages and the test that every adapter offers every option.
        penalty_log: log the summed penalty per token (base 2) under this name, if any.
    """

    method: ClassVar[str]
    option_fields: ClassVar[dict[str, str]]
    penalty_log: ClassVar[str | None] = None

    def __init__(self, task, sentence_avg: bool, options: Any, *, schedule: FairseqSchedule | None = None,
                 schedule_fields: dict[str, str] | None = None, period_updates: int = 0,
                 ignore_prefix_size: int = 0, report_accuracy: bool = False, fused_output_layer: bool = False,
                 no_validate_args: bool = False):
        super().__init__(task, sentence_avg, ignore_prefix_size, report_accuracy, fused_output_layer)
        spec = get_method(self.method)
        flags = {name: flag(config) for name, config in {**self.option_fields, **(schedule_fields or {})}.items()}
        options.validate(lambda name: flags.get(name, name))
        self.unit = "epoch" if schedule is None else schedule.unit
        self.scheduled = schedule is not None
        self.log_alpha = self.scheduled  # the current alpha in every log line
        horizon = None if schedule is None else schedule.resolve(options.alpha, options.alpha_end, flags)
        module = options.build(len(task.target_dictionary), horizon)
        module.validate_args = not no_validate_args
        self.add_module(spec.name, module)
        self.period_updates = 0
        if spec.periodic:
            self.period_updates = int(period_updates)
            if self.period_updates < 0:
                raise ValueError(f"{flags['period_updates']} must be >= 0, got {self.period_updates}")
            # epoch whose accumulation is pending, last update that ended a period: saved with the state
            self.register_buffer("current_epoch", torch.zeros((), dtype=torch.long))
            self.register_buffer("last_period_update", torch.zeros((), dtype=torch.long))
        if next(module.buffers(), None) is not None and next(module.parameters(), None) is None:
            # added to the loss times zero, so DDP and the optimizer see it used
            self.checkpoint_anchor = torch.nn.Parameter(torch.zeros(0))
        if self.scheduled or spec.periodic:
            follow_training_progress(task, self.on_epoch, self.on_update)

    @property
    def method_loss(self) -> MethodLoss:
        return self._modules[self.method]

    @property
    def alpha(self) -> float:
        """The weight at the current epoch/update (0 for methods without one)."""
        module = self.method_loss
        return module.alpha if isinstance(module, ScheduledAlphaLoss) else 0.0

    def on_epoch(self, epoch: int) -> None:
        """fairseq begins ``epoch`` (1-based; again on resume): move the schedule, end a period."""
        if self.unit == "epoch":
            self.method_loss.set_progress(epoch - 1)
        if self.method_loss.PERIODIC:
            if self.period_updates == 0 and 0 < int(self.current_epoch) < epoch:
                self.method_loss.end_period()
            self.current_epoch.fill_(epoch)

    def on_update(self, num_updates: int) -> None:
        """fairseq runs update ``num_updates``: move the schedule, end a period every N updates."""
        if self.unit == "update":
            self.method_loss.set_progress(num_updates)
        if (self.method_loss.PERIODIC and self.period_updates and num_updates > 0
                and num_updates % self.period_updates == 0 and num_updates != int(self.last_period_update)):
            self.method_loss.end_period()
            self.last_period_update.fill_(num_updates)

    def load_state_dict(self, state_dict, strict: bool = True, *args, **kwargs):
        """fairseq restores a checkpoint's criterion state here. A checkpoint of another
        criterion (fairseq's own, one without parameters, whose state is ``None``, or another
        method's) holds no state of this method: the model loads, this criterion starts its state
        fresh and says so in one log line. A state of this method loads strictly (another size is
        an error naming it)."""
        prefix = self.method + "."
        if not state_dict or not any(str(key).startswith(prefix) for key in state_dict):
            found = "no criterion state" if not state_dict else f"state of another criterion ({', '.join(sorted(state_dict)[:3])})"
            logger.info(f"{self.criterion_name()}: the checkpoint holds {found}; "
                        f"starting the {self.method} state fresh (fine-tuning from another criterion)")
            return torch.nn.modules.module._IncompatibleKeys([], [])
        return super().load_state_dict(state_dict, strict, *args, **kwargs)

    @classmethod
    def criterion_name(cls) -> str:
        """The name fairseq knows this criterion by (``--criterion``)."""
        return f"{cls.method}_cross_entropy"

    def compute_parts(self, logits, target, keep_per_position):
        module = self.method_loss
        module.train(self.training)
        return module.parts(logits, target, ignore_index=self.padding_idx, keep_per_position=keep_per_position)

    def compute_fused_parts(self, features, projection, target):
        module = self.method_loss
        module.train(self.training)
        return fused_linear_parts(features, projection.weight, target, module, bias=projection.bias,
                                  ignore_index=self.padding_idx)

    def forward(self, model, sample, reduce: bool = True):
        loss, sample_size, logging_output = super().forward(model, sample, reduce)
        anchor = getattr(self, "checkpoint_anchor", None)
        return (loss if anchor is None else loss + 0.0 * anchor.sum()), sample_size, logging_output

    def extra_logging(self, parts, sample_size, target):
        module = self.method_loss
        out: dict[str, Any] = {}
        if self.penalty_log:
            out[self.penalty_log] = parts.penalty.data
        # weighted by sample_size so that summed logging outputs still average correctly
        if self.log_alpha:
            out["alpha"] = self.alpha * sample_size
        if module.LOG_VALUES:
            out.update({key: value * sample_size for key, value in module.log_values().items()})
        with torch.no_grad():
            out.update(module.target_log_sums(target[target != self.padding_idx]))
        return out

    @classmethod
    def reduce_extra_metrics(cls, logging_outputs, sample_size, ntokens) -> None:
        module = get_method(cls.method).loss

        def total(key):
            return sum(log.get(key, 0) for log in logging_outputs)

        if cls.penalty_log:
            # base 2 and per token like nll_loss, so loss ~= nll_loss + alpha * penalty in the logs
            metrics.log_scalar(cls.penalty_log, total(cls.penalty_log) / max(ntokens, 1) / LN2, ntokens, round=3)
        scheduled = any(log.get("alpha") is not None for log in logging_outputs)
        for key in (("alpha",) if scheduled else ()) + module.LOG_VALUES:
            metrics.log_scalar(key, total(key) / max(sample_size, 1), sample_size, round=4)
        for key in module.TARGET_LOG_SUMS:
            metrics.log_scalar(key, total(key) / max(ntokens, 1), ntokens, round=4)
