"""Look at learned soft labels: LS++ and LLS tables, OLS soft labels, from a checkpoint.

``labelreg-nlp neighbours CHECKPOINT`` reads a fairseq checkpoint (``checkpoint_last.pt``: the
criterion's state) or a Hugging Face checkpoint directory (``labelreg_state.pt``), names the
classes (a fairseq dictionary, the model's ``id2label``, a tokenizer, or given names), and prints
the top neighbours of each class: the classes its learned distribution puts the most mass on,
itself left out. ``--heatmap`` draws the learned distributions among the first classes as a PNG.

For a translation vocabulary the first classes are the most frequent tokens (fairseq
dictionaries are sorted by count), whose neighbours are the interesting part.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..integrations.state_file import STATE_FILE
from ..losses.base import MethodLoss
from ..losses.learned import LearnedTargetLoss
from ..losses.online import OnlineLabelSmoothing
from ..losses.registry import METHODS
from ..metrics.prediction_files import first_line

FAIRSEQ_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")


@dataclass
class LearnedLabels:
    """A method module holding learned soft labels, with the names of its classes."""

    method: str
    module: MethodLoss
    names: list[str]
    first_class: int = 0  # classes before this one are special symbols (fairseq's <s>, <pad>, ...)

    @property
    def num_classes(self) -> int:
        return int(self.module.num_classes)

    def rows(self, classes: Tensor) -> Tensor:
        """The learned distributions of ``classes`` ``[n, K]``: LS++ ``c_y``, LLS ``softmax(Q_y)``, OLS ``S[y]``."""
        if isinstance(self.module, LearnedTargetLoss):
            return self.module.learned_distribution(classes)
        if isinstance(self.module, OnlineLabelSmoothing):
            return self.module.soft_labels()[classes]
        raise ValueError(f"method {self.method!r} learns no soft labels")


def module_from_state(method: str, state: dict[str, Tensor]) -> MethodLoss:
    """Rebuild the module of ``method`` (``lspp``, ``lls``, ``ols``) from its state dict (keys
    ``<method>.…``, as a fairseq criterion or a ``TokenLoss`` saves them)."""
    prefix = method + "."
    own = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
    try:
        return _build_from_state(method, own, state)
    except (KeyError, RuntimeError, TypeError, AttributeError) as error:
        raise ValueError(f"the {method} state is incomplete or of another version ({type(error).__name__}: "
                         f"{first_line(error)})") from None


def _build_from_state(method: str, own: dict[str, Tensor], state: dict[str, Tensor]) -> MethodLoss:
    spec = METHODS[method]
    if method == "ols":
        k, topk = (int(v) for v in own["shape_info"].tolist())
        module = spec.build(spec.options(dense=topk == 0, topk=topk or None), k)
    elif "table.weight" in own:
        module = spec.build(spec.options(full=True), int(own["table.weight"].shape[0]))
    elif "table.u" in own:
        k, rank = own["table.u"].shape
        module = spec.build(spec.options(rank=int(rank)), int(k))
    else:
        raise ValueError(f"no learned {method} state among {sorted(state)[:8]}")
    module.load_state_dict(own)
    return module


def _method_of(state: dict[str, Tensor]) -> str:
    for method in ("lspp", "lls", "ols"):
        if any(key.startswith(method + ".") for key in state):
            return method
    raise ValueError("the checkpoint holds no LS++, LLS or OLS state (was it trained with one of them?)")


def fairseq_dictionary(path: str | os.PathLike) -> list[str]:
    """The symbols of a fairseq ``dict.txt``, in index order (the 4 specials first)."""
    names = list(FAIRSEQ_SPECIALS)
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.rstrip("\n").removesuffix(" #fairseq:overwrite")
            if line.strip():
                names.append(line.rsplit(" ", 1)[0])  # "symbol count"
    return names


def _hf_names(directory: Path, k: int) -> list[str] | None:
    config = directory / "config.json"
    if config.is_file():
        id2label = json.loads(config.read_text()).get("id2label") or {}
        if len(id2label) == k:
            return [id2label[str(i)] for i in range(k)]
    if any((directory / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(directory)
        if len(tokenizer) >= k:
            return tokenizer.convert_ids_to_tokens(list(range(k)))
    return None


def _target_dictionary(cfg) -> Path | None:
    """The target ``dict.<lang>.txt`` of a fairseq checkpoint's data directory, if it is still there."""
    task = cfg.get("task") if hasattr(cfg, "get") else None
    if task is None or not task.get("data"):
        return None
    data = Path(str(task.get("data")).split(":")[0])
    target = task.get("target_lang")
    if target is None and data.is_dir():
        try:  # translation: the language pair is in the binarized file names, as fairseq infers it
            from fairseq.data.data_utils import infer_language_pair

            target = infer_language_pair(str(data))[1]
        except ImportError:
            target = None
    candidate = data / (f"dict.{target}.txt" if target else "dict.txt")
    return candidate if candidate.is_file() else None


