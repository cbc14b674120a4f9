"""BLEU and chrF differences to a baseline from saved hypotheses, by sacrebleu's paired bootstrap.

The test sentences are resampled as sacrebleu's ``PairedTest(test_type="bs")`` resamples them (its
random generator and seed, default 12345), every system's corpus score recomputed on each
resample from its sentence statistics and averaged over the system's seeds (seeds that drew their
own test split are resampled each on its own); the interval is the
percentile interval of the resampled differences, the p-value sacrebleu's (the share of
resamples whose centred absolute difference exceeds the observed one). With one seed per side
the p-value is the one sacrebleu prints for the same files (tested).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..metrics.paired_comparison import Difference, group_positions, seed_interval

SACREBLEU_DEFAULT_SEED = 12345
METRICS = ("bleu", "chrf")


def sacrebleu_seed() -> int | None:
    """The seed sacrebleu's paired tests use: ``SACREBLEU_SEED`` (``none``: unseeded), else 12345."""
    seed = os.environ.get("SACREBLEU_SEED", str(SACREBLEU_DEFAULT_SEED))
    return None if seed.lower() == "none" else int(seed)


def _metric(name: str, references: Sequence[str]):
    """sacrebleu's metric with the references cached once (their n-grams are read for every system)."""
    from sacrebleu.metrics import BLEU, CHRF

    return {"bleu": BLEU, "chrf": CHRF}[name](references=[list(references)])


def _corpus_scores(metric, systems: Sequence[Sequence[str]], idxs: np.ndarray) -> tuple[list[float], np.ndarray]:
    """Each system's whole-corpus score, and the systems' mean score on every resample ``idxs``."""
    whole, resampled = [], []
    for hyps in systems:
        sentence_stats = metric._extract_corpus_statistics(list(hyps), None)  # the cached references
        whole.append(metric._aggregate_and_compute(sentence_stats).score)  # exact counts, as sacrebleu's score
        stats = np.array(sentence_stats, dtype="float32")  # as sacrebleu resamples them
        resampled.append([metric._compute_score_from_stats(s.sum(0)).score for s in stats[idxs]])
    return whole, np.mean(resampled, axis=0)


def _grouped_scores(scorers: Sequence, groups: Sequence[Sequence[int]], idxs: Sequence[np.ndarray],
                    systems: Sequence[Sequence[str]]) -> tuple[list[float], np.ndarray]:
    """Each seed's whole-corpus score (seed order) and the mean over the seeds on every resample,
    each test set scored by its own references and resampled by its own draw."""
    whole, resampled = [0.0] * len(systems), []
    for metric, group, draw in zip(scorers, groups, idxs):
        these, mean = _corpus_scores(metric, [systems[i] for i in group], draw)
        for i, value in zip(group, these):
            whole[i] = value
        resampled.append(mean * len(group))
    return whole, np.sum(resampled, axis=0) / len(systems)


def bleu_differences(baseline: Sequence[Sequence[str]], methods: dict[str, Sequence[Sequence[str]]],
                     references: Sequence[str] | Sequence[Sequence[str]], *, metrics: Sequence[str] = METRICS,
                     samples: int = 1000, level: float = 0.95, seed: int | None = None) -> list[Difference]:
    """Rows ``method - baseline`` of corpus BLEU / chrF (verdicts left to
    :func:`~labelreg_nlp.metrics.paired_comparison.decide`).

    Args:
        baseline: the baseline's hypotheses, one list of sentences per seed.
        methods: name -> its hypotheses per seed, matched to the baseline's by position.
        references: the reference of each test sentence, either one list for every seed or one
            list per seed (seeds that drew their own test split). Seeds with the same references
            share one draw of sentences; each other set is drawn on its own, in the order first seen.
        metrics: ``bleu`` and/or ``chrf``.
        samples: bootstrap resamples.
        level: the intervals' confidence level.
        seed: the resampling seed (default: sacrebleu's, :func:`sacrebleu_seed`).

    Returns:
        One :class:`~labelreg_nlp.metrics.paired_comparison.Difference` per (method, metric).
    """
    per_seed_refs = [list(references)] * len(baseline) if references and isinstance(references[0], str) \
        else [list(r) for r in references]
    if len(per_seed_refs) != len(baseline):
        raise ValueError(f"{len(per_seed_refs)} reference sets for {len(baseline)} baseline seeds")
    for name, systems in [("the baseline", baseline), *methods.items()]:
        for hyps, refs in zip(systems, per_seed_refs):
            if len(hyps) != len(refs):
                raise ValueError(f"{name} has {len(hyps)} hypotheses for {len(refs)} references")
    groups = group_positions(per_seed_refs, list.__eq__)  # seed positions that share one reference set
    rng = np.random.default_rng(sacrebleu_seed() if seed is None else seed)
    # as sacrebleu's paired bootstrap draws them; one set of references gives exactly its draw
    idxs = [rng.choice(len(per_seed_refs[g[0]]), size=(samples, len(per_seed_refs[g[0]])), replace=True)
            for g in groups]
    tail = (1 - level) / 2
    rows = []
    for name in metrics:
        if name not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {name!r}")
        scorers = [_metric(name, per_seed_refs[g[0]]) for g in groups]
        base_whole, base_samples = _grouped_scores(scorers, groups, idxs, baseline)
        for method, systems in methods.items():
            whole, method_samples = _grouped_scores(scorers, groups, idxs, systems)
            difference = float(np.mean(whole) - np.mean(base_whole))
            deltas = method_samples - base_samples
            low, high = np.quantile(deltas, [tail, 1 - tail]).tolist()
            centred = np.abs(deltas) - np.abs(deltas).mean()
            p_value = (int(np.sum(centred > abs(difference))) + 1) / (samples + 1)
            per_seed = [a - b for a, b in zip(whole, base_whole)]
            seed_low, seed_high = seed_interval(per_seed)
            rows.append(Difference(name, method, float(np.mean(base_whole)), float(np.mean(whole)), difference,
                                   float(low), float(high), p_value, 1.0, len(per_seed), seed_low, seed_high, ""))
    return rows
