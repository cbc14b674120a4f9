"""labelreg-nlp neighbours: learned soft labels read back from checkpoints and named."""

import subprocess
import sys

import pytest
import torch

from labelreg_nlp.analysis.learned_labels import (
    fairseq_dictionary,
    load_learned_labels,
    neighbour_table,
    pick_classes,
)
from labelreg_nlp.losses import TokenLoss


def _hf_state(path, method, k, weight=None, **options):
    loss = TokenLoss(method, num_classes=k, **options)
    module = loss.method_loss
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(0)) if weight is None else weight)
    torch.save({"method": method, "progress": 0, "state": loss.state_dict()}, path / "labelreg_state.pt")
    return module


def neighbours(*args):
    return subprocess.run([sys.executable, "-m", "labelreg_nlp.cli", "neighbours", *map(str, args)],
                          capture_output=True, text=True)


@pytest.mark.parametrize("method,options", [("lls", {}), ("lspp", {"lspp_rank": 3}), ("ols", {"ols_topk": 2})])
def test_states_come_back_as_the_same_distributions(tmp_path, method, options):
    module = _hf_state(tmp_path, method, 6, **options)
    labels = load_learned_labels(tmp_path)
    assert labels.method == method and labels.names == [str(i) for i in range(6)]
    classes = torch.arange(6)
    expected = module.soft_labels() if method == "ols" else module.learned_distribution(classes)
    torch.testing.assert_close(labels.rows(classes), expected)


def test_table_names_classes_and_orders_neighbours_by_mass(tmp_path):
    (tmp_path / "config.json").write_text('{"id2label": {"0": "cat", "1": "dog", "2": "car", "3": "bus"}}')
    _hf_state(tmp_path, "lspp", 4, weight=torch.tensor([[2.0, 0.5, 0.0], [3.0, 0.0, 0.5], [0.0, 0.5, 1.0],
                                                         [0.0, 0.5, 2.0]]))
    labels = load_learned_labels(tmp_path)
    table = neighbour_table(labels, pick_classes(labels, 10), top=2)
    lines = table.splitlines()
    assert lines[0] == "| class | own mass | top-2 neighbours (mass) |" and len(lines) == 6
    c_cat = torch.softmax(torch.tensor([2.0, 0.5, 0.0]), 0)  # over dog, car, bus
    assert lines[2] == f"| `cat` | 0 | `dog` {c_cat[0]:.3g}, `car` {c_cat[1]:.3g} |"
    assert lines[3].startswith("| `dog` | 0 | `cat` ")
    assert lines[5].startswith("| `bus` | 0 | `car` ")


def test_cli_prints_the_table_and_draws_a_heat_map(tmp_path):
    _hf_state(tmp_path, "lls", 5)
    png = tmp_path / "map.png"
    out = neighbours(tmp_path, "--names", "a,b,c,d,e", "--tokens", "b,d", "--top", "3", "--heatmap", png)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "lls: 5 classes"
    assert "| `b` |" in out.stdout and "| `d` |" in out.stdout and "| `a` |" not in out.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_errors_name_the_problem(tmp_path):
    missing = neighbours(tmp_path / "nothing")
    assert missing.returncode == 2 and missing.stderr.strip() == f"error: checkpoint not found: {tmp_path / 'nothing'}"
    _hf_state(tmp_path, "lls", 5)
    assert "no class named 'zebra'" in neighbours(tmp_path, "--tokens", "zebra").stderr
    assert "3 class names for a table of 5 classes" in neighbours(tmp_path, "--names", "a,b,c").stderr
    torch.save({"method": "maxsup", "progress": 0, "state": {}}, tmp_path / "labelreg_state.pt")
    assert neighbours(tmp_path).stderr.strip() == "error: no learned maxsup state among []"
    # files of the wrong kind: one line naming the file, never a KeyError or an unpickling traceback
    cases = {"text.pt": b"just text", "truncated.pt": (tmp_path / "labelreg_state.pt").read_bytes()[:40]}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    torch.save({"model": {}}, tmp_path / "other.pt")
    torch.save({"method": "ols", "progress": 0, "state": {"ols.soft": torch.zeros(2, 2)}}, tmp_path / "partial.pt")
    expected = {"text.pt": "is not a checkpoint torch can read", "truncated.pt": "is not a checkpoint torch can read",
                "tensor.pt": "holds a Tensor, not a checkpoint", "other.pt": "is neither a fairseq checkpoint",
                "partial.pt": "the ols state is incomplete or of another version"}
    for name, message in expected.items():
        out = neighbours(tmp_path / name)
        assert out.returncode == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_fairseq_dictionary_symbols_in_index_order(tmp_path):
    (tmp_path / "dict.txt").write_text("the 120\n, 80\nHaus 7 #fairseq:overwrite\n")
    assert fairseq_dictionary(tmp_path / "dict.txt") == ["<s>", "<pad>", "</s>", "<unk>", "the", ",", "Haus"]