def load_learned_labels(path: str | os.PathLike, names: list[str] | None = None,
                        dictionary: str | os.PathLike | None = None) -> LearnedLabels:
    """Read the learned soft labels of a checkpoint.

    Args:
        path: a fairseq checkpoint file, a Hugging Face checkpoint directory, or a
            ``labelreg_state.pt``.
        names: class names, overriding any found.
        dictionary: a fairseq ``dict.txt`` (default: the target dictionary the checkpoint's
            data directory holds, when it is still there).

    Returns:
        :class:`LearnedLabels`; classes without a name are called by their index.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    directory = path if path.is_dir() else path.parent
    file = path / STATE_FILE if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"{path} holds no {STATE_FILE}: not a checkpoint of a learned-label method")
    saved = _read_checkpoint(file)
    first = 0
    if "criterion" in saved:  # fairseq
        state = saved["criterion"] or {}
        if not isinstance(state, dict):
            raise ValueError(f"{file}: its criterion state is a {type(state).__name__}, not a state dict")
        method = _method_of(state)
        module = module_from_state(method, state)
        if dictionary is None and names is None:
            dictionary = _target_dictionary(saved.get("cfg"))
        if dictionary is not None and names is None:
            names = fairseq_dictionary(dictionary)
        first = len(FAIRSEQ_SPECIALS) if names and names[:4] == list(FAIRSEQ_SPECIALS) else 0
    else:  # Hugging Face: {"method", "progress", "state"}
        if not isinstance(saved.get("state"), dict) or saved.get("method") not in METHODS:
            raise ValueError(f"{file} is neither a fairseq checkpoint (no 'criterion') nor a {STATE_FILE} "
                             f"(no 'method' and 'state'); it holds {', '.join(map(str, list(saved)[:6])) or 'nothing'}")
        method, state = saved["method"], saved["state"]
        module = module_from_state(method, state)
        if names is None:
            names = _hf_names(directory, int(module.num_classes))
    k = int(module.num_classes)
    if names is not None and len(names) != k:
        raise ValueError(f"{len(names)} class names for a table of {k} classes")
    return LearnedLabels(method, module, list(names) if names else [str(i) for i in range(k)], first)


def _read_checkpoint(file: Path) -> dict:
    """A fairseq checkpoint or a ``labelreg_state.pt`` as a dict; any other file is one ``ValueError``.

    fairseq checkpoints hold their configuration as Python objects, so this reads them as
    fairseq-generate does (full unpickling): give it checkpoints you trust."""

    try:
        saved = torch.load(file, map_location="cpu", weights_only=False)
    except Exception as error:  # noqa: BLE001 - torch.load fails in many ways on a foreign file; each is one line
        raise ValueError(f"{file} is not a checkpoint torch can read (truncated, or another kind of file: "
                         f"{first_line(error)})") from None
    if not isinstance(saved, dict):
        raise ValueError(f"{file} holds a {type(saved).__name__}, not a checkpoint (a dict with the criterion's "
                         f"or the trainer's state)")
    return saved


def neighbour_table(labels: LearnedLabels, classes: list[int], top: int = 5) -> str:
    """A markdown table: each class, its own mass, and its ``top`` neighbours with their mass.

    The mass is that of the learned distribution (LS++: over the other classes, so its own is 0;
    the training target mixes it with the one-hot label by alpha).
    """
    rows = labels.rows(torch.tensor(classes))
    lines = [f"| class | own mass | top-{top} neighbours (mass) |", "|---|---|---|"]
    for c, row in zip(classes, rows):
        own = float(row[c])
        row = row.clone()
        row[c] = -1.0
        values, index = row.topk(min(top, row.numel() - 1))
        cells = ", ".join(f"`{labels.names[int(i)]}` {float(v):.3g}" for v, i in zip(values, index))
        lines.append(f"| `{labels.names[c]}` | {own:.3g} | {cells} |")
    return "\n".join(lines)


def save_heatmap(labels: LearnedLabels, classes: list[int], path: str | os.PathLike) -> None:
    """Draw the learned distributions among ``classes`` (rows: class, columns: mass on each of
    ``classes``) as a PNG."""
    from .plotting import pyplot

    plt = pyplot()
    index = torch.tensor(classes)
    matrix = labels.rows(index)[:, index].numpy()
    size = max(4.0, 0.35 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(matrix, cmap="viridis")
    names = [labels.names[c] for c in classes]
    ax.set_xticks(range(len(classes)), names, rotation=90, fontsize=8)
    ax.set_yticks(range(len(classes)), names, fontsize=8)
    ax.set_xlabel("mass on class")
    ax.set_ylabel("learned distribution of class")
    ax.set_title(f"{labels.method}: learned soft labels")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def pick_classes(labels: LearnedLabels, count: int, tokens: list[str] | None = None) -> list[int]:
    """The classes to show: ``tokens`` by name, else the first ``count`` after the special symbols."""
    if tokens:
        where = {name: i for i, name in enumerate(labels.names)}
        missing = [t for t in tokens if t not in where]
        if missing:
            raise ValueError(f"no class named {missing[0]!r} in this checkpoint's {labels.num_classes} classes")
        return [where[t] for t in tokens]
    if count < 1:
        raise ValueError(f"the number of classes to show must be >= 1, got {count}")
    return list(range(labels.first_class, min(labels.num_classes, labels.first_class + count)))
