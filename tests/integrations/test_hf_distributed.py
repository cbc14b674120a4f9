"""Two real processes (torchrun, gloo on CPU) training with LabelRegTrainer and OLS."""

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


@pytest.mark.slow
@pytest.mark.parametrize("topk", ["dense", "4"])
def test_ols_state_identical_on_both_ranks(tmp_path, topk):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(ROOT / "tests" / "integrations" / "hf_distributed_worker.py"), str(tmp_path), topk]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert int(rank0["ols.periods"]) == 2
    assert float(rank0["ols.count"].sum()) == 0.0  # the period just ended: accumulators were reset
    soft = rank0["ols.soft"] if "ols.soft" in rank0 else rank0["ols.soft_val"]
    assert not torch.allclose(soft, soft.flatten()[0].expand_as(soft))  # learned, not the uniform init
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
