"""What the Hugging Face fine-tuning scripts share: command-line parsing with one-line errors,
sample limits, the results file, and the run's folder (manifest, refusal, resume, stop)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .records import DataError
from .run_dirs import RunDirError, RunManifest, check_outputs_apart, claim_run_dir, mark_run

# TrainingArguments that change the trained model (the others: where and how often to log,
# save or evaluate, hub and reporting options, the folder). A resume must match all of them.
RESULT_TRAINING_ARGS = (
    "learning_rate", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm",
    "num_train_epochs", "max_steps", "lr_scheduler_type", "lr_scheduler_kwargs", "warmup_ratio", "warmup_steps",
    "seed", "data_seed", "per_device_train_batch_size", "gradient_accumulation_steps", "optim", "optim_args",
    "bf16", "fp16", "tf32", "label_smoothing_factor", "group_by_length", "length_column_name", "full_determinism",
    "gradient_checkpointing", "torch_compile", "average_tokens_across_devices", "dataloader_drop_last",
    "use_cpu", "label_names", "remove_unused_columns", "predict_with_generate", "generation_max_length",
    "generation_num_beams",
)
# ScriptArguments fields that decide nothing about the result
NOT_RESULT_SCRIPT_ARGS = ("results_file", "save_predictions")


@dataclass
class RunArguments:
    """What to do with an output folder that holds a run, and where to stop (both scripts)."""

    overwrite: bool = field(default=False, metadata={
        "help": "delete the run in --output_dir and start anew (a folder that holds a run is refused without "
                "--overwrite or --resume_from_checkpoint)"})
    stop_after_steps: int | None = field(default=None, metadata={
        "help": "save a checkpoint and stop after this optimizer step, as an interrupted run would; continue "
                "with --resume_from_checkpoint last"})


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The description as written, and every option's default in its help line."""


