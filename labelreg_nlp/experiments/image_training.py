"""What ``scripts/train_image_classifier.py`` runs: train a small image classifier with a
registry method, then report accuracy, NLL, ECE, AURC and feature diagnostics.

Every random draw comes from generators seeded by ``(seed, epoch)`` (batch order, Mixup/CutMix),
so a run resumed from its checkpoint after any epoch ends with the same weights as one that was
not interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..analysis.plotting import pyplot
from ..integrations.vision import ClassificationLoss
from ..losses.base import ScheduledAlphaLoss
from ..losses.options import SHARED_OPTIONS
from ..losses.registry import METHODS, flat_options, get_method
from ..metrics import ScoredPredictions, evaluate_confidence, save_logits
from ..metrics.features import class_separation, linear_probe_accuracy, pca_2d
from ..metrics.prediction_files import read_torch_file
from .image_data import ImageData, load_image_data
from .mixup import MixConfig, mix_batch
from .run_dirs import RunManifest, check_outputs_apart, claim_run_dir, mark_run
from .vision_models import MODELS, build_model

CHECKPOINT = "checkpoint.pt"
SCRIPT = "train_image_classifier"
# options that change nothing in the trained model or its numbers: left out of the run manifest
NOT_RESULT_OPTIONS = ("output_dir", "resume", "overwrite", "stop_after", "progress", "device", "plot_classes")


@dataclass
class ImageRunConfig:
    """Options of one run (the script's flags, ``-`` for ``_``)."""

    data: str = "fashion-mnist"
    data_dir: str | None = None
    output_dir: str = "runs/image"
    model: str = "resnet"
    width: int = 16
    method: str = "ls"
    alpha: float = 0.1
    alpha_end: float | None = None
    method_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.05
    weight_decay: float = 5e-4
    seed: int = 0
    val_fraction: float = 0.1
    mixup: float = 0.0
    cutmix: float = 0.0
    mix_prob: float = 1.0
    max_train: int | None = None
    probe_examples: int = 10000
    plot_classes: int = 5
    device: str = "auto"
    resume: bool = False
    overwrite: bool = False
    stop_after: int | None = None
    progress: bool = True

    def manifest(self) -> RunManifest:
        """The run manifest: every option that changes the result (not the folder, the device,
        the progress bar, the figure or where to stop)."""
        options = {k: v for k, v in asdict(self).items() if k not in NOT_RESULT_OPTIONS}
        return RunManifest(SCRIPT, options)


def add_method_arguments(parser: argparse.ArgumentParser) -> None:
    """``--method``, ``--alpha``, ``--alpha-end`` and every method's options from the registry
    (``--ols-hard-weight``, ``--lspp-rank``, ...)."""
    group = parser.add_argument_group("method (labelreg-nlp methods lists them)")
    group.add_argument("--method", default="ls", choices=tuple(METHODS), help="label-regularization method (default: ls)")
    group.add_argument("--alpha", type=float, default=0.1, help="the method's weight (default: 0.1)")
    group.add_argument("--alpha-end", type=float, default=None,
                       help="alpha grows linearly from --alpha to this over the epochs (MaxSup: 0.1 -> 0.2)")
    for flat, option in flat_options().items():
        if flat in SHARED_OPTIONS:
            continue
        flag = "--" + flat.replace("_", "-")
        text = f"{option.help} (default: {option.default!r})"
        if option.type is bool:
            group.add_argument(flag, action="store_true", help=text)
        else:
            group.add_argument(flag, type=option.type, default=option.default, choices=option.choices or None, help=text)


def method_options(args: argparse.Namespace) -> dict[str, Any]:
    """The chosen method's flat options whose value differs from the default."""
    spec = get_method(args.method)
    out = {}
    for flat, option in spec.flat_options().items():
        if flat not in SHARED_OPTIONS and getattr(args, flat) != option.default:
            out[flat] = getattr(args, flat)
    return out


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def split_validation(data: ImageData, fraction: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Train and validation rows of the training split, by a permutation with a fixed seed (the
    same validation rows whatever the run's seed)."""
    if not 0 <= fraction < 1:
        raise ValueError(f"--val-fraction must be in [0, 1), got {fraction!r}")
    order = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(1234))
    n_val = int(round(len(order) * fraction))
    val, train = order[:n_val], order[n_val:]
    return data.x_train[train], data.y_train[train], data.x_train[val], data.y_train[val]


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Logits and penultimate features of ``x`` (float32, on the CPU)."""
    model.eval()
    logits, feats = [], []
    for start in range(0, len(x), batch_size):
        f = model.features(x[start:start + batch_size].to(device))
        feats.append(f.float().cpu())
        logits.append(model.head(f).float().cpu())
    return torch.cat(logits), torch.cat(feats)


def _generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 101 + stream)


@dataclass
class ImageSplits:
    """The normalized training, validation and test tensors of a run (training ones on the device)."""

    data: ImageData
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor


@dataclass
class ImageTraining:
    """What one run trains: the model, the loss (with its state), the optimizer and its schedule."""

    model: nn.Module
    criterion: ClassificationLoss
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    steps_per_epoch: int

    def checkpoint(self, epoch: int, history: list[dict[str, float]], method: str) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "criterion": self.criterion.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "epoch": epoch, "history": json.dumps(history), "config": {"method": method}}

    def restore(self, state: dict[str, Any]) -> tuple[int, list[dict[str, float]]]:
        """Load a :meth:`checkpoint`; returns the epochs done and the history."""
        self.model.load_state_dict(state["model"])
        self.criterion.load_state_dict(state["criterion"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        return int(state["epoch"]), json.loads(state["history"])


def check_config(cfg: ImageRunConfig) -> None:
    """``ValueError`` naming the first option out of range."""
    if cfg.model not in MODELS:
        raise ValueError(f"--model must be one of {MODELS}, got {cfg.model!r}")
    for name in ("epochs", "batch_size", "width"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)!r}")
    if cfg.stop_after is not None and cfg.stop_after < 1:
        raise ValueError(f"--stop-after must be >= 1, got {cfg.stop_after!r}")


def prepare_splits(cfg: ImageRunConfig, data: ImageData, device: torch.device) -> ImageSplits:
    """Validation rows split off, the training rows cut to ``--max-train``, every split normalized
    by the training rows' per-channel mean and standard deviation."""
    x_train, y_train, x_val, y_val = split_validation(data, cfg.val_fraction)
    if cfg.max_train is not None:
        x_train, y_train = x_train[:cfg.max_train], y_train[:cfg.max_train]
    mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
    std = x_train.std(dim=(0, 2, 3), keepdim=True).clamp(min=1e-6)
    return ImageSplits(data, ((x_train - mean) / std).to(device), y_train.to(device), (x_val - mean) / std, y_val,
                       (data.x_test - mean) / std)


def build_training(cfg: ImageRunConfig, splits: ImageSplits, device: torch.device) -> ImageTraining:
    """The model (initialized from ``--seed``), the loss, SGD with Nesterov momentum (the learned
    tables in a group without weight decay) and a one-cycle schedule over every step."""
    data = splits.data
    channels, height, _ = data.image_shape
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, channels, data.num_classes, height, cfg.width).to(device)
    criterion = ClassificationLoss(cfg.method, cfg.alpha, num_classes=data.num_classes, alpha_end=cfg.alpha_end,
                                   schedule_horizon=cfg.epochs if cfg.alpha_end is not None else None,
                                   **cfg.method_options).to(device)
    groups = [{"params": list(model.parameters())}]
    if list(criterion.parameters()):  # LS++ / LLS tables learn with the model, without weight decay
        groups.append({"params": list(criterion.parameters()), "weight_decay": 0.0})
    optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(splits.y_train) / cfg.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch,
                                                    pct_start=0.15)
    return ImageTraining(model, criterion, optimizer, scheduler, steps_per_epoch)


