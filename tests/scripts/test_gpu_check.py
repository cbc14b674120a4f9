"""scripts/gpu_check.sh --dry-run: every step's command line is one the repository accepts, and
the results file has its format (the real run needs a CUDA machine)."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu_check.sh"


def dry_run(tmp_path) -> dict[str, tuple[int, str]]:
    out = tmp_path / "gpu_check.md"
    subprocess.run(["bash", str(SCRIPT), "--dry-run", "--out", str(out)], cwd=REPO, check=True, capture_output=True)
    text = out.read_text()
    assert text.startswith("# GPU check\n")
    rows = re.findall(r"^\| (\w+) \| (\d+) \| dry run \| - \| `(.+)` \|$", text, flags=re.M)
    return {name: (int(limit), command) for name, limit, command in rows}


def test_the_steps_fit_in_eight_minutes_and_install_without_an_index(tmp_path):
    steps = dry_run(tmp_path)
    assert list(steps) == ["install", "tests", "bench", "demo"]
    assert sum(limit for limit, _ in steps.values()) <= 8 * 60
    install = steps["install"][1]
    assert "--no-index" in install and "--no-deps" in install and "--target" in install


def test_the_test_step_selects_the_cuda_tests(tmp_path):
    command = shlex.split(dry_run(tmp_path)["tests"][1])
    assert command[1:4] == ["-m", "pytest", "-q"]
    collected = subprocess.run([sys.executable, *command[1:], "--collect-only"], cwd=REPO, capture_output=True,
                               text=True)
    ids = [line for line in collected.stdout.splitlines() if "::" in line]
    assert any("[cuda" in i for i in ids) and any("fp16" in i for i in ids) and any("bf16" in i for i in ids)
    assert not any("[cpu" in i for i in ids)


def test_the_benchmark_step_makes_the_8192_x_128k_bfloat16_tables(tmp_path):
    command = shlex.split(dry_run(tmp_path)["bench"][1])
    listed = subprocess.run([sys.executable, *command[1:], "--list"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.splitlines()
    assert listed == ["loss over logits, 8192 x 128000, bfloat16, uniform targets",
                      "output layer + loss, 8192 x 128000, hidden 4096, bfloat16"]


def test_the_demo_step_is_refused_on_a_machine_without_cuda_for_that_reason_alone(tmp_path):
    command = shlex.split(dry_run(tmp_path)["demo"][1])
    out = subprocess.run([sys.executable, *command[1:]], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip().endswith("--fp16 needs a CUDA device, and torch sees none")


def test_fetch_wheels_downloads_cp312_wheels_and_the_one_source_archive(tmp_path):
    out = subprocess.run(["bash", str(SCRIPT), "--fetch-wheels", str(tmp_path / "w"), "--dry-run"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    wheels, sdist = out
    assert "--only-binary=:all:" in wheels and "--python-version 3.12" in wheels and "ve-fairseq==0.12.3" in wheels
    assert "liger-kernel" in wheels and "cut-cross-entropy" in wheels
    assert "--no-binary=:all:" in sdist and "antlr4-python3-runtime" in sdist


def test_bad_options_are_named(tmp_path):
    out = subprocess.run(["bash", str(SCRIPT), "--bogus"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2 and "unknown option '--bogus'" in out.stderr
    out = subprocess.run(["bash", str(SCRIPT), "--wheels", str(tmp_path / "none")], cwd=REPO, capture_output=True,
                         text=True)
    assert out.returncode == 2 and "no wheel folder" in out.stderr
