"""scripts/examples/accelerate_loop.py under `accelerate launch` with 2 processes (gloo on CPU):
the same state on every process, and the same as one process over the same global batches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "examples" / "accelerate_loop.py"
ACCELERATE = Path(sys.executable).with_name("accelerate")


def run(command: list[str], out: Path, *options: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*command, str(SCRIPT), "--output_dir", str(out), "--sequences", "32", *options],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow  # about 15 s per method
@pytest.mark.parametrize("method", ["ols", "lls"])
def test_two_processes_end_with_the_state_of_one_process(tmp_path, method):
    # accelerate 1.16 launches several CPU processes through its torchrun launcher (--multi_gpu);
    # with --cpu it starts one unless MPI is configured
    launch = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no"]
    two = run(launch, tmp_path / "two", "--method", method, "--batch_size", "2")
    one = run([sys.executable], tmp_path / "one", "--method", method, "--batch_size", "4")
    assert f"{method} state identical on 2 process(es)" in two
    assert f"{method} state identical on 1 process(es)" in one
    a = torch.load(tmp_path / "two" / "labelreg_state.pt")["state"]
    b = torch.load(tmp_path / "one" / "labelreg_state.pt")["state"]
    assert list(a) == list(b) and a
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5, msg=name)
    if method == "ols":  # two periods ended (one per epoch), each all-reduced once
        assert int(a["ols.periods"]) == 2


def test_a_used_output_dir_is_refused(tmp_path):
    (tmp_path / "model.safetensors").write_text("a finished run")
    done = subprocess.run([sys.executable, str(SCRIPT), "--output_dir", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2 and f"{tmp_path} is not empty" in done.stderr and "Traceback" not in done.stderr
    assert (tmp_path / "model.safetensors").read_text() == "a finished run"