def train_epoch(cfg: ImageRunConfig, run: ImageTraining, splits: ImageSplits, epoch: int,
                device: torch.device) -> dict[str, float]:
    """One epoch (batches in an order drawn from the seed and the epoch), the loss's period ended,
    then the validation split scored; returns the epoch's history row."""
    model, criterion, mix = run.model, run.criterion, MixConfig(cfg.mixup, cfg.cutmix, cfg.mix_prob)
    model.train()
    criterion.train()
    criterion.set_progress(epoch)
    order = torch.randperm(len(splits.y_train), generator=_generator(cfg.seed, epoch, 0)).to(device)
    mix_gen = _generator(cfg.seed, epoch, 1)
    total, seen = 0.0, 0
    batches: Any = range(run.steps_per_epoch)
    if cfg.progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False)
    for b in batches:
        idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
        images, target = splits.x_train[idx], splits.y_train[idx]
        if mix.active:
            images, target = mix_batch(images, target, splits.data.num_classes, mix, mix_gen)
        loss = criterion(model(images), target)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        run.scheduler.step()
        total += float(loss.detach()) * len(idx)
        seen += len(idx)
        if cfg.progress:
            batches.set_postfix(loss=f"{total / seen:.4f}")
    criterion.end_period()
    row = {"epoch": epoch + 1, "train_loss": total / seen}
    if isinstance(criterion.method_loss, ScheduledAlphaLoss):
        row["alpha"] = criterion.method_loss.alpha  # what this epoch trained with
    if len(splits.y_val):
        val_logits, _ = predict(model, splits.x_val, 512, device)
        row["val_accuracy"] = float((val_logits.argmax(-1) == splits.y_val).float().mean())
        row["val_nll"] = float(nn.functional.cross_entropy(val_logits, splits.y_val))
    return row


