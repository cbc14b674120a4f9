"""Files saved by labelreg_nlp 0.1.0 keep loading: real fairseq-train checkpoints (the saved
config names every criterion option; the criterion's state loads strictly) and the Hugging Face
trainers' ``labelreg_state.pt``, each giving the loss that version computed from it.

The fixtures were written once by ``tests/fixtures/compat/make_fixtures.py`` with 0.1.0."""

from pathlib import Path

import pytest
import torch

from labelreg_nlp.integrations.hf import LabelRegArguments, LabelRegLoss
from tests.fixtures.compat.make_fixtures import FAIRSEQ, HF, HF_CLASSES, hf_batch

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "compat"
EXPECTED = torch.load(FIXTURES / "expected.pt")
STATEFUL = ("ols", "lspp", "lls")


def test_fixtures_come_from_the_first_release():
    assert EXPECTED["version"] == "0.1.0"


@pytest.mark.parametrize("method", sorted(HF))
def test_hf_labelreg_state_loads_and_gives_the_same_loss(method):
    loss = LabelRegLoss(LabelRegArguments(**HF[method]), num_classes=HF_CLASSES)
    fresh = LabelRegLoss(LabelRegArguments(**HF[method]), num_classes=HF_CLASSES)
    loss.load(FIXTURES / f"hf-{method}")
    loss.token_loss.eval()
    fresh.token_loss.eval()
    with torch.no_grad():
        value = float(loss.token_loss(*hf_batch()))
        before = float(fresh.token_loss(*hf_batch()))
    assert value == pytest.approx(EXPECTED["loss"][f"hf-{method}"], rel=1e-6)
    assert value != pytest.approx(before, rel=1e-4)  # the saved state (or schedule position) matters


@pytest.mark.parametrize("method", sorted(FAIRSEQ))
def test_fairseq_checkpoint_restores_criterion_and_its_state(method):
    pytest.importorskip("fairseq")
    from tests.fixtures.compat.fairseq_restore import restore, restored_loss

    checkpoint = FIXTURES / f"fairseq-{method}.pt"
    _, _, criterion, state = restore(checkpoint, FIXTURES / "data-bin")
    assert criterion.criterion_name() == state["cfg"]["criterion"]["_name"]
    if method in STATEFUL:
        saved = state["criterion"]
        for key, value in criterion.state_dict().items():
            old = key if key in saved else key.replace(".table.", ".", 1)  # OLS's buffers, now in ols.table
            assert torch.equal(value, saved[old]), key
    assert restored_loss(checkpoint, FIXTURES / "data-bin") == pytest.approx(EXPECTED["loss"][f"fairseq-{method}"],
                                                                             rel=1e-5)
