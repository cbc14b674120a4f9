"""The method registry: each method's name, title, loss module, options dataclass and paper, once.

Everything that offers a choice of method reads it from :data:`METHODS`: :class:`TokenLoss`,
the Hugging Face ``LabelRegArguments``, the image script's flags, the scripts'
``--method``/``--criteria`` choices and the documentation's method table (``labelreg-nlp
methods``). The fairseq criteria are written out, one class per method, in
``labelreg_nlp/integrations/fairseq_criteria/``.

A method's options live in its options dataclass, beside its loss
(:class:`~labelreg_nlp.losses.maxsup.MaxSupOptions`, ...). Option names come in two namespaces:

* the dataclass field (``hard_weight``), what the options dataclass and the loss module take;
* flat (``TokenLoss``, Hugging Face, the image script): ``prefix + field`` (``ols_hard_weight``),
  except :data:`~labelreg_nlp.losses.options.SHARED_OPTIONS` (``alpha``, ``alpha_end``), which
  every method that has them spells alike.

Adding a method: docs/methods.md, "Adding a method".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .base import MethodLoss
from .checks import check_choice
from .lls import LearnableLabelSmoothing, LLSOptions
from .lspp import LabelSmoothingPlusPlus, LSPPOptions
from .maxsup import MaxSupLoss, MaxSupOptions
from .online import OLSOptions, OnlineLabelSmoothing
from .options import SHARED_OPTIONS, Label, OptionField, option_fields
from .smoothing import CrossEntropyOptions, LabelSmoothingLoss, LabelSmoothingOptions


@dataclass(frozen=True)
class Method:
    """One label-regularization method.

    Args:
        name: what users type (``--method maxsup``).
        title: the method's full name.
        formula: the per-position loss, one line.
        paper: key of its paper in :data:`labelreg_nlp.losses.papers.PAPERS`, if any.
        loss: the :class:`~labelreg_nlp.losses.base.MethodLoss` subclass that computes it.
        options: its options dataclass (``validate(label)``, ``build(num_classes, schedule_horizon)``).
        prefix: prefix of its options in the flat namespace (``ols_``).

    Example:
        >>> m = get_method("maxsup")
        >>> m.build(m.options_from_flat({"alpha": 0.2}))
        MaxSupLoss(alpha=0.2)
    """

    name: str
    title: str
    formula: str
    paper: str | None
    loss: type[MethodLoss]
    options: type
    prefix: str = ""

    @property
    def fields(self) -> tuple[OptionField, ...]:
        """The options dataclass's fields (:func:`~labelreg_nlp.losses.options.option_fields`)."""
        return option_fields(self.options)

    @property
    def has_alpha(self) -> bool:
        return any(f.name == "alpha" for f in self.fields)

    @property
    def scheduled(self) -> bool:
        """Its alpha may follow a linear schedule (its options have ``alpha_end``)."""
        return any(f.name == "alpha_end" for f in self.fields)

    @property
    def periodic(self) -> bool:
        """It has periods that the adapters end (every epoch or every N updates)."""
        return self.loss.PERIODIC

    @property
    def needs_num_classes(self) -> bool:
        return self.loss.NEEDS_NUM_CLASSES

    def flat_name(self, name: str) -> str:
        """``alpha``/``alpha_end`` as they are, else ``prefix + name``."""
        return name if name in SHARED_OPTIONS else self.prefix + name

    def flat_options(self) -> dict[str, OptionField]:
        """Flat name -> field, in the dataclass's order."""
        return {self.flat_name(f.name): f for f in self.fields}

    def options_from_flat(self, values: Mapping[str, Any]) -> Any:
        """The options dataclass from flat names (``ols_topk``); other methods' names are left
        alone, missing ones take their defaults.

        Example:
            >>> get_method("ols").options_from_flat({"ols_topk": 8, "alpha": 0.3}).topk
            8
        """
        return self.options(**{f.name: values[flat] for flat, f in self.flat_options().items() if flat in values})

    def build(self, options: Any = None, num_classes: int | None = None, schedule_horizon: int | None = None,
              label: Label | None = None) -> MethodLoss:
        """The method's module: ``options`` (default: the defaults) validated, then built.

        Args:
            options: an instance of :attr:`options`.
            num_classes: K; required by methods with state or a table (``ols``, ``lspp``, ``lls``).
            schedule_horizon: steps of the alpha schedule of methods that have ``alpha_end``.
            label: how errors spell an option (default: its flat name, ``ols_topk``).

        Returns:
            A :class:`~labelreg_nlp.losses.base.MethodLoss`.
        """
        options = self.options() if options is None else options
        if not isinstance(options, self.options):
            raise TypeError(f"method {self.name!r} takes {self.options.__name__}, got {type(options).__name__}")
        options.validate(label or self.flat_name)
        return options.build(num_classes, schedule_horizon)


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("none", "Cross-entropy", "CE(onehot(y), p)", None, LabelSmoothingLoss, CrossEntropyOptions),
    Method("ls", "Label Smoothing", "(1-a) CE(onehot(y), p) + a CE(u, p)", "rethinking", LabelSmoothingLoss,
           LabelSmoothingOptions),
    Method("maxsup", "Max Suppression", "CE(onehot(y), p) + a (max_k z_k - mean_k z_k)", "maxsup", MaxSupLoss,
           MaxSupOptions, prefix="maxsup_"),
    Method("ols", "Online Label Smoothing", "w_hard CE(onehot(y), p) + w_soft CE(S[y], p)", "ols",
           OnlineLabelSmoothing, OLSOptions, prefix="ols_"),
    Method("lspp", "Label Smoothing++",
           "(CE(sg(t), p) + CE(sg(p), t)) / 2, t = (1-a) onehot(y) + a c_y, c_y learned", "lspp",
           LabelSmoothingPlusPlus, LSPPOptions, prefix="lspp_"),
    Method("lls", "Learnable Label Smoothing",
           "(KL(t, p) + KL(p, t)) / 2, t = (1-a) onehot(y) + a softmax(Q[y])", "lls",
           LearnableLabelSmoothing, LLSOptions, prefix="lls_"),
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


def register_method(method: Method) -> Method:
    """Add ``method`` to :data:`METHODS` (a new name only): :class:`TokenLoss`, the Hugging Face
    arguments (through a subclass that adds its fields) and the image script then offer it.

    Returns:
        ``method``.
    """
    if method.name in METHODS:
        raise ValueError(f"a method called {method.name!r} is already registered")
    clashes = sorted(set(method.flat_options()) - set(SHARED_OPTIONS) & set(flat_options()))
    if clashes:
        raise ValueError(f"method {method.name!r}: option {clashes[0]!r} already names another method's option; "
                         f"give it its own prefix")
    METHODS[method.name] = method
    return method


def flat_options() -> dict[str, OptionField]:
    """Every method's options under their flat names (``alpha``, ``convention``, ``ols_topk``, ...),
    in registry order (a shared name: its first method's field); what :class:`TokenLoss` accepts."""
    out: dict[str, OptionField] = {}
    for method in METHODS.values():
        for flat, f in method.flat_options().items():
            out.setdefault(flat, f)
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
        if option.choices and flat in values:
            check_choice(values[flat], option.choices, flat)


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
        paper = PAPERS[m.paper].short if m.paper else "-"
        lines.append(f"| `{m.name}` | {m.title} | `{m.formula}` | {', '.join(opts) or '-'} | {paper} |")
    return "\n".join(lines)