def evaluate_run(cfg: ImageRunConfig, run: ImageTraining, splits: ImageSplits, device: torch.device,
                 out: Path) -> dict[str, Any]:
    """Predictions of validation and test saved for ``labelreg-nlp evaluate``; confidence, class
    separation, linear probe and the feature figure; the ``test`` and ``confidence`` parts of
    ``results.json``."""
    data, model = splits.data, run.model
    test_logits, test_feats = predict(model, splits.x_test, 512, device)
    val_logits, _ = predict(model, splits.x_val, 512, device)
    save_logits(out / "predictions" / "test.npz", test_logits, data.y_test)
    if len(splits.y_val):
        save_logits(out / "predictions" / "validation.npz", val_logits, splits.y_val)
    confidence = evaluate_confidence(
        ScoredPredictions.from_logits(test_logits, data.y_test),
        ScoredPredictions.from_logits(val_logits, splits.y_val) if len(splits.y_val) else None)
    n_probe = min(cfg.probe_examples, len(splits.y_train))
    train_feats = predict(model, splits.x_train[:n_probe], 512, device)[1]
    separation = class_separation(test_feats, data.y_test)
    probe = linear_probe_accuracy(train_feats, splits.y_train[:n_probe].cpu(), test_feats, data.y_test)
    figure = plot_feature_projection(test_feats, data.y_test, data.classes, cfg.plot_classes,
                                     out / "features_pca.png", f"{cfg.method} ({data.name})")
    msp, pnorm = confidence.row("msp"), confidence.row("pnorm")
    return {
        "test": {"accuracy": confidence.accuracy, "nll": confidence.nll, "ece": confidence.ece, "aurc": msp.aurc,
                 "eaurc": msp.eaurc, "aurc_pnorm": pnorm.aurc, "pnorm": confidence.pnorm.label,
                 "d_within": separation.d_within, "d_total": separation.d_total, "r2": separation.r2,
                 "linear_probe_accuracy": probe},
        "confidence": confidence.as_dict(), "figure": str(figure) if figure else None,
    }


