"""Output folders the scripts own: a run manifest, refusals, resumes that check their options.

Every script writes ``run.json`` (its :class:`RunManifest`) into the folder of a run before it
trains: the script, every option that changes the result (method and its options, data, model,
seed, epochs, ...) and the package version. Starting again into a folder that holds a run then:

* refuses with one line, unless asked otherwise;
* ``resume``: continues the same run, after checking that every result-changing option equals
  the manifest's (the refusal names each one that differs, with both values);
* ``overwrite``: deletes what the folder holds and starts a new run.

A folder that holds files but no manifest is not touched, with or without ``overwrite``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

MANIFEST = "run.json"
Status = Literal["running", "stopped", "finished"]


class RunDirError(ValueError):
    """A folder that cannot be used for a run; the message is one line naming it."""


def package_version() -> str:
    """The installed labelreg-nlp version (``"unknown"`` when run from a clone without install)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("labelreg-nlp")
    except PackageNotFoundError:
        return "unknown"


@dataclass
class RunManifest:
    """What identifies a run: ``options`` holds every option that changes its result.

    Example:
        >>> m = RunManifest("train_image_classifier", {"method": "ls", "alpha": 0.1})
        >>> RunManifest("train_image_classifier", {"method": "ls", "alpha": 0.3}).differences(m)
        ['alpha 0.1 (now 0.3)']
    """

    script: str
    options: dict[str, Any]
    status: Status = "running"
    package_version: str = field(default_factory=package_version)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S"))

    def differences(self, saved: RunManifest) -> list[str]:
        """``"name SAVED (now NOW)"`` for each option whose value differs from ``saved``'s."""
        out = []
        if saved.script != self.script:
            out.append(f"script {saved.script} (now {self.script})")
        now, before = _jsonable(self.options), _jsonable(saved.options)
        for key in sorted(set(now) | set(before)):
            if now.get(key, "<unset>") != before.get(key, "<unset>"):
                out.append(f"{key} {_show(before.get(key, '<unset>'))} (now {_show(now.get(key, '<unset>'))})")
        return out

    def summary(self) -> str:
        """A few options for a message: ``method ls, seed 1``."""
        keys = [k for k in ("method", "criterion", "alpha", "seed", "epochs", "max_epoch") if k in self.options]
        return ", ".join(f"{k} {_show(self.options[k])}" for k in keys) or self.script

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / MANIFEST
        path.parent.mkdir(parents=True, exist_ok=True)
        record = asdict(self)
        record["options"] = _jsonable(self.options)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, folder: str | Path) -> RunManifest | None:
        """The manifest in ``folder``, ``None`` when there is none; an unreadable one is a
        :class:`RunDirError` naming the file."""
        path = Path(folder) / MANIFEST
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            return cls(script=str(record["script"]), options=dict(record["options"]), status=record.get("status", "running"),
                       package_version=str(record.get("package_version", "unknown")), created=str(record.get("created", "")))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise RunDirError(f"{path}: not a run manifest ({type(error).__name__}: {error})") from None


def _jsonable(options: Mapping[str, Any]) -> dict[str, Any]:
    """Options as JSON gives them back (tuples become lists, paths strings), so saved and new compare equal."""
    return json.loads(json.dumps(dict(options), default=str))


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else json.dumps(value)