def parse_and_run(dataclass_types: tuple[type, ...], defaults: dict[str, Any], run: Callable[..., int],
                  description: str, argv: list[str] | None = None) -> int:
    """Parse ``argv`` into the dataclasses (``--help`` lists every field) with ``defaults`` for
    fields the user leaves out, call ``run(*dataclasses)``. A :class:`DataError` (bad path,
    missing column, model that cannot be loaded) or a ``ValueError`` from the options (an alpha
    outside [0, 1], a negative weight) becomes one line ``error: ...`` and exit status 2."""
    from transformers import HfArgumentParser

    shown = ", ".join(f"--{key} {value}" for key, value in defaults.items())
    parser = HfArgumentParser(dataclass_types, description=f"{description}\nDefaults this script sets (the others "
                              f"are TrainingArguments' own):\n  {shown}", formatter_class=HelpFormatter)
    parser.set_defaults(**defaults)
    try:
        parsed = parser.parse_args_into_dataclasses(args=argv)
        return run(*parsed)
    except (DataError, RunDirError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def limit_splits(splits: dict[str, list], max_train: int | None, max_eval: int | None) -> None:
    """Keep the first ``max_train`` training and ``max_eval`` validation/test examples, in place."""
    if max_train:
        splits["train"] = splits["train"][:max_train]
    if max_eval:
        for name in ("validation", "test"):
            if name in splits:
                splits[name] = splits[name][:max_eval]


def write_results(path: str | Path, results: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def run_manifest(script_name: str, script: Any, labelreg: Any, training: Any) -> RunManifest:
    """The manifest of a fine-tuning run: the script's data and model options, every
    ``LabelRegArguments`` field and the result-changing ``TrainingArguments``."""
    options = {f"script.{k}": v for k, v in asdict(script).items() if k not in NOT_RESULT_SCRIPT_ARGS}
    options.update({f"labelreg.{k}": v for k, v in asdict(labelreg).items()})
    options.update({f"training.{k}": getattr(training, k) for k in RESULT_TRAINING_ARGS if hasattr(training, k)})
    options["method"], options["seed"] = labelreg.method, training.seed
    return RunManifest(script_name, options)


def claim_output_dir(script_name: str, script: Any, labelreg: Any, training: Any, run: RunArguments,
                     inputs: dict[str, str | None]) -> str | bool | None:
    """Claim ``--output_dir`` for this run (see :func:`~labelreg_nlp.experiments.run_dirs.claim_run_dir`)
    and return what ``trainer.train(resume_from_checkpoint=...)`` takes.

    ``--resume_from_checkpoint`` as in Hugging Face's example scripts: a checkpoint folder, or
    ``last`` / ``True`` for the newest ``checkpoint-*`` in ``--output_dir``. Resuming checks every
    result-changing option against the run's manifest (and against the manifest of the run a
    checkpoint folder elsewhere belongs to); a missing checkpoint is one line naming it.
    """
    from transformers.trainer_utils import get_last_checkpoint

    if run.stop_after_steps is not None and run.stop_after_steps < 1:
        raise ValueError(f"--stop_after_steps must be >= 1, got {run.stop_after_steps}")
    out = Path(training.output_dir)
    check_outputs_apart({"--output_dir": out, "--results_file": script.results_file}, inputs)
    wanted = training.resume_from_checkpoint
    latest = isinstance(wanted, str) and wanted.strip().lower() in ("last", "true") or wanted is True
    manifest = run_manifest(script_name, script, labelreg, training)
    if wanted and not latest:
        checkpoint = Path(wanted)
        if not checkpoint.is_dir():
            raise RunDirError(f"--resume_from_checkpoint {wanted}: no such checkpoint folder")
        origin = RunManifest.read(checkpoint.parent)
        if origin is not None and checkpoint.parent.resolve() != out.resolve():
            differ = manifest.differences(origin)
            if differ:
                raise RunDirError(f"{checkpoint} belongs to a run with other options: {'; '.join(differ)}")
    claimed = claim_run_dir(out, manifest, resume=bool(wanted), overwrite=run.overwrite, flag="--output_dir",
                            resume_flag="--resume_from_checkpoint", overwrite_flag="--overwrite")
    if wanted and not latest:
        return str(wanted)
    if claimed == "new":
        if wanted:
            print(f"--resume_from_checkpoint {wanted}: {out} holds no run yet; starting one")
        return None
    if get_last_checkpoint(str(out)) is None:
        raise RunDirError(f"--resume_from_checkpoint {wanted}: {out} holds no checkpoint-* folder to continue from "
                          "(the run saved none: --save_strategy steps or epoch saves them); --overwrite starts anew")
    return True


def train_or_stop(trainer: Any, resume: str | bool | None, run: RunArguments) -> Any | None:
    """``trainer.train(resume_from_checkpoint=resume)``, stopping after ``--stop_after_steps``
    (with a checkpoint) when asked.

    Returns:
        The ``TrainOutput``, with the final model and the method's state saved in
        ``--output_dir``; ``None`` when it stopped early (then the manifest says so and a line
        tells how to continue).
    """
    from transformers import TrainerCallback

    step = run.stop_after_steps

    class StopAfterSteps(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if step is not None and step <= state.global_step < state.max_steps:
                control.should_save = True
                control.should_training_stop = True
            return control

    trainer.add_callback(StopAfterSteps())
    result = trainer.train(resume_from_checkpoint=resume)
    state = trainer.state
    if step is not None and state.global_step < state.max_steps:
        mark_run(trainer.args.output_dir, "stopped")
        print(f"stopped after step {state.global_step} of {state.max_steps} (--stop_after_steps); continue with "
              f"--resume_from_checkpoint last")
        return None
    trainer.save_model()  # the final model and the method's state (labelreg_state.pt)
    return result


def finish(output_dir: str | Path) -> None:
    """Record in the run's manifest that it finished (results written)."""
    mark_run(output_dir, "finished")
