"""PNG figures of confidence evaluation (matplotlib): risk-coverage curves of several runs,
reliability diagrams and histograms of confidence for right and wrong predictions."""

from __future__ import annotations

from pathlib import Path

from ..metrics.calibration import reliability_bins
from ..metrics.evaluation import PNormChoice, pnorm_scores
from ..metrics.scored import ScoredPredictions
from ..metrics.selective import risk_coverage_curve
from .plotting import pyplot


def _grid(plt, n: int, width: float = 3.6, height: float = 3.2):
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    fig.clf()
    return path


def plot_risk_coverage(runs: dict[str, tuple[ScoredPredictions, PNormChoice]], path: str | Path,
                       title: str = "risk-coverage") -> Path:
    """All runs on one axis: the MSP's curve solid, pNorm's (with its picked p) dashed, one colour
    per run.

    Args:
        runs: name -> (scored test predictions, pNorm choice).
        path: PNG to write.
        title: axis title.

    Returns:
        The path written.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, (scored, choice)) in enumerate(runs.items()):
        colour = colours[i % len(colours)]
        for scores, style, label in ((scored.scores["msp"], "-", f"{name} MSP"),
                                     (pnorm_scores(scored, choice), "--", f"{name} pNorm ({choice.label})")):
            curve = risk_coverage_curve(scores, scored.correct)
            ax.plot(curve.coverage.numpy(), curve.risk.numpy(), style, color=colour, label=label, linewidth=1.4)
    ax.set_xlabel("coverage")
    ax.set_ylabel("selective risk (error rate)")
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_reliability(runs: dict[str, ScoredPredictions], path: str | Path, num_bins: int = 15) -> Path:
    """One reliability diagram per run: accuracy per MSP bin against the diagonal, with the ECE.

    Args:
        runs: name -> scored test predictions.
        path: PNG to write.
        num_bins: equal-width bins (a confidence of exactly 1.0 is drawn with the last bin's bar
            merged in, as the torchmetrics ECE keeps it apart).

    Returns:
        The path written.
    """
    from ..metrics.calibration import expected_calibration_error

    plt = pyplot()
    fig, axes = _grid(plt, len(runs))
    width = 1.0 / num_bins
    for ax, (name, scored) in zip(axes, runs.items()):
        msp, correct = scored.scores["msp"], scored.correct
        bins = reliability_bins(msp, correct, num_bins)
        count, acc = bins.count.clone(), bins.accuracy * bins.count
        count[-2] += count[-1]  # draw the exact-1.0 bin inside the last bar
        acc[-2] += acc[-1]
        shown = count[:-1] > 0
        lower = bins.lower[:-1][shown].numpy()
        ax.bar(lower, (acc[:-1][shown] / count[:-1][shown]).numpy(), width=width, align="edge",
               edgecolor="black", linewidth=0.5, label="accuracy")
        ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (MSP)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{name}: ECE {expected_calibration_error(msp, correct, num_bins):.4f}", fontsize=9)
    return _save(fig, path)


def plot_confidence_histogram(runs: dict[str, ScoredPredictions], path: str | Path, bins: int = 30) -> Path:
    """Per run, histograms (densities) of the MSP of right and of wrong predictions.

    Args:
        runs: name -> scored test predictions.
        path: PNG to write.
        bins: histogram bins over [0, 1].

    Returns:
        The path written.
    """
    plt = pyplot()
    fig, axes = _grid(plt, len(runs))
    for ax, (name, scored) in zip(axes, runs.items()):
        msp, correct = scored.scores["msp"].numpy(), scored.correct.numpy()
        for mask, label in ((correct, "right"), (~correct, "wrong")):
            if mask.any():
                ax.hist(msp[mask], bins=bins, range=(0, 1), density=True, alpha=0.55, label=f"{label} ({mask.sum()})")
        ax.set_xlabel("confidence (MSP)")
        ax.set_ylabel("density")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_differences(rows: list, baseline: str, path: str | Path) -> Path:
    """One metric's differences to the baseline, a row per method: the difference, its interval
    over test examples (thick) and over seeds (thin, where there are two or more), and 0.

    Args:
        rows: :class:`~labelreg_nlp.metrics.paired_comparison.Difference` rows of one metric.
        baseline: the baseline's name, for the axis label.
        path: PNG to write.

    Returns:
        The path written.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 0.6 * len(rows) + 1.4))
    for y, row in enumerate(rows):
        ax.plot([row.low, row.high], [y, y], linewidth=4, color="tab:blue", solid_capstyle="butt")
        if row.seed_low is not None:
            ax.plot([row.seed_low, row.seed_high], [y + 0.2, y + 0.2], linewidth=1.2, color="tab:orange")
        ax.plot([row.difference], [y], "ko", markersize=4)
    ax.axvline(0, color="black", linewidth=0.8, linestyle="--")
    ax.set_yticks(range(len(rows)), [f"{r.method} ({r.verdict})" for r in rows], fontsize=8)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    metric = rows[0].metric if rows else ""
    ax.set_xlabel(f"{metric}: method - {baseline}\n(blue: interval over test examples, orange: over seeds)",
                  fontsize=9)
    return _save(fig, path)
