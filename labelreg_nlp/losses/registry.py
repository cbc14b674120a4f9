"""The method registry: each method declares here, once, its name, options and how to build it.

Everything that offers a choice of method derives it from :data:`METHODS`: :class:`TokenLoss`
(keyword arguments), the fairseq criteria (one criterion per method, options named from
:class:`FairseqNames`), the Hugging Face ``LabelRegArguments`` (one field per option), the
scripts' ``--method``/``--criteria`` choices and the documentation's method table
(``labelreg-nlp methods``).

Adding a method = one module in ``losses/`` with a :class:`~labelreg_nlp.losses.base.MethodLoss`
subclass, plus one :class:`Method` entry in :data:`METHODS` below.

Option names come in two namespaces:

* core: the keyword of the method's module (``hard_weight``);
* flat (``TokenLoss``, Hugging Face): ``prefix + name`` (``ols_hard_weight``), except the shared
  :data:`ALPHA` and ``alpha_end`` of scheduled methods, which every method spells ``alpha``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .base import MethodLoss
from .learned import DEFAULT_RANK, FULL_MAX_CLASSES
from .lls import LearnableLabelSmoothing
from .lspp import LabelSmoothingPlusPlus
from .maxsup import MaxSupLoss
from .online import DEFAULT_TOPK, DENSE_MAX_CLASSES, INITS, UNSEEN, OnlineLabelSmoothing
from .parts import check_alpha
from .smoothing import CONVENTIONS, LabelSmoothingLoss


@dataclass(frozen=True)
class Option:
    """One option of a method.

    Args:
        name: the keyword of the method's module.
        type: ``float``, ``int``, ``bool`` or ``str``.
        default: the default value (``None`` for "chosen automatically" when ``nullable``).
        help: one line for ``--help`` and the docs.
        valid: the accepted range, as the docs print it (``"[0, 1]"``, ``">= 0"``).
        choices: the accepted strings, for ``str`` options with a fixed set.
        nullable: ``None`` is a valid value.
        check: ``check(value, label)`` returns the value or raises ``ValueError`` naming
            ``label``; adapters call it with their own spelling of the option (``--maxsup-alpha``).
    """

    name: str
    type: type
    default: Any
    help: str
    valid: str = ""
    choices: tuple[str, ...] = ()
    nullable: bool = False
    check: Callable[[Any, str], Any] | None = None


@dataclass(frozen=True)
class FairseqNames:
    """How a method appears as a fairseq criterion.

    Args:
        criterion: the criterion name (``--criterion``).
        prefix: prefix of its options (``maxsup_`` -> ``--maxsup-alpha``).
        rename: core option name -> fairseq field, where fairseq has its own name
            (``alpha`` -> ``label_smoothing``).
        defaults: fairseq defaults that differ from the core ones.
        schedule: offer ``alpha_end``, ``schedule_unit`` (epoch/update) and ``schedule_horizon``.
        penalty_log: log the summed penalty per token (base 2) under this name.
        alias_of: the method whose criterion this one uses, with ``defaults`` as fixed values
            (``none`` is ``ls_cross_entropy --label-smoothing 0``); no criterion of its own.
    """

    criterion: str
    prefix: str = ""
    rename: Mapping[str, str] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    schedule: bool = False
    penalty_log: str | None = None
    alias_of: str | None = None

    def field_name(self, option: Option | str) -> str:
        """The config field of a core option (``alpha`` -> ``label_smoothing``)."""
        name = option if isinstance(option, str) else option.name
        return self.rename.get(name, self.prefix + name)

    def command_line(self, alpha: float | None = None) -> list[str]:
        """fairseq-train arguments that select this criterion, with its fixed values (an alias's
        ``defaults``) and ``alpha`` when given: ``--criterion maxsup_cross_entropy --maxsup-alpha 0.1``."""
        values = dict(self.defaults) if self.alias_of else {}
        if alpha is not None:
            values["alpha"] = alpha
        args = ["--criterion", self.criterion]
        for name, value in values.items():
            args += [fairseq_flag(self.field_name(name)), str(value)]
        return args


def fairseq_flag(field_name: str) -> str:
    """The command-line spelling of a fairseq config field: ``maxsup_alpha`` -> ``--maxsup-alpha``."""
    return "--" + field_name.replace("_", "-")


@dataclass(frozen=True)
class Method:
    """One label-regularization method.

    Args:
        name: what users type (``--method maxsup``).
        title: the method's full name.
        formula: the per-position loss, one line.
        paper: key of its paper in :data:`labelreg_nlp.losses.papers.PAPERS`, if any.
        module: the :class:`~labelreg_nlp.losses.base.MethodLoss` subclass that computes it.
        options: its options (core names).
        fixed: core keyword values the method always passes (``none``: ``alpha=0``).
        prefix: prefix of its options in the flat namespace (``ols_``).
        scheduled: its ``alpha`` may follow a linear schedule (``alpha_end``, a horizon).
        needs_num_classes: the module is built with K (stateful or learnable methods).
        periodic: it has periods that the adapters end (every epoch or every N updates).
        fairseq: how it appears as a fairseq criterion.
    """

    name: str
    title: str
    formula: str
    paper: str | None
    module: type[MethodLoss]
    options: tuple[Option, ...]
    fairseq: FairseqNames
    fixed: Mapping[str, Any] = field(default_factory=dict)
    prefix: str = ""
    scheduled: bool = False
    needs_num_classes: bool = False
    periodic: bool = False

    def flat_name(self, option: Option) -> str:
        """``alpha`` for the shared :data:`ALPHA`, else ``prefix + name``."""
        return option.name if option is ALPHA else self.prefix + option.name

    def flat_options(self) -> dict[str, Option]:
        """Flat name -> option, its own options only (``alpha_end`` is the schedule's)."""
        return {self.flat_name(o): o for o in self.options}

    def build(self, num_classes: int | None = None, schedule_horizon: int | None = None,
              alpha_end: float | None = None, **options: Any) -> MethodLoss:
        """The method's module with ``options`` (core names) over the defaults.

        Args:
            num_classes: K; required when ``needs_num_classes``.
            schedule_horizon, alpha_end: the alpha schedule of scheduled methods (ignored by others).
            **options: core option values.

        Returns:
            A :class:`~labelreg_nlp.losses.base.MethodLoss`.
        """
        known = {o.name for o in self.options}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"method {self.name!r} has no option {unknown[0]!r} (options: {sorted(known)})")
        kwargs = {**{o.name: o.default for o in self.options}, **options, **self.fixed}
        if self.scheduled:
            kwargs.update(alpha_end=alpha_end, schedule_horizon=schedule_horizon)
        if not self.needs_num_classes:
            return self.module(**kwargs)
        if num_classes is None:
            raise ValueError(f"method {self.name!r} needs num_classes (the size of the label set or vocabulary)")
        return self.module(int(num_classes), **kwargs)


