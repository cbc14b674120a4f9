"""Two real processes (torchrun, gloo on CPU) training with LabelRegTrainer: OLS, LS++ and LLS."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_ranks(tmp_path, kind):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(ROOT / "tests" / "integrations" / "hf_distributed_worker.py"), str(tmp_path), kind]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return (torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in (0, 1))


@pytest.mark.slow
@pytest.mark.parametrize("topk", ["dense", "4"])
def test_ols_state_identical_on_both_ranks(tmp_path, topk):
    rank0, rank1 = _two_ranks(tmp_path, topk)
    assert int(rank0["ols.periods"]) == 2
    assert float(rank0["ols.count"].sum()) == 0.0  # the period just ended: accumulators were reset
    soft = rank0["ols.table.soft"] if "ols.table.soft" in rank0 else rank0["ols.table.soft_val"]
    assert not torch.allclose(soft, soft.flatten()[0].expand_as(soft))  # learned, not the uniform init
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key


@pytest.mark.slow
def test_learned_table_identical_on_both_ranks(tmp_path):
    """Each rank sees other batches, so only the gradient average keeps the tables equal."""
    rank0, rank1 = _two_ranks(tmp_path, "lspp:4")
    assert rank0.keys() == rank1.keys() and rank0
    for key in rank0:
        assert torch.count_nonzero(rank0[key]) > 0, key  # learned (v starts at zero, the full table too)
        assert torch.equal(rank0[key], rank1[key]), key
