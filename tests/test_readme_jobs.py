"""The README's jobs table, run as a user runs it: every command of every row from an empty
folder (short settings appended, so it takes seconds), then the row's evaluate command on what
it wrote."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
# appended to each command of a row, by its script (and nmt.py subcommand)
SHORT = {
    "demo.py": "--max-epoch 1 --max-pairs 600 --valid-size 50 --test-size 50 --bpe-merges 100 --embed-dim 16 "
               "--layers 1 --heads 2",
    "nmt.py prepare": "--bpe-merges 100 --test-size 30",
    "nmt.py train": "--tiny-dim 16 --tiny-layers 1 --max-epoch 1",
    "nmt.py evaluate": "--tiny-dim 16 --tiny-layers 1 --max-epoch 1 --beam 1",
    "finetune_text_classification.py": "--max_steps 2 --max_train_samples 64 --max_eval_samples 32 "
                                       "--per_device_train_batch_size 8 --disable_tqdm true",
    "finetune_seq2seq.py": "--max_train_samples 48 --max_eval_samples 8 --scratch_d_model 32 --scratch_layers 1 "
                           "--scratch_vocab_size 100 --num_beams 1 --max_target_length 16 "
                           "--per_device_train_batch_size 16 --disable_tqdm true",
    "finetune_causal_lm.py": "--max_steps 2 --max_train_samples 64 --max_eval_samples 8 --scratch_hidden 16 "
                             "--scratch_layers 1 --scratch_vocab_size 100 --per_device_train_batch_size 8 "
                             "--disable_tqdm true",
    "train_image_classifier.py": "--epochs 1 --width 8 --no-progress --probe-examples 200 --plot-classes 0",
}


def jobs() -> list[tuple[str, str, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("<!-- jobs:", 1)[1].split("<!-- end of jobs -->", 1)[0]
    rows = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[1].startswith("`python"):
            rows.append((cells[0], cells[1].strip("`"), cells[4].strip("`")))
    return rows


def runnable(command: str) -> str:
    """The shell line a user types, with this interpreter, and the short settings appended."""
    parts = []
    for part in command.split(" && "):
        words = part.split()
        script = Path(words[1]).name
        key = f"{script} {words[2]}" if script == "nmt.py" else script
        line = f"{sys.executable} {ROOT / words[1]} {' '.join(words[2:])} {SHORT[key]}"
        parts.append(line)
    return " && ".join(parts)


@pytest.mark.slow
@pytest.mark.parametrize("job,command,evaluate", jobs(), ids=[j[0].split(" (")[0].replace(" ", "-") for j in jobs()])
def test_readme_job_runs_and_its_output_evaluates(tmp_path, job, command, evaluate):
    if "nmt.py" in command or "demo.py" in command:
        pytest.importorskip("fairseq")
    done = subprocess.run(["bash", "-c", runnable(command)], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    line = evaluate.replace("labelreg-nlp ", f"{sys.executable} -m labelreg_nlp.cli ", 1)
    evaluated = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert re.search(r"\| msp \| [\d.]+ \|", evaluated.stdout), evaluated.stdout[-2000:]


def test_the_table_has_every_job():
    names = [j[0] for j in jobs()]
    assert len(names) == 6 and all(j[2].startswith("labelreg-nlp evaluate") for j in jobs())