def train_image_classifier(cfg: ImageRunConfig) -> dict[str, Any]:
    """Train, evaluate, save ``results.json``, predictions and a figure under ``cfg.output_dir``.

    Returns:
        The results (also written to ``results.json``).
    """
    check_config(cfg)
    device = pick_device(cfg.device)
    out = Path(cfg.output_dir)
    data = load_image_data(cfg.data, cfg.data_dir)  # before claiming the folder: bad data leaves nothing behind
    data_path = cfg.data.split(":", 1)[1] if ":" in cfg.data else cfg.data_dir
    check_outputs_apart({"--output-dir": out}, {"--data": data_path})
    claimed = claim_run_dir(out, cfg.manifest(), resume=cfg.resume, overwrite=cfg.overwrite)
    splits = prepare_splits(cfg, data, device)
    run = build_training(cfg, splits, device)
    history: list[dict[str, float]] = []
    start_epoch = 0
    ckpt_path = out / CHECKPOINT
    if claimed == "resume" and ckpt_path.exists():
        # the manifest has checked every option, the method too
        start_epoch, history = run.restore(read_checkpoint(ckpt_path, device))
        print(f"resumed from {ckpt_path} after epoch {start_epoch}")

    started = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        row = train_epoch(cfg, run, splits, epoch, device)
        history.append(row)
        print(" | ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
        torch.save(run.checkpoint(epoch + 1, history, cfg.method), ckpt_path)
        if cfg.stop_after is not None and epoch + 1 >= cfg.stop_after and epoch + 1 < cfg.epochs:
            mark_run(out, "stopped")
            print(f"stopped after epoch {epoch + 1} (--stop-after); continue with --resume")
            return {"stopped_after": epoch + 1, "history": history}
    train_seconds = time.perf_counter() - started

    results = {
        "config": asdict(cfg), "dataset": data.name, "num_classes": data.num_classes,
        "train_examples": len(splits.y_train), "validation_examples": len(splits.y_val),
        "test_examples": len(data.y_test), "device": str(device), "train_seconds": round(train_seconds, 1),
        "history": history, **evaluate_run(cfg, run, splits, device, out),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    mark_run(out, "finished")
    t = results["test"]
    print("\n| method | accuracy | NLL | ECE | AURC | R^2 | linear probe |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {cfg.method} | {t['accuracy']:.4f} | {t['nll']:.4f} | {t['ece']:.4f} | {t['aurc']:.4f} "
          f"| {t['r2']:.4f} | {t['linear_probe_accuracy']:.4f} |")
    print(f"results: {out / 'results.json'}")
    return results


def read_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """The script's own ``checkpoint.pt``; anything else (truncated, another program's) is one
    ``ValueError`` naming the file."""
    state = read_torch_file(path, "an image-classifier checkpoint", map_location=device)
    missing = [k for k in ("model", "criterion", "optimizer", "scheduler", "epoch", "history", "config")
               if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(f"{path}: not a checkpoint of this script (no {', '.join(missing)})")
    return state


def plot_feature_projection(features: Tensor, labels: Tensor, classes: tuple[str, ...], n_classes: int,
                            path: Path, title: str) -> Path | None:
    """A PNG of the first two principal components of the features of the first ``n_classes``
    classes (PCA fitted on those rows); ``None`` when matplotlib is missing or ``n_classes`` is 0."""
    if n_classes <= 0:
        return None
    try:
        plt = pyplot()
    except ImportError:
        print("matplotlib is not installed: no feature figure (pip install matplotlib)")
        return None
    keep = labels < n_classes
    points = pca_2d(features[keep]).numpy()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for k in range(min(n_classes, len(classes))):
        sel = (labels[keep] == k).numpy()
        ax.scatter(points[sel, 0], points[sel, 1], s=3, alpha=0.5, label=classes[k])
    ax.set_title(f"penultimate features, PCA: {title}")
    ax.legend(markerscale=4, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
