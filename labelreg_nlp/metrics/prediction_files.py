"""Saved predictions for ``labelreg-nlp evaluate``: one file per split, ``.npz`` or ``.pt``.

Two layouts, told apart by their keys:

- logits: ``logits`` ``[N, K]`` float and ``labels`` ``[N]`` int (what a classifier saves; rows
  whose label is ``ignore_index`` = -100 are dropped on load);
- token scores: what a large-vocabulary model saves instead of ``[N, V]`` logits, every
  confidence score already reduced per position (see :func:`token_scores`): ``labels``,
  ``predictions``, ``target_log_prob``, ``msp``, ``max_logit``, ``neg_entropy``, ``margin``,
  ``pnorm`` ``[P, N]`` and ``pnorm_p`` ``[P]``.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

SUFFIXES = (".npz", ".pt")
IGNORE_INDEX = -100


def _check_suffix(path: Path) -> None:
    if path.suffix not in SUFFIXES:
        raise ValueError(f"prediction files end in .npz or .pt, got {str(path)!r}")


def save_arrays(path: str | Path, arrays: dict[str, Tensor]) -> Path:
    """Write named tensors to ``path`` (``.npz`` via numpy, ``.pt`` via ``torch.save``).

    Args:
        path: the file; its parent folder is created.
        arrays: name -> tensor (moved to the CPU).

    Returns:
        The path written.
    """
    path = Path(path)
    _check_suffix(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cpu = {name: value.detach().cpu() for name, value in arrays.items()}
    if path.suffix == ".pt":
        torch.save(cpu, path)
    else:
        import numpy as np

        np.savez(path, **{name: value.numpy() for name, value in cpu.items()})
    return path


def save_logits(path: str | Path, logits: Tensor, labels: Tensor) -> Path:
    """Save a classifier's ``[N, K]`` logits and ``[N]`` labels for ``labelreg-nlp evaluate``.

    Args:
        path: ``.npz`` or ``.pt`` file.
        logits: ``[N, K]``; stored as float32.
        labels: ``[N]`` class indices (-100 marks rows to skip).

    Returns:
        The path written.

    Example:
        >>> import tempfile, torch
        >>> path = save_logits(tempfile.mkdtemp() + "/test.npz", torch.zeros(3, 2), torch.tensor([0, 1, 1]))
        >>> path.name
        'test.npz'
    """
    logits, labels = torch.as_tensor(logits), torch.as_tensor(labels)
    if logits.dim() != 2 or labels.dim() != 1 or logits.size(0) != labels.size(0):
        raise ValueError(f"expected logits [N, K] and labels [N], got {tuple(logits.shape)} and {tuple(labels.shape)}")
    return save_arrays(path, {"logits": logits.float(), "labels": labels.long()})


def read_torch_file(path: str | Path, what: str, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with every failure as one ``ValueError`` naming the
    file and what was expected: a missing file, a truncated or foreign one, one that needs
    unsafe unpickling. Never falls back to loading unsafely.

    Args:
        path: the file.
        what: what it should be, for the message (``"a prediction file"``).
        map_location: as ``torch.load``'s.

    Returns:
        What ``torch.load`` returns.

    Example:
        >>> import tempfile
        >>> bad = Path(tempfile.mkdtemp()) / "x.pt"
        >>> _ = bad.write_bytes(b"not a checkpoint")
        >>> read_torch_file(bad, "a checkpoint")
        Traceback (most recent call last):
        ...
        ValueError: .../x.pt is not a checkpoint: torch cannot read it (a truncated or foreign file: ...)
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not {what}")
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch.load fails in many ways on a foreign file; each is one line
        unsafe = [line.strip() for line in str(error).splitlines() if "Unsupported global" in line]
        if isinstance(error, pickle.UnpicklingError) and unsafe:
            found = unsafe[0].split(" was not")[0].replace("WeightsUnpickler error: ", "")
            raise ValueError(f"{path} is not {what}: it holds objects that only unsafe unpickling could load "
                             f"({found[:160]})") from None
        raise ValueError(f"{path} is not {what}: torch cannot read it (a truncated or foreign file: "
                         f"{first_line(error)})") from None


def first_line(error: BaseException) -> str:
    """What an exception says, for a one-line message: its first line up to the first sentence's
    end, at most 160 characters (its type when it says nothing)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0].split(". ")[0][:160]


def load_arrays(path: str | Path) -> dict[str, Tensor]:
    """Read a file written by :func:`save_arrays` back as tensors.

    Every failure is one error naming the file: ``FileNotFoundError`` for a missing file,
    ``ValueError`` for a truncated, foreign or pickled one (never loaded unsafely).

    Args:
        path: a ``.npz`` or ``.pt`` file.

    Returns:
        name -> tensor.
    """
    path = Path(path)
    _check_suffix(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a prediction file")
    if not path.is_file():
        raise FileNotFoundError(f"no prediction file {str(path)!r}")
    if path.suffix == ".pt":
        loaded = read_torch_file(path, "a prediction file (.pt of named tensors)")
        if not isinstance(loaded, dict):
            raise ValueError(f"{str(path)!r} holds a {type(loaded).__name__}, not a dict of named tensors")
        try:
            return {str(k): torch.as_tensor(v) for k, v in loaded.items()}
        except (TypeError, ValueError, RuntimeError) as error:
            raise ValueError(f"{path}: an entry is not an array ({error})") from None
    arrays = read_npz(path)
    try:
        return {name: torch.from_numpy(value) for name, value in arrays.items()}
    except TypeError as error:
        raise ValueError(f"{path}: an array is not numeric ({error})") from None


def read_npz(path: str | Path) -> dict[str, Any]:
    """The named numpy arrays of an ``.npz`` file; every failure is one ``ValueError`` naming the
    file: not a zip archive, truncated, a single ``.npy`` array, arrays of Python objects (never
    unpickled).

    Args:
        path: the file.

    Returns:
        name -> ``numpy.ndarray`` (copies; the file is closed).
    """
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file {str(path)!r}")
    with path.open("rb") as handle:
        if handle.read(4) != b"PK\x03\x04":
            raise ValueError(f"{path} is not a .npz archive (no zip header: another format, or an empty file)")
    try:
        data = np.load(path, allow_pickle=False)
        try:
            return {name: data[name].copy() for name in data.files}
        finally:
            data.close()
    except ValueError as error:
        if "pickle" in str(error).lower():
            raise ValueError(f"{path}: holds Python objects (arrays of dtype object), which are not read") from None
        raise ValueError(f"{path} is not a readable .npz: {str(error).splitlines()[0][:160]}") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a readable .npz (truncated or damaged: {first_line(error)})") from None