def claim_run_dir(folder: str | Path, manifest: RunManifest, *, resume: bool = False, overwrite: bool = False,
                  flag: str = "--output-dir", resume_flag: str = "--resume", overwrite_flag: str = "--overwrite",
                  ) -> Literal["new", "resume"]:
    """Make ``folder`` the home of the run ``manifest`` describes, or refuse with one line.

    Args:
        folder: the run's output folder.
        manifest: the run about to start (its options are compared with a saved one's).
        resume: continue the run saved there; every option must match.
        overwrite: delete what the folder holds (a run of this package only) and start anew.
        flag, resume_flag, overwrite_flag: the script's names of the folder and of the two
            switches, for the messages.

    Returns:
        ``"new"`` (nothing to continue: the manifest is written) or ``"resume"``.

    Raises:
        RunDirError: the folder holds a run and neither switch was given; ``resume`` with
            other options; a folder of other files; both switches.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> claim_run_dir(folder, RunManifest("demo", {"seed": 1}))
        'new'
        >>> claim_run_dir(folder, RunManifest("demo", {"seed": 2}), resume=True)
        Traceback (most recent call last):
        ...
        labelreg_nlp.experiments.run_dirs.RunDirError: ... holds a run with other options: seed 1 (now 2); ...
    """
    if resume and overwrite:
        raise RunDirError(f"{resume_flag} and {overwrite_flag} exclude each other: continue the run in {folder}, or replace it")
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{flag} {path} is a file, not a folder")
    saved = RunManifest.read(path)
    if saved is None:
        if path.is_dir() and any(path.iterdir()):
            raise RunDirError(f"{flag} {path} holds files but no {MANIFEST} (not a run of this package): "
                              "choose a new or empty folder")
        manifest.write(path)
        return "new"
    if overwrite:
        for child in path.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        manifest.write(path)
        return "new"
    if not resume:
        raise RunDirError(f"{flag} {path} already holds a {saved.status} run ({saved.summary()}): pass {resume_flag} "
                          f"to continue it, {overwrite_flag} to replace it, or choose another folder")
    differ = manifest.differences(saved)
    if differ:
        raise RunDirError(f"{path} holds a run with other options: {'; '.join(differ)}; {resume_flag} continues only "
                          f"the same run (use another folder, or {overwrite_flag} to replace it)")
    manifest.created = saved.created
    manifest.write(path)
    return "resume"


def release_run_dir(folder: str | Path) -> None:
    """Undo :func:`claim_run_dir` of a run that failed before writing anything: a folder that
    holds only its manifest is removed, so the same command can simply be run again."""
    path = Path(folder)
    if path.is_dir() and [p.name for p in path.iterdir()] == [MANIFEST]:
        (path / MANIFEST).unlink()
        path.rmdir()


def mark_run(folder: str | Path, status: Status) -> None:
    """Record ``status`` (``"stopped"`` after a deliberate stop, ``"finished"``) in the folder's manifest."""
    saved = RunManifest.read(folder)
    if saved is not None:
        saved.status = status
        saved.write(folder)


def check_outputs_apart(outputs: Mapping[str, str | Path | None], inputs: Mapping[str, str | Path | None]) -> None:
    """Refuse, with one line naming both, an output path that is an input path, or an output
    folder that holds an input (``--overwrite`` would delete it).

    Args:
        outputs: flag -> file or folder the script writes (``None`` entries are skipped).
        inputs: flag -> file or folder the script reads (``None`` entries and names that are not
            on disk, such as a hub model or data set name, are skipped).

    Raises:
        RunDirError: naming the two flags and paths.

    Example:
        >>> import tempfile
        >>> data = Path(tempfile.mkdtemp()) / "a.csv"
        >>> _ = data.write_text("text,label")
        >>> check_outputs_apart({"--results_file": data}, {"--dataset": data.parent / "." / "a.csv"})
        Traceback (most recent call last):
        ...
        labelreg_nlp.experiments.run_dirs.RunDirError: --results_file .../a.csv is also the input --dataset .../a.csv: it would be overwritten
    """
    resolved = {name: Path(p).expanduser().resolve() for name, p in inputs.items() if p and Path(p).expanduser().exists()}
    for out_name, out in outputs.items():
        if not out:
            continue
        target = Path(out).expanduser().resolve()
        for in_name, source in resolved.items():
            if target == source:
                raise RunDirError(f"{out_name} {out} is also the input {in_name} {inputs[in_name]}: it would be overwritten")
            if target in source.parents:
                raise RunDirError(f"the input {in_name} {inputs[in_name]} lies inside {out_name} {out}: keep inputs "
                                  "out of a run's folder (--overwrite empties it)")
