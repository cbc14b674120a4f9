"""What every method's options dataclass shares: how a field carries its help, and how adapters
read the fields.

Each method declares its options once, as a dataclass beside its loss
(:class:`~labelreg_nlp.losses.maxsup.MaxSupOptions`, ...): the fields with their defaults, a
``validate(label)`` that checks them, and ``build(num_classes, schedule_horizon)`` that returns the
loss module. Adapters read the fields through :func:`option_fields` to offer them as flags.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Literal

#: options spelled the same by every method that has them (``--alpha``, not ``--maxsup-alpha``)
SHARED_OPTIONS = ("alpha", "alpha_end")

Label = Callable[[str], str]


def same_name(name: str) -> str:
    """The default ``label`` of ``validate``: errors name the field as it is spelled."""
    return name


def option(default: Any, help: str, *, valid: str = "") -> Any:
    """A dataclass field with its help line and accepted range, as ``--help`` and the docs print them.

    Args:
        default: the default value (``None`` for "chosen automatically" on ``X | None`` fields).
        help: one line for ``--help`` and the docs.
        valid: the accepted range as the docs print it (``"[0, 1]"``, ``">= 0"``).

    Returns:
        A ``dataclasses.field``.
    """
    return field(default=default, metadata={"help": help, "valid": valid})


@dataclass(frozen=True)
class OptionField:
    """One option as adapters see it.

    Args:
        name: the field name (the keyword of the options dataclass).
        type: ``float``, ``int``, ``bool`` or ``str``.
        default: its default.
        help: its help line.
        valid: its accepted range (may be empty).
        choices: the accepted strings of a ``Literal`` field, else ``()``.
        nullable: ``None`` is accepted (``X | None`` fields).
    """

    name: str
    type: type
    default: Any
    help: str
    valid: str = ""
    choices: tuple[str, ...] = ()
    nullable: bool = False


@functools.cache  # adapters ask at every logged step (TokenLoss.log_values); a class's fields never change
def option_fields(options_class: type) -> tuple[OptionField, ...]:
    """The fields of an options dataclass, with their types resolved.

    Example:
        >>> from labelreg_nlp.losses.maxsup import MaxSupOptions
        >>> [(f.name, f.type.__name__, f.default, f.nullable) for f in option_fields(MaxSupOptions)]
        [('alpha', 'float', 0.1, False), ('alpha_end', 'float', None, True)]
    """
    hints = typing.get_type_hints(options_class)
    out = []
    for f in fields(options_class):
        kind, nullable = hints[f.name], False
        args = typing.get_args(kind)
        if type(None) in args:
            nullable = True
            kind = next(a for a in args if a is not type(None))
        choices: tuple[str, ...] = ()
        if typing.get_origin(kind) is Literal:
            choices, kind = tuple(typing.get_args(kind)), str
        out.append(OptionField(f.name, kind, f.default, f.metadata.get("help", ""), f.metadata.get("valid", ""),
                               choices, nullable))
    return tuple(out)

