"""``LabelRegArguments``: the label-regularization options of the Hugging Face trainers, one
field per option, readable by ``HfArgumentParser`` next to ``TrainingArguments``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Literal, Optional

from ...losses.checks import check_alpha
from ...losses.lls import LLSOptions
from ...losses.lspp import LSPPOptions
from ...losses.online import OLSOptions
from ...losses.options import SHARED_OPTIONS
from ...losses.parts import IGNORE_INDEX
from ...losses.registry import METHODS, check_choices, flat_options, get_method
from ...losses.smoothing import LabelSmoothingOptions
from ...losses.token_loss import TokenLoss

HF_SCHEDULE_UNITS = ("epoch", "step")  # what the alpha schedule counts: epochs or optimizer steps


def _help(options_class: type, name: str, method: str) -> str:
    """The help line of an options dataclass field, as the HF flags show it (``ols: ...; >= 0``)."""
    f = next(f for f in fields(options_class) if f.name == name)
    valid = f"; {f.metadata['valid']}" if f.metadata.get("valid") else ""
    return f"{method}: {f.metadata['help']}{valid}"


@dataclass
class LabelRegArguments:
    """Label-regularization options, readable by ``HfArgumentParser`` next to ``TrainingArguments``
    (``--method --alpha --alpha_end --schedule_unit ... --ols_topk ...``).

    The method's own options carry its prefix (``ols_topk``); ``alpha`` and ``alpha_end`` are
    shared. A method added with :func:`~labelreg_nlp.losses.registry.register_method` gets its
    options by subclassing this class with its fields (``toy_beta: float = 1.0``).

    Example:
        >>> args = LabelRegArguments(method="ols", ols_topk=8)
        >>> args.build_loss(num_classes=100).ols.topk
        8
    """

    # choices: the registry itself, so a method registered later is accepted on the command line too
    method: str = field(default="ls", metadata={
        "help": ", ".join(f"{m.name} ({m.title})" for m in METHODS.values()), "choices": METHODS})
    alpha: float = field(default=0.1, metadata={
        "help": "regularization weight: LS smoothing, MaxSup suppression (with alpha_end: the schedule's start), "
                "LS++ and LLS weight of the learned distribution (LS++: 0 < a < 1, LLS: 0 < a <= 1); [0, 1]"})
    alpha_end: Optional[float] = field(default=None, metadata={  # noqa: UP045
        "help": "ls, maxsup: if set, alpha goes linearly from --alpha to this value over the schedule horizon"})
    schedule_unit: Literal["epoch", "step"] = field(default="epoch", metadata={
        "help": "what the alpha schedule counts: epochs (state.epoch) or optimizer steps (state.global_step)"})
    schedule_horizon: Optional[int] = field(default=None, metadata={  # noqa: UP045
        "help": "schedule length in its unit (default: the run's number of epochs, or its max steps)"})
    labelreg_lr: Optional[float] = field(default=None, metadata={  # noqa: UP045
        "help": "lspp, lls: learning rate of the learned table (its own optimizer group, same schedule); "
                "default: --learning_rate"})
    labelreg_weight_decay: Optional[float] = field(default=None, metadata={  # noqa: UP045
        "help": "lspp, lls: weight decay of the learned table; default: --weight_decay; 0 = none"})
    fused_linear: bool = field(default=False, metadata={
        "help": "training steps of causal LMs and seq2seq models: apply the model's lm_head inside the loss, "
                "in row chunks, so the [tokens, vocab] logits are never held whole (a plain nn.Linear head; "
                "otherwise a warning naming why, and the model's logits)"})
    validate_args: bool = field(default=True, metadata={
        "help": "check that every label is a class or -100 (one device-to-host sync per step)"})
    # ls
    convention: Literal["uniform", "fairseq"] = field(default="uniform", metadata={
        "help": _help(LabelSmoothingOptions, "convention", "ls")})
    # ols
    ols_hard_weight: float = field(default=0.5, metadata={"help": _help(OLSOptions, "hard_weight", "ols")})
    ols_soft_weight: float = field(default=0.5, metadata={"help": _help(OLSOptions, "soft_weight", "ols")})
    ols_init: Literal["uniform", "ls", "zeros"] = field(default="uniform", metadata={
        "help": _help(OLSOptions, "init", "ols")})
    ols_init_alpha: float = field(default=0.1, metadata={"help": _help(OLSOptions, "init_alpha", "ols")})
    ols_topk: Optional[int] = field(default=None, metadata={"help": _help(OLSOptions, "topk", "ols")})  # noqa: UP045
    ols_dense: bool = field(default=False, metadata={"help": _help(OLSOptions, "dense", "ols")})
    ols_unseen: Literal["uniform", "zeros"] = field(default="uniform", metadata={
        "help": _help(OLSOptions, "unseen", "ols")})
    ols_freeze_above: Optional[float] = field(default=None, metadata={  # noqa: UP045
        "help": _help(OLSOptions, "freeze_above", "ols")})
    ols_period_steps: int = field(default=0, metadata={"help": "ols: period in optimizer steps; 0 = one epoch"})
    # lspp
    lspp_rank: Optional[int] = field(default=None, metadata={"help": _help(LSPPOptions, "rank", "lspp")})  # noqa: UP045
    lspp_full: bool = field(default=False, metadata={"help": _help(LSPPOptions, "full", "lspp")})
    # lls
    lls_rank: Optional[int] = field(default=None, metadata={"help": _help(LLSOptions, "rank", "lls")})  # noqa: UP045
    lls_full: bool = field(default=False, metadata={"help": _help(LLSOptions, "full", "lls")})

    def __post_init__(self) -> None:
        get_method(self.method)
        check_alpha(self.alpha, "alpha")
        if self.alpha_end is not None:
            check_alpha(self.alpha_end, "alpha_end")
        if self.schedule_unit not in HF_SCHEDULE_UNITS:
            raise ValueError(f"schedule_unit must be one of {HF_SCHEDULE_UNITS}, got {self.schedule_unit!r}")
        check_choices(self.method_values())
        if int(self.ols_period_steps) < 0:
            raise ValueError(f"ols_period_steps must be >= 0, got {self.ols_period_steps!r}")
        if self.schedule_horizon is not None and int(self.schedule_horizon) < 1:
            raise ValueError(f"schedule_horizon must be >= 1, got {self.schedule_horizon!r}")
        for name in ("labelreg_lr", "labelreg_weight_decay"):
            value = getattr(self, name)
            if value is not None and not (float(value) >= 0 and math.isfinite(float(value))):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    def method_values(self) -> dict[str, object]:
        """The methods' options this instance has, by flat name (``ols_topk``; not alpha)."""
        return {flat: getattr(self, flat) for flat in flat_options()
                if flat not in SHARED_OPTIONS and hasattr(self, flat)}

    def build_loss(self, num_classes: int | None) -> TokenLoss:
        """The :class:`~labelreg_nlp.losses.token_loss.TokenLoss` these arguments describe,
        ignoring ``-100`` labels."""
        return TokenLoss(self.method, self.alpha, alpha_end=self.alpha_end, schedule_horizon=self.schedule_horizon,
                         num_classes=num_classes, ignore_index=IGNORE_INDEX, validate_args=self.validate_args,
                         **self.method_values())

    def period_steps(self) -> int:
        """Optimizer steps per period of the chosen method (0: one epoch, or no periods)."""
        method = get_method(self.method)
        return int(getattr(self, f"{method.prefix}period_steps", 0)) if method.periodic else 0
