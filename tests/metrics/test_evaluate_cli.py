"""``labelreg-nlp evaluate``: runs found by folder or file, tables, figures, JSON, errors."""

import json

import pytest
import torch

from labelreg_nlp.cli import main
from labelreg_nlp.metrics import ScoredPredictions, aurc, save_logits


def _classifier_run(folder, seed, validation_name="validation"):
    gen = torch.Generator().manual_seed(seed)
    for split, n in ((validation_name, 120), ("test", 200)):
        labels = torch.randint(0, 4, (n,), generator=gen)
        logits = torch.randn(n, 4, generator=gen) * 2
        logits[torch.arange(n), labels] += 1.5
        save_logits(folder / f"{split}.npz", logits, labels)
    return folder


def test_tables_figures_and_json(tmp_path, capsys):
    logits_run = _classifier_run(tmp_path / "ls" / "predictions", 0)  # the fine-tuning scripts' layout
    tokens = tmp_path / "maxsup"  # token scores, fairseq's split names
    gen = torch.Generator().manual_seed(1)
    for split in ("valid", "test"):
        labels = torch.randint(0, 30, (3, 9), generator=gen)
        labels[:, 7:] = -100
        ScoredPredictions.from_logits(torch.randn(3, 9, 30, generator=gen), labels).save(tokens / f"{split}.pt")
    single = _classifier_run(tmp_path / "single", 2) / "test.npz"
    code = main(["evaluate", str(tmp_path / "ls"), f"tokens={tokens}", str(single), "--plots", str(tmp_path / "fig"),
                 "--json", str(tmp_path / "r.json"), "--risk", "0.1", "--coverage", "0.5"])
    out = capsys.readouterr().out
    assert code == 0
    assert "### ls: n 200," in out and "### tokens: n 21," in out and "### test: n 200," in out
    assert "(picked on validation)" in out and "(picked on test)" in out
    assert "| score | AURC | E-AURC | coverage at risk 10% | risk at coverage 50% |" in out
    for name in ("risk_coverage", "reliability", "confidence_hist"):
        assert (tmp_path / "fig" / f"{name}.png").stat().st_size > 10_000
    numbers = json.loads((tmp_path / "r.json").read_text())
    assert set(numbers) == {"ls", "tokens", "test"}
    test = ScoredPredictions.load(logits_run / "test.npz")
    assert numbers["ls"]["rows"][0]["score"] == "msp"
    assert numbers["ls"]["rows"][0]["aurc"] == pytest.approx(aurc(test.scores["msp"], test.correct))
    assert numbers["ls"]["accuracy"] == pytest.approx(float(test.correct.double().mean()))
    assert f"| ls | 200 | {numbers['ls']['accuracy']:.4f} |" in out  # the summary table


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip() == f"error: no prediction file or folder {str(tmp_path / 'nope')!r}"
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", str(tmp_path / "empty")]) == 2
    assert "holds no test.npz or test.pt" in capsys.readouterr().err
    run = _classifier_run(tmp_path / "a", 0)
    assert main(["evaluate", str(run), str(run)]) == 2
    assert "two runs are named alike (a, a): name them with NAME=PATH" in capsys.readouterr().err
    for bad, message in ((["--p-grid", "1,x"], "--p-grid must be comma-separated numbers, got '1,x'"),
                         (["--p-grid", "-1"], "--p-grid needs orders p >= 0"),
                         (["--risk", "2"], "--risk must be in [0, 1], got 2.0"),
                         (["--coverage", "0"], "--coverage must be in (0, 1], got 0.0"),
                         (["--bins", "0"], "--bins must be >= 1, got 0")):
        with pytest.raises(SystemExit) as exit_info:
            main(["evaluate", str(run), *bad])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_outputs_never_replace_what_is_read(tmp_path):
    import subprocess
    import sys

    import torch

    from labelreg_nlp.metrics import save_logits

    run = save_logits(tmp_path / "run" / "test.npz", torch.zeros(4, 3), torch.tensor([0, 1, 2, 1]))
    for extra in (["--json", str(run)], ["--json", str(tmp_path / "run" / "validation.npz")]):
        out = subprocess.run([sys.executable, "-m", "labelreg_nlp.cli", "evaluate", str(tmp_path / "run"), *extra],
                             capture_output=True, text=True)
        assert out.returncode == 2 and "is one of the prediction files read" in out.stderr
    assert run.stat().st_size > 0
