"""What ``labelreg-nlp compare`` does: read each method's seed runs, pair them with the baseline's
by seed, compare (:func:`~labelreg_nlp.metrics.paired_comparison.compare_runs`), print the table,
write the JSON and one figure per metric."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..metrics.paired_comparison import (
    SCORE_METRICS,
    Difference,
    compare_runs,
    decide,
    format_comparison,
    minimum_samples,
    smallest_p_value,
)
from ..metrics.scored import ScoredPredictions
from .bleu_comparison import METRICS as BLEU_METRICS
from .bleu_comparison import bleu_differences
from .confidence_runs import resolve_run


@dataclass
class SeedRuns:
    """One side of a comparison: a name and its runs, each with its seed where the run records one."""

    name: str
    paths: list[str]
    seeds: list[int | None]
    runs: list[ScoredPredictions]
    hypotheses: list[list[str]] | None = None  # per run, where every run saved SPLIT.hyp and SPLIT.ref
    references: list[list[str]] | None = None  # per run, as hypotheses


def recorded_seed(path: Path) -> int | None:
    """The seed in the run's ``results.json`` (in the folder or its parent): ``seed`` as the
    fine-tuning scripts and ``scripts/nmt.py`` write it, or ``config.seed`` as the image script
    does; None when there is none."""
    for folder in (path, path.parent):
        results = folder / "results.json"
        if results.is_file():
            try:
                saved = json.loads(results.read_text())
            except (OSError, ValueError):
                return None
            config = saved.get("config") if isinstance(saved, dict) else None
            seed = saved.get("seed", config.get("seed") if isinstance(config, dict) else None)
            return seed if isinstance(seed, int) and not isinstance(seed, bool) else None
    return None


def _text_file(path: Path, name: str) -> Path | None:
    """``name`` in the run folder or its ``predictions/`` subfolder."""
    for folder in (path, path / "predictions"):
        if (folder / name).is_file():
            return folder / name
    return None


def read_side(spec: str, split: str = "test") -> SeedRuns:
    """``NAME=RUN[,RUN...]`` -> the runs of one name (each RUN as ``labelreg-nlp evaluate`` reads it)."""
    name, sep, paths_text = spec.partition("=")
    if not sep or not name or not paths_text:
        raise ValueError(f"a side is NAME=RUN[,RUN...], got {spec!r}")
    paths = [p for p in paths_text.split(",") if p]
    runs, seeds, hypotheses, references = [], [], [], []
    for path in paths:
        files = resolve_run(path, split)
        runs.append(ScoredPredictions.load(files.test))
        seeds.append(recorded_seed(Path(path)))
        hyp, ref = _text_file(Path(path), f"{split}.hyp"), _text_file(Path(path), f"{split}.ref")
        if hyp is None or ref is None or hypotheses is None:
            hypotheses = None
            continue
        hypotheses.append(hyp.read_text(encoding="utf-8").splitlines())
        references.append(ref.read_text(encoding="utf-8").splitlines())
    return SeedRuns(name, paths, seeds, runs, hypotheses or None, references if hypotheses else None)


def pair_by_seed(baseline: SeedRuns, side: SeedRuns) -> list[int]:
    """The indices of ``side``'s runs in the order of the baseline's: by seed where every run of
    both records one, else by position."""
    if len(side.runs) != len(baseline.runs):
        raise ValueError(f"{side.name} has {len(side.runs)} run(s), {baseline.name} {len(baseline.runs)}: "
                         "give each the same seeds")
    if None in baseline.seeds or None in side.seeds:
        return list(range(len(side.runs)))
    if len(set(side.seeds)) != len(side.seeds):
        raise ValueError(f"{side.name} has two runs of seed {next(s for s in side.seeds if side.seeds.count(s) > 1)}")
    by_seed = {s: i for i, s in enumerate(side.seeds)}
    missing = [s for s in baseline.seeds if s not in by_seed]
    if missing:
        raise ValueError(f"{side.name} has no run of seed {missing[0]} (its seeds: {sorted(by_seed)}; "
                         f"{baseline.name}'s: {baseline.seeds})")
    return [by_seed[s] for s in baseline.seeds]


def compare_sides(specs: Sequence[str], *, split: str = "test", metrics: Sequence[str] | None = None,
                  samples: int = 1000, level: float = 0.95, seed: int = 0,
                  num_bins: int = 15) -> tuple[str, list[Difference]]:
    """The first spec is the baseline; returns its name and the rows of every other against it."""
    if len(specs) < 2:
        raise ValueError("compare needs a baseline and at least one method: BASE=RUN[,RUN...] NAME=RUN[,RUN...]")
    sides = [read_side(spec, split) for spec in specs]
    names = [s.name for s in sides]
    if len(set(names)) != len(names):
        raise ValueError(f"two sides are named alike ({', '.join(names)})")
    baseline = sides[0]
    order = {side.name: pair_by_seed(baseline, side) for side in sides[1:]}  # index into the side's runs
    wanted = list(SCORE_METRICS + BLEU_METRICS) if metrics is None else list(metrics)
    unknown = [m for m in wanted if m not in SCORE_METRICS + BLEU_METRICS]
    if unknown:
        raise ValueError(f"metric must be one of {SCORE_METRICS + BLEU_METRICS}, got {unknown[0]!r}")
    scores = [m for m in wanted if m in SCORE_METRICS]
    rows = compare_runs(baseline.runs, {side.name: [side.runs[i] for i in order[side.name]] for side in sides[1:]},
                        metrics=scores, samples=samples, level=level, seed=seed, num_bins=num_bins) if scores else []
    texts = [m for m in wanted if m in BLEU_METRICS]
    with_text = all(side.hypotheses is not None for side in sides)
    if texts and with_text:
        for side in sides[1:]:
            for k, i in enumerate(order[side.name]):
                if side.references[i] != baseline.references[k]:
                    raise ValueError(f"{side.paths[i]}: its {split}.ref differs from {baseline.paths[k]}'s, the "
                                     f"{baseline.name} run it is paired with: BLEU needs the same references")
        rows += bleu_differences(baseline.hypotheses, {side.name: [side.hypotheses[i] for i in order[side.name]]
                                                       for side in sides[1:]},
                                 baseline.references, metrics=texts, samples=samples, level=level)
    elif texts and metrics is not None:
        missing = next(side.name for side in sides if side.hypotheses is None)
        raise ValueError(f"{missing} has no {split}.hyp and {split}.ref beside its predictions: BLEU and chrF need them")
    return baseline.name, decide(rows, level)


def report_comparison(baseline: str, rows: Sequence[Difference], level: float, samples: int,
                      plots: str | Path | None = None, json_path: str | Path | None = None) -> str:
    """The printed table (with how the verdicts were reached), the JSON and the figures."""
    text = (f"### against {baseline}: {samples} bootstrap resamples of the test examples, "
            f"Holm-Bonferroni over {len(rows)} rows at {1 - level:g}\n\n{format_comparison(rows, baseline, level)}")
    floor = len(rows) * smallest_p_value(samples)
    if rows and floor > 1 - level:
        text += (f"\n\nWith {len(rows)} rows and {samples} resamples no row can reach a Holm p of {1 - level:g} "
                 f"(the smallest is {floor:.3g}): give --samples {minimum_samples(len(rows), level)} or more, or "
                 "fewer metrics or methods.")
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps({"baseline": baseline, "level": level, "samples": samples,
                                               "rows": [r.as_dict() for r in rows]}, indent=2) + "\n")
    if plots:
        from .confidence_plots import plot_differences

        written = [plot_differences([r for r in rows if r.metric == metric], baseline, Path(plots) / f"diff_{metric}.png")
                   for metric in dict.fromkeys(r.metric for r in rows)]
        text += "\n\nfigures: " + ", ".join(str(p) for p in written)
    return text