ALPHA = Option("alpha", float, 0.1, "regularization weight: LS smoothing, MaxSup suppression (with alpha_end: "
               "the schedule's start), LS++ and LLS weight of the learned distribution (LS++: 0 < a < 1, "
               "LLS: 0 < a <= 1)", "[0, 1]", check=check_alpha)


def _table_options(symbol: str) -> tuple[Option, ...]:
    """The options of a learned-table method (LS++, LLS)."""
    return (
        Option("rank", int, None, f"factored table {symbol}[y] = u_y V^T of this rank (vocabulary scale; default: "
               f"the full table up to {FULL_MAX_CLASSES} classes, else rank {DEFAULT_RANK})", ">= 1", nullable=True),
        Option("full", bool, False, "force the full table (K x K parameters)"),
    )

CONVENTION = Option("convention", str, "uniform", "uniform: target 1-a+a/K, others a/K (torch, HF, the papers); "
                    "fairseq: target 1-a, others a/(K-1) (fairseq's label_smoothed_cross_entropy)",
                    choices=CONVENTIONS)

METHODS: dict[str, Method] = {m.name: m for m in (
    Method(
        "none", "Cross-entropy", "CE(onehot(y), p)", None, LabelSmoothingLoss, (),
        fixed={"alpha": 0.0},
        fairseq=FairseqNames("ls_cross_entropy", rename={"alpha": "label_smoothing"},
                             defaults={"alpha": 0.0}, alias_of="ls"),
    ),
    Method(
        "ls", "Label Smoothing", "(1-a) CE(onehot(y), p) + a CE(u, p)", "rethinking", LabelSmoothingLoss,
        (ALPHA, CONVENTION), scheduled=True,
        fairseq=FairseqNames("ls_cross_entropy", rename={"alpha": "label_smoothing", "convention": "smoothing_convention"},
                             defaults={"alpha": 0.0, "convention": "fairseq"}),
    ),
    Method(
        "maxsup", "Max Suppression", "CE(onehot(y), p) + a (max_k z_k - mean_k z_k)", "maxsup", MaxSupLoss,
        (ALPHA,), scheduled=True,
        fairseq=FairseqNames("maxsup_cross_entropy", prefix="maxsup_", schedule=True, penalty_log="maxsup"),
    ),
    Method(
        "ols", "Online Label Smoothing", "w_hard CE(onehot(y), p) + w_soft CE(S[y], p)", "ols", OnlineLabelSmoothing,
        (
            Option("hard_weight", float, 0.5, "weight of CE against the hard label (paper: 0.5)", ">= 0"),
            Option("soft_weight", float, 0.5, "weight of CE against the online soft label (paper: 0.5)", ">= 0"),
            Option("init", str, "uniform", "soft labels of the first period: uniform (paper), ls (label "
                   "smoothing with init_alpha), zeros (official code: no soft term at first)", choices=INITS),
            Option("init_alpha", float, 0.1, "smoothing weight of init 'ls'", "[0, 1]"),
            Option("topk", int, None, f"sparse soft labels keeping the top-k classes per row (default: dense up "
                   f"to {DENSE_MAX_CLASSES} classes, else k = {DEFAULT_TOPK})", "[1, K]", nullable=True),
            Option("dense", bool, False, "force dense K x K soft labels"),
            Option("unseen", str, "uniform", "soft label of a class with no correct prediction in the period: "
                   "uniform (paper), zeros (the MaxSup authors' OLS baseline)", choices=UNSEEN),
            Option("freeze_above", float, None, "keep a class's soft label once its largest entry reaches this "
                   "value (official fine-grained script: 0.88; default: always update)", "[0, 1]", nullable=True),
        ),
        prefix="ols_", needs_num_classes=True, periodic=True,
        fairseq=FairseqNames("ols_cross_entropy", prefix="ols_", penalty_log="ols_soft"),
    ),
    Method(
        "lspp", "Label Smoothing++", "(CE(sg(t), p) + CE(sg(p), t)) / 2, t = (1-a) onehot(y) + a c_y, c_y learned",
        "lspp", LabelSmoothingPlusPlus, (ALPHA, *_table_options("C")), prefix="lspp_", needs_num_classes=True,
        fairseq=FairseqNames("lspp_cross_entropy", prefix="lspp_", penalty_log="lspp_reverse"),
    ),
    Method(
        "lls", "Learnable Label Smoothing", "(KL(t, p) + KL(p, t)) / 2, t = (1-a) onehot(y) + a softmax(Q[y])",
        "lls", LearnableLabelSmoothing, (ALPHA, *_table_options("Q")), prefix="lls_", needs_num_classes=True,
        fairseq=FairseqNames("lls_cross_entropy", prefix="lls_", penalty_log="lls_reverse"),
    ),
)}


