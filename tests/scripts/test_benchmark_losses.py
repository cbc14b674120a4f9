"""scripts/benchmark_losses.py: its floor rows measure what they say (the timings are not tested)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "benchmark_losses.py"


def load_script():
    spec = importlib.util.spec_from_file_location("benchmark_losses", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_products_give_the_gradients_of_the_factored_rows():
    bench = load_script()
    target = torch.tensor([4, 1, 4, 0, 6])
    u = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    v = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    bench.TableProducts.apply(target, u, v).mul(1.5).backward()
    got = u.grad.clone(), v.grad.clone()
    u.grad = v.grad = None
    # the stand-in row gradient is g * rows: the gradient of g/2 * sum(rows^2) over the distinct targets
    rows = u[target.unique()] @ v.T
    (0.75 * rows.pow(2).sum()).backward()
    torch.testing.assert_close(got[0], u.grad)
    torch.testing.assert_close(got[1], v.grad)


@pytest.mark.slow  # a subprocess per table (about 15 s)
def test_logits_table_has_both_floors_where_the_table_is_factored():
    out = subprocess.run([sys.executable, str(SCRIPT), "--sections", "logits", "--sizes", "64x3000", "64x100",
                          "--dtypes", "float32", "--repeats", "1"], capture_output=True, text=True, check=True).stdout
    factored, full = out.split("### loss over logits")[1:]
    assert "| floor: read the logits, write their gradient |" in factored
    assert "| floor of LS++/LLS: their table's products alone, rank 64 |" in factored
    assert "floor of LS++/LLS" not in full and "| ours: lspp |" in full
