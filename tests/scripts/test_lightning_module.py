"""scripts/examples/lightning_module.py: Trainer(accelerator="cpu", devices=2, strategy=DDP over gloo)
ends with the state of one process over the same global batches; the state is in the checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning")
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "examples" / "lightning_module.py"


def run(out: Path, *options: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--output_dir", str(out), "--sequences", "32", *options],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow  # about 25 s per method
@pytest.mark.parametrize("method", ["ols", "lls"])
def test_two_ddp_processes_end_with_the_state_of_one_process(tmp_path, method):
    two = run(tmp_path / "two", "--method", method, "--devices", "2", "--batch_size", "2")
    one = run(tmp_path / "one", "--method", method, "--devices", "1", "--batch_size", "4")
    assert f"{method} state identical on 2 process(es)" in two and f"{method} state identical on 1 process(es)" in one
    a = torch.load(tmp_path / "two" / "labelreg_state.pt")["state"]
    b = torch.load(tmp_path / "one" / "labelreg_state.pt")["state"]
    assert list(a) == list(b) and a
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5, msg=name)
    checkpoint = torch.load(next((tmp_path / "two" / "checkpoints").glob("*.ckpt")), weights_only=False)
    assert checkpoint["labelreg"]["method"] == method
    for name in a:
        torch.testing.assert_close(checkpoint["state_dict"][f"token_loss.{name}"], a[name])


def test_a_checkpoint_of_another_method_is_refused():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from lightning_module import LabelRegLM
    finally:
        sys.path.remove(str(SCRIPT.parent))
    module = LabelRegLM("ls", vocab=8)
    with pytest.raises(ValueError, match="saved for method 'ols', this module uses 'ls'"):
        module.on_load_checkpoint({"labelreg": {"method": "ols", "progress": 3}})
    module.on_load_checkpoint({"labelreg": {"method": "ls", "progress": 3}})
    assert module.token_loss.progress == 3


def test_a_used_output_dir_is_refused(tmp_path):
    (tmp_path / "labelreg_state.pt").write_text("a finished run")
    done = subprocess.run([sys.executable, str(SCRIPT), "--output_dir", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2 and f"{tmp_path} is not empty" in done.stderr and "Traceback" not in done.stderr