def get_method(name: str) -> Method:
    """The registered method called ``name``, or ``ValueError`` listing the choices.

    Example:
        >>> get_method("maxsup").title
        'Max Suppression'
    """
    if name not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}, got {name!r}")
    return METHODS[name]


def flat_options() -> dict[str, Option]:
    """Every method's options under their flat names (``alpha``, ``convention``, ``ols_topk``, ...),
    in registry order; what :class:`TokenLoss` and the Hugging Face arguments accept."""
    out: dict[str, Option] = {}
    for method in METHODS.values():
        out.update(method.flat_options())
    return out


def check_choices(values: Mapping[str, Any]) -> None:
    """``ValueError`` naming the first flat option in ``values`` whose value is not one of its choices.

    Example:
        >>> check_choices({"ols_init": "flat"})
        Traceback (most recent call last):
        ...
        ValueError: ols_init must be one of ('uniform', 'ls', 'zeros'), got 'flat'
    """
    for flat, option in flat_options().items():
        if option.choices and flat in values and values[flat] not in option.choices:
            raise ValueError(f"{flat} must be one of {option.choices}, got {values[flat]!r}")


def methods_table() -> str:
    """A markdown table of the methods with their options and defaults (the README's table).

    Example:
        >>> print(methods_table().splitlines()[0])
        | method | name | loss per position | options (flat name = default) | paper |
    """
    from .papers import PAPERS

    lines = ["| method | name | loss per position | options (flat name = default) | paper |",
             "|---|---|---|---|---|"]
    for m in METHODS.values():
        opts = [f"`{flat}={option.default!r}`" for flat, option in m.flat_options().items()]
        if m.scheduled:
            opts.append("`alpha_end=None`")
        paper = PAPERS[m.paper].short if m.paper else "-"
        lines.append(f"| `{m.name}` | {m.title} | `{m.formula}` | {', '.join(opts) or '-'} | {paper} |")
    return "\n".join(lines)
