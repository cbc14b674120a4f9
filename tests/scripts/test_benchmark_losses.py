"""scripts/benchmark_losses.py: its floor rows measure what they say (the timings are not tested)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

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


def test_the_products_floor_is_a_row_only_where_the_table_is_factored():
    bench = load_script()
    names = {k: [name for name, _ in bench.logits_setup(8, k, torch.float32, torch.device("cpu"))[2]]
             for k in (100, 3000)}
    assert bench.FLOOR in names[100] and bench.FLOOR in names[3000]
    assert not any(n.startswith(bench.TABLE_PRODUCTS) for n in names[100])
    assert f"{bench.TABLE_PRODUCTS} 64" in names[3000]
