"""What ``labelreg-nlp evaluate`` does: find each run's saved predictions, evaluate every
confidence score (pNorm's p picked on the validation split), print the tables and draw the PNGs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..metrics.confidence import P_GRID
from ..metrics.evaluation import ConfidenceReport, evaluate_confidence, format_report
from ..metrics.prediction_files import SUFFIXES
from ..metrics.scored import ScoredPredictions

VALIDATION_NAMES = ("validation", "valid")


@dataclass
class RunFiles:
    name: str
    test: Path
    validation: Path | None


def _find(folder: Path, stems: Sequence[str]) -> Path | None:
    for stem in stems:
        for suffix in SUFFIXES:
            if (folder / f"{stem}{suffix}").is_file():
                return folder / f"{stem}{suffix}"
    return None


def resolve_run(spec: str, split: str = "test") -> RunFiles:
    """``[NAME=]PATH`` -> the files of one run. PATH is a prediction file (p is then picked on it),
    or a folder holding ``SPLIT.npz|.pt`` and ``validation|valid.npz|.pt``, directly or in its
    ``predictions/`` subfolder (where the fine-tuning scripts write them)."""
    name, _, path_text = spec.partition("=") if "=" in spec else ("", "", spec)
    path = Path(path_text)
    if path.is_file():
        return RunFiles(name or path.stem, path, None)
    if not path.is_dir():
        raise FileNotFoundError(f"no prediction file or folder {path_text!r}")
    folder = path / "predictions" if (path / "predictions").is_dir() and _find(path, [split]) is None else path
    test = _find(folder, [split])
    if test is None:
        raise FileNotFoundError(f"{str(folder)!r} holds no {split}.npz or {split}.pt")
    default = path.resolve().name if path.resolve().name != "predictions" else path.resolve().parent.name
    return RunFiles(name or default, test, _find(folder, [s for s in VALIDATION_NAMES if s != split]))


@dataclass
class EvaluatedRun:
    name: str
    test: ScoredPredictions
    report: ConfidenceReport


def evaluate_runs(specs: Sequence[str], split: str = "test", p_grid: Sequence[float] = P_GRID, risk: float = 0.05,
                  coverage: float = 0.8, num_bins: int = 15) -> list[EvaluatedRun]:
    """Load and evaluate every run of ``specs`` (see :func:`resolve_run`)."""
    runs = []
    for spec in specs:
        files = resolve_run(spec, split)
        test = ScoredPredictions.load(files.test, p_grid)
        validation = ScoredPredictions.load(files.validation, p_grid) if files.validation else None
        runs.append(EvaluatedRun(files.name, test, evaluate_confidence(test, validation, risk, coverage, num_bins)))
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise ValueError(f"two runs are named alike ({', '.join(names)}): name them with NAME=PATH")
    return runs


def summary_table(runs: Sequence[EvaluatedRun]) -> str:
    """One row per run: accuracy, NLL, ECE and AURC with the MSP and with pNorm."""
    lines = ["| run | n | accuracy | NLL | ECE | AURC MSP | AURC pNorm | pNorm p |", "|---|---|---|---|---|---|---|---|"]
    for run in runs:
        r = run.report
        lines.append(f"| {run.name} | {r.n} | {r.accuracy:.4f} | {r.nll:.4f} | {r.ece:.4f} | {r.row('msp').aurc:.4f} "
                     f"| {r.row('pnorm').aurc:.4f} | {r.pnorm.label} |")
    return "\n".join(lines)


def report_runs(runs: Sequence[EvaluatedRun], plots: str | Path | None = None, json_path: str | Path | None = None,
                num_bins: int = 15) -> str:
    """The printed report (a table per run, then the summary), with the PNGs and JSON written."""
    text = "\n\n".join([*(format_report(run.name, run.report) for run in runs), "### summary", summary_table(runs)])
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps({run.name: run.report.as_dict() for run in runs}, indent=2) + "\n")
    if plots:
        from .confidence_plots import plot_confidence_histogram, plot_reliability, plot_risk_coverage

        folder = Path(plots)
        written = [
            plot_risk_coverage({run.name: (run.test, run.report.pnorm) for run in runs}, folder / "risk_coverage.png"),
            plot_reliability({run.name: run.test for run in runs}, folder / "reliability.png", num_bins),
            plot_confidence_histogram({run.name: run.test for run in runs}, folder / "confidence_hist.png"),
        ]
        text += "\n\nfigures: " + ", ".join(str(p) for p in written)
    return text
