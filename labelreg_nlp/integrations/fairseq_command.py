"""Reaching the criteria from a fairseq command, without importing fairseq (the scripts and
``labelreg-nlp`` build command lines in processes that never train): the ``--user-dir`` folder,
the arguments that select each method, and the environment fairseq needs to load checkpoints.

Example:
    >>> fairseq_command_line("maxsup", alpha=0.1)
    ['--criterion', 'maxsup_cross_entropy', '--maxsup-alpha', '0.1']
    >>> fairseq_command_line("none")
    ['--criterion', 'ls_cross_entropy', '--label-smoothing', '0.0']
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: torch >= 2.6 loads with ``weights_only=True``, which fairseq checkpoints (argparse/omegaconf
#: objects) cannot pass: fairseq-generate and --restore-file would fail
TORCH_LOAD_VARIABLE = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


def user_dir() -> str:
    """Absolute path of the packaged fairseq ``--user-dir`` that registers this package's criteria."""
    return str(Path(__file__).resolve().parent / "fairseq_user_dir" / "labelreg_nlp_criterions")


def allow_fairseq_checkpoints(env: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Let torch load fairseq checkpoints in ``env`` (default: this process's environment), unless
    the user set the variable; called by the entry points that load them (the ``--user-dir``
    plugin, ``labelreg-nlp fairseq-*``, the scripts' fairseq runs), never at a library import.

    Returns:
        ``env``.
    """
    env = os.environ if env is None else env
    env.setdefault(TORCH_LOAD_VARIABLE, "1")
    return env


@dataclass(frozen=True)
class FairseqSelection:
    """A method as fairseq options: its criterion, the config field of its alpha (if any) and
    the values it always passes."""

    criterion: str
    alpha_field: str | None = None
    fixed: dict[str, Any] = field(default_factory=dict)


#: method -> how fairseq-train selects it (the criteria are in ``integrations/fairseq_criteria/``)
FAIRSEQ_SELECTION: dict[str, FairseqSelection] = {
    "none": FairseqSelection("ls_cross_entropy", fixed={"label_smoothing": 0.0}),
    "ls": FairseqSelection("ls_cross_entropy", "label_smoothing"),
    "maxsup": FairseqSelection("maxsup_cross_entropy", "maxsup_alpha"),
    "ols": FairseqSelection("ols_cross_entropy"),
    "lspp": FairseqSelection("lspp_cross_entropy", "lspp_alpha"),
    "lls": FairseqSelection("lls_cross_entropy", "lls_alpha"),
}


def fairseq_flag(field_name: str) -> str:
    """The command-line spelling of a fairseq config field: ``maxsup_alpha`` -> ``--maxsup-alpha``."""
    return "--" + field_name.replace("_", "-")


def fairseq_command_line(method: str, alpha: float | None = None) -> list[str]:
    """``fairseq-train`` arguments that select ``method``, with ``alpha`` where it has one."""
    if method not in FAIRSEQ_SELECTION:
        raise ValueError(f"no fairseq criterion for method {method!r} (choices: {tuple(FAIRSEQ_SELECTION)})")
    selection = FAIRSEQ_SELECTION[method]
    values = dict(selection.fixed)
    if alpha is not None and selection.alpha_field:
        values[selection.alpha_field] = alpha
    args = ["--criterion", selection.criterion]
    for name, value in values.items():
        args += [fairseq_flag(name), str(value)]
    return args
