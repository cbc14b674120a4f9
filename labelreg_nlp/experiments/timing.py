"""What the benchmark scripts share: interleaved step timing and peak-memory readings."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
from torch import Tensor


def step_times(fns: list[Callable[[Tensor, Tensor], Tensor]], logits: Tensor, target: Tensor,
               repeats: int) -> list[float]:
    """Median forward + backward time of each function. The functions take turns within every
    round, in an order that rotates from round to round, so drift in the machine's speed
    (frequent on shared CPUs) and the cost of following another function hit all alike."""
    times: list[list[float]] = [[] for _ in fns]
    for i in range(repeats + 1):
        for turn in range(len(fns)):
            j = (turn + i) % len(fns)
            fn, bucket = fns[j], times[j]
            x = logits.detach().requires_grad_()
            if x.is_cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn(x, target).backward()
            if x.is_cuda:
                torch.cuda.synchronize()
            if i:  # the first round warms up
                bucket.append(time.perf_counter() - start)
    return [statistics.median(b) for b in times]


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def peak_step_bytes(fn: Callable[[Tensor, Tensor], Tensor], logits: Tensor, target: Tensor) -> int | None:
    """Memory one forward + backward of ``fn`` adds at its peak to what was allocated before it
    (the logits' gradient included): CUDA's peak allocation, or on Linux CPUs the process's peak
    resident set (reset through ``/proc/self/clear_refs``). ``None`` where neither is readable."""
    x = logits.detach().requires_grad_()
    if x.is_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn(x, target).backward()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # reset the peak resident set to the current one
        before = _status_kib("VmRSS")
        fn(x, target).backward()
        return (_status_kib("VmHWM") - before) * 1024
    except OSError:
        return None


def child_peaks(script: str, argv: list[str], count: int) -> list[int | None]:
    """Peak memory of each of ``count`` variants' steps, read in a fresh process: ``script`` run with
    ``argv`` must print, as its last line, the JSON list of :func:`peak_step_bytes` readings. On
    Linux CPUs glibc is told to map every allocation of 64 KiB or more on its own and unmap it when
    freed, so the resident set follows the live tensors (its default reuses freed memory, which the
    peak would miss). ``None`` for every variant when the child fails."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, script, *argv], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-2000:])
        return [None] * count
    return json.loads(out.stdout.strip().splitlines()[-1])
