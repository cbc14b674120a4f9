"""``labelreg-nlp``: reach the fairseq criteria from a pip install.

    labelreg-nlp methods                      the registered methods, their options and papers
    labelreg-nlp user-dir                     print the folder to give fairseq as --user-dir
    labelreg-nlp fairseq-train ARGS...        fairseq-train with that --user-dir added
    labelreg-nlp fairseq-generate ARGS...     same for fairseq-generate (and -interactive,
                                              -validate, -eval-lm)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

FAIRSEQ_COMMANDS = ("fairseq-train", "fairseq-generate", "fairseq-interactive", "fairseq-validate", "fairseq-eval-lm")


def user_dir() -> str:
    """Absolute path of the packaged fairseq ``--user-dir`` that registers this package's criteria."""
    return str(Path(__file__).resolve().parent / "integrations" / "fairseq_user_dir" / "labelreg_nlp_criterions")


def fairseq_argv(command: str, args: list[str]) -> list[str]:
    """The command line to run: ``command`` with ``--user-dir`` added unless the user gave one."""
    sibling = Path(sys.executable).parent / command  # the fairseq installed beside this package
    exe = str(sibling) if sibling.exists() else shutil.which(command) or command
    has_user_dir = any(a == "--user-dir" or a.startswith("--user-dir=") for a in args)
    return [exe, *args] if has_user_dir else [exe, "--user-dir", user_dir(), *args]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in FAIRSEQ_COMMANDS:
        # Pass everything after the command through untouched (argparse would eat --options).
        cmd = fairseq_argv(argv[0], argv[1:])
        env = dict(os.environ)
        env.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
        os.execve(cmd[0], cmd, env)
    parser = argparse.ArgumentParser(
        prog="labelreg-nlp",
        description="List labelreg_nlp's methods, and reach its fairseq criteria from a pip install, "
        "without a clone of the repository.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("methods", help="print the registered methods with their options (a markdown table)")
    sub.add_parser("user-dir", help="print the folder to pass to fairseq as --user-dir")
    for name in FAIRSEQ_COMMANDS:
        sub.add_parser(name, help=f"run {name} with --user-dir set (every argument passed through)")
    args = parser.parse_args(argv)
    if args.command == "methods":
        from .losses.registry import methods_table

        print(methods_table())
    else:
        print(user_dir())
    return 0


if __name__ == "__main__":
    sys.exit(main())
