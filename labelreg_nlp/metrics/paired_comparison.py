"""Is a method better than the baseline on these test examples? Paired comparisons with intervals.

For each metric, the difference ``method - baseline`` of the metric averaged over each side's
seeds, with two intervals:

* **paired bootstrap over test examples**: the test examples are resampled with replacement
  (the same draw for every run of a test set, so the runs stay paired), the metric recomputed on
  each draw for every run and averaged over each side's seeds; the interval is the percentile
  interval of the resampled differences and the p-value ``2 (k + 1) / (samples + 1)``, k the
  resampled differences on the smaller side of 0 (never below ``2 / (samples + 1)``). It
  measures how much the difference depends on which test examples were drawn.
  Seeds that drew their own test split (one per seed, as the translation demo does) are
  resampled each on its own, independently.
* **paired by seed** (two or more seeds on each side): the mean of the per-seed differences
  (seeds matched) with a Student-t interval over the seeds. It measures how much it depends on
  the training run.

A row's verdict is *better* or *worse* when the bootstrap test rejects "no difference" after the
Holm-Bonferroni correction over every (metric, method) row of the comparison and, with two or
more seeds, the seed interval excludes 0 too; otherwise *no detectable difference*.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TypeVar

import torch
from torch import Tensor

from .calibration import expected_calibration_error
from .scored import ScoredPredictions
from .selective import aurc, excess_aurc

T = TypeVar("T")

#: metrics computed from saved predictions (the MSP as confidence)
SCORE_METRICS = ("accuracy", "nll", "ece", "aurc", "eaurc")
#: metric -> +1 when higher is better, -1 when lower is (BLEU and chrF come from saved hypotheses)
DIRECTIONS = {"accuracy": 1, "nll": -1, "ece": -1, "aurc": -1, "eaurc": -1, "bleu": 1, "chrf": 1}

# two-sided 95% Student-t quantiles for 1..30 degrees of freedom (the normal's 1.960 beyond)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def metric_value(run: ScoredPredictions, metric: str, index: Tensor | None = None, num_bins: int = 15) -> float:
    """``metric`` of ``run`` (restricted to the examples ``index``, repeats allowed), with the MSP
    as the confidence of ECE, AURC and E-AURC.

    Example:
        >>> import torch
        >>> run = ScoredPredictions(torch.tensor([0, 1]), torch.tensor([0, 0]), torch.log(torch.tensor([0.9, 0.4])),
        ...                         {"msp": torch.tensor([0.9, 0.6])}, torch.zeros(0, 2))
        >>> metric_value(run, "accuracy"), round(metric_value(run, "nll"), 4)
        (0.5, 0.5108)
    """
    correct, confidence, log_p = run.correct, run.scores["msp"], run.target_log_prob
    if index is not None:
        correct, confidence, log_p = correct[index], confidence[index], log_p[index]
    if metric == "accuracy":
        return float(correct.double().mean())
    if metric == "nll":
        return float(-log_p.double().mean())
    if metric == "ece":
        return expected_calibration_error(confidence, correct, num_bins)
    if metric == "aurc":
        return aurc(confidence, correct)
    if metric == "eaurc":
        return excess_aurc(confidence, correct)
    raise ValueError(f"metric must be one of {SCORE_METRICS}, got {metric!r}")


def _resampled_ece(run: ScoredPredictions, index: Tensor, num_bins: int) -> Tensor:
    """[B] the ECE of every row of ``index`` [B, n], with the bins of
    :func:`~labelreg_nlp.metrics.calibration.reliability_bins`: ``sum_bins |hits - confidence sum| / n``."""
    confidence = run.scores["msp"].double()
    edges = torch.linspace(0, 1, num_bins + 1, dtype=torch.float64)
    bins = torch.bucketize(confidence, edges, right=True) - 1  # per example, then gathered
    rows = torch.arange(index.size(0)).unsqueeze(1) * (num_bins + 1)
    flat = (rows + bins[index]).reshape(-1)
    size = index.size(0) * (num_bins + 1)
    gap = torch.zeros(size, dtype=torch.float64).index_add_(0, flat, (run.correct.double() - confidence)[index].reshape(-1))
    return gap.view(index.size(0), -1).abs().sum(1) / index.size(1)


def _resampled_aurc(run: ScoredPredictions, index: Tensor) -> Tensor:
    """[B] the AURC of every row of ``index`` [B, n]: the mean over coverages of the expected
    selective risk, ties in random order (:func:`~labelreg_nlp.metrics.selective.selective_risks`)."""
    b, n = index.shape
    confidence, order = torch.sort(run.scores["msp"].double()[index], dim=1, descending=True)
    errors = (~run.correct)[index].gather(1, order).double()
    j = torch.arange(n).expand(b, n)
    first = torch.ones(b, n, dtype=torch.bool)
    first[:, 1:] = confidence[:, 1:] != confidence[:, :-1]
    last = torch.ones(b, n, dtype=torch.bool)
    last[:, :-1] = first[:, 1:]
    start = torch.cummax(torch.where(first, j, torch.zeros_like(j)), dim=1).values
    end = torch.flip(torch.cummin(torch.flip(torch.where(last, j + 1, torch.full_like(j, n)), [1]), dim=1).values, [1])
    cumulative = errors.cumsum(1)
    before = (cumulative - errors).gather(1, start)  # errors ranked above the position's tie group
    in_group = cumulative.gather(1, end - 1) - before
    expected = before + (j - start + 1) * in_group / (end - start)
    return (expected / (j + 1)).mean(1)


def _resampled_oracle_aurc(run: ScoredPredictions, index: Tensor) -> Tensor:
    """[B] :func:`~labelreg_nlp.metrics.selective.oracle_aurc` of every row of ``index`` [B, n]."""
    hits = run.correct[index].sum(1, keepdim=True).double()
    i = torch.arange(1, index.size(1) + 1, dtype=torch.float64)
    return ((i - hits).clamp_min(0) / i).mean(1)


def _vectorized(metric: str, num_bins: int) -> Callable[[ScoredPredictions, Tensor], Tensor]:
    """The metric over every row of an index matrix [B, n] at once."""
    if metric == "accuracy":
        return lambda run, index: run.correct[index].double().mean(1)
    if metric == "nll":
        return lambda run, index: -run.target_log_prob[index].double().mean(1)
    if metric == "ece":
        return lambda run, index: _resampled_ece(run, index, num_bins)
    if metric == "aurc":
        return _resampled_aurc
    return lambda run, index: _resampled_aurc(run, index) - _resampled_oracle_aurc(run, index)


def seed_interval(per_seed: Sequence[float]) -> tuple[float | None, float | None]:
    """The 95% Student-t interval of the mean of paired per-seed differences; ``(None, None)``
    with fewer than two seeds.

    Example:
        >>> low, high = seed_interval([0.010, 0.020, 0.015])
        >>> round(low, 4), round(high, 4)  # 0.015 -+ 4.303 * 0.005 / sqrt(3)
        (0.0026, 0.0274)
    """
    if len(per_seed) < 2:
        return None, None
    mean = sum(per_seed) / len(per_seed)
    sd = math.sqrt(sum((d - mean) ** 2 for d in per_seed) / (len(per_seed) - 1))
    df = len(per_seed) - 1
    half = (_T975[df - 1] if df <= len(_T975) else 1.960) * sd / math.sqrt(len(per_seed))
    return mean - half, mean + half


@dataclass
class Difference:
    """One row of a comparison: ``method - baseline`` for one metric."""

    metric: str
    method: str
    baseline_value: float  # the metric averaged over the baseline's seeds, whole test set
    method_value: float
    difference: float
    low: float  # bootstrap interval over test examples
    high: float
    p_value: float  # bootstrap, two-sided, before correction
    adjusted_p: float  # Holm-Bonferroni over the comparison's rows
    seeds: int  # seed pairs the seed interval rests on
    seed_low: float | None  # paired-by-seed t interval (None with one seed)
    seed_high: float | None
    verdict: str  # "better", "worse" or "no detectable difference"

    def as_dict(self) -> dict:
        return asdict(self)


def _same_examples(a: ScoredPredictions, b: ScoredPredictions) -> bool:
    return len(a) == len(b) and torch.equal(a.labels, b.labels)


def _check_paired(runs: Sequence[ScoredPredictions], names: Sequence[str]) -> int:
    n = len(runs[0])
    for run, name in zip(runs, names):
        if not _same_examples(run, runs[0]):
            raise ValueError(f"{name} was not scored on the same test examples as {names[0]} "
                             f"({len(run)} vs {n} labels, or other labels): a paired comparison needs the same examples "
                             "in the same order")
    if n == 0:
        raise ValueError("the runs hold no test examples")
    return n


def group_positions(items: Sequence[T], same: Callable[[T, T], bool]) -> list[list[int]]:
    """The positions of ``items`` grouped by ``same`` (each group in order, groups in the order
    first seen): how seeds that share a test set are found.

    Example:
        >>> group_positions(["a", "b", "a"], str.__eq__)
        [[0, 2], [1]]
    """
    groups: list[list[int]] = []
    for i, item in enumerate(items):
        group = next((g for g in groups if same(item, items[g[0]])), None)
        if group is None:
            groups.append([i])
        else:
            group.append(i)
    return groups


def _canonical_order(runs: Sequence[ScoredPredictions]) -> Tensor:
    """The examples sorted by what every run says of them (label, then each run's log-probability,
    confidence and prediction): resampling positions of this order draws the same examples
    whatever order the files list them in."""
    keys = [runs[0].labels]
    for run in runs:
        keys += [run.target_log_prob, run.scores["msp"], run.predictions]
    order = torch.arange(runs[0].labels.numel())
    for key in reversed(keys):  # a stable sort per key, last key first: lexicographic order
        order = order[torch.sort(key[order], stable=True).indices]
    return order


def smallest_p_value(samples: int) -> float:
    """The smallest two-sided p-value ``samples`` bootstrap resamples can give."""
    return 2 / (samples + 1)


def minimum_samples(rows: int, level: float = 0.95) -> int:
    """The fewest resamples with which the most extreme of ``rows`` rows can pass Holm's
    correction at ``1 - level``.

    Example:
        >>> minimum_samples(21), minimum_samples(35)
        (839, 1399)
    """
    return math.ceil(2 * rows / (1 - level) - 1 - 1e-9)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (reject where ``adjusted <= alpha``).

    Example:
        >>> holm([0.01, 0.04, 0.03])
        [0.03, 0.06, 0.06]
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = round(running, 12)
    return adjusted


def compare_runs(baseline: Sequence[ScoredPredictions], methods: dict[str, Sequence[ScoredPredictions]], *,
                 metrics: Sequence[str] = SCORE_METRICS, samples: int = 1000, level: float = 0.95,
                 seed: int = 0, num_bins: int = 15) -> list[Difference]:
    """Every method against the baseline on every metric (see the module docstring).

    Args:
        baseline: the baseline's runs, one per seed, in seed order. Seeds may hold different test
            sets (a method's run must hold its seed's); each set is resampled on its own.
        methods: name -> its runs, matched to ``baseline`` by position (the same seeds).
        metrics: names of :data:`SCORE_METRICS`.
        samples: bootstrap resamples of the test examples.
        level: the intervals' confidence level; rows are tested at ``1 - level``.
        seed: the resampling's random seed (the same resamples for every run).
        num_bins: ECE bins.

    Returns:
        One :class:`Difference` per (method, metric), methods in the given order.

    Example:
        >>> import torch
        >>> gen = torch.Generator().manual_seed(0)
        >>> def run(p_correct):
        ...     labels = torch.zeros(400, dtype=torch.long)
        ...     hit = torch.rand(400, generator=gen) < p_correct
        ...     msp = torch.rand(400, generator=gen)
        ...     return ScoredPredictions(labels, (~hit).long(), torch.log(msp), {"msp": msp}, torch.zeros(0, 400))
        >>> rows = compare_runs([run(0.5)], {"better": [run(0.8)]}, metrics=["accuracy"], samples=200)
        >>> rows[0].verdict, rows[0].low > 0
        ('better', True)
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    for metric in metrics:
        if metric not in SCORE_METRICS:
            raise ValueError(f"metric must be one of {SCORE_METRICS}, got {metric!r}")
    for name, runs in methods.items():
        if len(runs) != len(baseline):
            raise ValueError(f"{name} has {len(runs)} seed(s), the baseline {len(baseline)}: pair them one to one")
    index_of: dict[int, Tensor] = {}  # seed position -> [samples, n] resampled example positions of its test set
    for number, seeds in enumerate(group_positions(baseline, _same_examples)):
        runs = [baseline[i] for i in seeds] + [rs[i] for rs in methods.values() for i in seeds]
        n = _check_paired(runs, ["the baseline"] * len(seeds) + [name for name in methods for _ in seeds])
        draws = torch.randint(0, n, (samples, n), generator=torch.Generator().manual_seed(seed + number))
        index_of.update(dict.fromkeys(seeds, _canonical_order(runs)[draws]))

    aurcs: dict[int, Tensor] = {}  # id(run) -> its AURC on every resample, which E-AURC reuses

    def one_run(run: ScoredPredictions, metric: str, index: Tensor) -> Tensor:
        block = max(1, (1 << 23) // index.shape[1])  # resamples at a time: [block, n] float64 stays near 64 MiB
        if metric in ("aurc", "eaurc"):
            if id(run) not in aurcs:
                aurcs[id(run)] = torch.cat([_resampled_aurc(run, index[i:i + block]) for i in range(0, samples, block)])
            if metric == "aurc":
                return aurcs[id(run)]
            return aurcs[id(run)] - torch.cat([_resampled_oracle_aurc(run, index[i:i + block])
                                               for i in range(0, samples, block)])
        fn = _vectorized(metric, num_bins)
        return torch.cat([fn(run, index[i:i + block]) for i in range(0, samples, block)])

    def resampled(runs: Sequence[ScoredPredictions], metric: str) -> Tensor:
        """[samples] the metric averaged over the runs (in seed order), on every resample."""
        return torch.stack([one_run(run, metric, index_of[i]) for i, run in enumerate(runs)]).mean(0)

    tail = (1 - level) / 2
    rows = []
    for metric in metrics:
        base_whole = [metric_value(run, metric, None, num_bins) for run in baseline]
        base_samples = resampled(baseline, metric)
        for name, runs in methods.items():
            whole = [metric_value(run, metric, None, num_bins) for run in runs]
            deltas = resampled(runs, metric) - base_samples
            low, high = torch.quantile(deltas, torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
            # the smaller tail counted with the observed split, as a resampling p-value should: never 0
            tail_count = min(int((deltas <= 0).sum()), int((deltas >= 0).sum()))
            per_seed = [a - b for a, b in zip(whole, base_whole)]
            seed_low, seed_high = seed_interval(per_seed)
            rows.append(Difference(metric, name, sum(base_whole) / len(base_whole), sum(whole) / len(whole),
                                   sum(whole) / len(whole) - sum(base_whole) / len(base_whole), low, high,
                                   min(1.0, 2 * (tail_count + 1) / (samples + 1)), 1.0, len(per_seed), seed_low, seed_high, ""))
    return decide(rows, level)


def decide(rows: list[Difference], level: float = 0.95) -> list[Difference]:
    """Set every row's Holm-adjusted p-value (over all ``rows``) and verdict, in place: *better* or
    *worse* (by the metric's direction) where the adjusted p is at most ``1 - level`` and the seed
    interval, if any, excludes 0; else *no detectable difference*. Returns ``rows``."""
    for row, adjusted in zip(rows, holm([r.p_value for r in rows])):
        row.adjusted_p = adjusted
        seeds_agree = row.seed_low is None or row.seed_low > 0 or row.seed_high < 0
        if adjusted <= 1 - level and seeds_agree and row.difference != 0:
            row.verdict = "better" if row.difference * DIRECTIONS[row.metric] > 0 else "worse"
        else:
            row.verdict = "no detectable difference"
    return rows


def format_comparison(rows: Sequence[Difference], baseline: str, level: float = 0.95) -> str:
    """The rows as a markdown table."""
    pct = f"{100 * level:g}%"
    lines = [f"| metric | method | {baseline} | method | difference | {pct} CI (test examples) | Holm p "
             f"| {pct} CI (seeds) | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        seeds = "-" if r.seed_low is None else f"[{r.seed_low:+.4f}, {r.seed_high:+.4f}] ({r.seeds} seeds)"
        lines.append(f"| {r.metric} | {r.method} | {r.baseline_value:.4f} | {r.method_value:.4f} | {r.difference:+.4f} "
                     f"| [{r.low:+.4f}, {r.high:+.4f}] | {r.adjusted_p:.3g} | {seeds} | {r.verdict} |")
    return "\n".join(lines)
