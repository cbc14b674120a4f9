"""The bad-input sweep: what a user gets wrong, at every entry point, gives a correct result or one
clear error naming the bad value, and never silently wrong numbers or lost state.

``docs/bad-inputs.md`` lists each row (input, entry point, behaviour) with the test that checks
it; rows already covered next to their module's other tests are named there too.
"""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from labelreg_nlp import OnlineLabelSmoothing, TokenLoss, label_smoothing_loss, maxsup_loss
from labelreg_nlp.losses.registry import METHODS

ROOT = Path(__file__).resolve().parents[1]
IGNORE = -100


def batch(k=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 5, k, generator=g) * 3
    target = torch.randint(0, k, (3, 5), generator=g)
    target[0, 3:] = IGNORE
    return logits, target


# ------------------------------------------------------------------ functional API and TokenLoss
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_logits_give_what_torch_gives(bad):
    """A NaN or +inf logit in a counted position makes the loss NaN (as torch's cross_entropy
    does, and as AMP's overflow checks expect); -inf is a valid masked class."""
    logits, target = batch()
    logits[1, 2, 4] = bad
    ours = label_smoothing_loss(logits, target, 0.1, ignore_index=IGNORE, reduction="none")
    ref = F.cross_entropy(logits.transpose(1, 2), target, label_smoothing=0.1, ignore_index=IGNORE, reduction="none")
    assert torch.equal(torch.isnan(ours), torch.isnan(ref))
    finite = torch.isfinite(ref)
    torch.testing.assert_close(ours[finite], ref[finite])
    assert bool(torch.isnan(maxsup_loss(logits, target, 0.1, ignore_index=IGNORE))) == bool(ref[1, 2].isnan())


@pytest.mark.parametrize("dtype,big", [(torch.float16, 65504.0), (torch.bfloat16, 1.0e30)])
def test_half_precision_logits_at_their_largest_values(dtype, big):
    """Large half-precision logits are computed in float32: finite, and equal to the float32
    computation on the same values (a float16 log-softmax would overflow). float16 at its maximum;
    bfloat16 up to where a row's sum still fits float32 (3.4e38 / K), as in torch's own losses."""
    logits, target = batch()
    logits = (logits / logits.abs().max() * big).to(dtype)
    for fn in (label_smoothing_loss, maxsup_loss):
        ours = fn(logits, target, 0.1, ignore_index=IGNORE)
        assert torch.isfinite(ours)
        torch.testing.assert_close(ours, fn(logits.float(), target, 0.1, ignore_index=IGNORE), rtol=0, atol=0)


@pytest.mark.parametrize("dense", [True, False])
def test_ols_never_accumulates_a_non_finite_row(dense):
    k = 6
    ols = OnlineLabelSmoothing(k, dense=dense) if dense else OnlineLabelSmoothing(k, topk=3)
    ols.train()
    logits = torch.tensor([[5.0, 0, 0, 0, 0, 0], [float("nan"), 0, 0, 0, 0, 0], [9.0, 0, 0, 0, 0, float("inf")]])
    ols(logits, torch.tensor([0, 0, 5]))
    assert ols.count.tolist() == [1, 0, 0, 0, 0, 0]  # only the finite, correct row
    ols.end_period()
    assert torch.isfinite(ols.soft_labels()).all()


@pytest.mark.parametrize("method", sorted(METHODS))
def test_token_loss_all_padding_is_zero_and_keeps_the_state(method):
    loss = TokenLoss(method, num_classes=11).train()
    logits = torch.randn(2, 4, 11, requires_grad=True)
    value = loss(logits, torch.full((2, 4), IGNORE))
    assert value.item() == 0.0
    (grad,) = torch.autograd.grad(value, logits)
    assert torch.all(grad == 0)
    if method == "ols":
        assert float(loss.ols.count.sum()) == 0


def test_token_loss_option_errors_name_the_value():
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\], got 1.5"):
        TokenLoss("ls", 1.5)
    with pytest.raises(ValueError, match="hard_weight must be a finite number >= 0, got nan"):
        TokenLoss("ols", num_classes=5, ols_hard_weight=float("nan"))
    with pytest.raises(ValueError, match=r"freeze_above must be in \[0, 1\], got 2.0"):
        TokenLoss("ols", num_classes=5, ols_freeze_above=2.0)
    with pytest.raises(TypeError, match="unknown option 'smoothing'"):
        TokenLoss("ls", smoothing=0.1)
    with pytest.raises(TypeError, match="target must hold integer class indices, got dtype torch.float32"):
        TokenLoss("maxsup")(torch.randn(2, 5), torch.tensor([1.0, 2.0]))


def test_token_loss_with_an_unset_schedule_prints():
    """A schedule whose horizon the trainer sets later must not break printing the loss (or a
    model that holds it) before training."""
    loss = TokenLoss("maxsup", 0.1, alpha_end=0.2)
    assert "alpha=0.1 -> 0.2 over unset steps" in repr(loss)
    loss.schedule_horizon = 3
    assert "over 3 steps" in repr(loss)


def test_a_state_of_another_method_or_size_is_refused():
    ols_state = TokenLoss("ols", num_classes=5).state_dict()
    with pytest.raises(RuntimeError, match="Unexpected key"):
        TokenLoss("maxsup", num_classes=5).load_state_dict(ols_state)
    with pytest.raises(ValueError, match="saved for num_classes=5, dense; this module has num_classes=6, dense"):
        TokenLoss("ols", num_classes=6).load_state_dict(ols_state)
    with pytest.raises(ValueError, match="saved for num_classes=5, dense; this module has num_classes=5, topk=2"):
        TokenLoss("ols", num_classes=5, ols_topk=2).load_state_dict(ols_state)


# ------------------------------------------------------------------ fairseq criteria
@pytest.mark.parametrize("name", ["ls_cross_entropy", "maxsup_cross_entropy", "ols_cross_entropy"])
def test_fairseq_all_padding_and_out_of_vocabulary_targets(name):
    pytest.importorskip("fairseq")
    from labelreg_nlp.integrations.fairseq_criteria import CRITERIA
    from tests.integrations.fairseq_toy import build, run

    task, model, sample = build(seed=21)
    criterion = CRITERIA[name](task, False).train()
    pad = task.target_dictionary.pad()
    padded = {**sample, "target": torch.full_like(sample["target"], pad)}
    loss, _, log, grads = run(criterion, model, padded)
    assert loss.item() == 0.0 and float(log["nll_loss"]) == 0.0
    assert all(torch.all(g == 0) for g in grads.values())
    if name == "ols_cross_entropy":
        assert float(criterion.ols.count.sum()) == 0
    vocab = len(task.target_dictionary)
    bad = {**sample, "target": sample["target"].masked_fill(sample["target"] != pad, vocab + 3)}
    with pytest.raises(ValueError, match=rf"target value {vocab + 3} is outside \[0, {vocab}\)"):
        criterion(model, bad)


# ------------------------------------------------------------------ Hugging Face
def test_hf_float_labels_and_a_resume_with_another_label_count(tmp_path):
    pytest.importorskip("transformers")
    from labelreg_nlp import LabelRegLoss, LabelRegTrainer
    from labelreg_nlp.integrations.hf import LabelRegArguments
    from tests.integrations.hf_toy import bert_classifier, class_examples, collate, training_args

    model = bert_classifier(num_labels=3)
    trainer = LabelRegTrainer(model=model, args=training_args(tmp_path), method="maxsup")
    batch = collate(class_examples(4))
    batch["labels"] = batch["labels"].float()
    with pytest.raises(TypeError, match="target must hold integer class indices, got dtype torch.float32"):
        trainer.compute_loss(model, batch)
    saved = LabelRegLoss(LabelRegArguments(method="ols"), num_classes=3)
    saved.save(tmp_path)
    resumed = LabelRegLoss(LabelRegArguments(method="ols"), num_classes=4)
    with pytest.raises(ValueError, match="saved for num_classes=3, dense; this module has num_classes=4, dense"):
        resumed.load(tmp_path)
    with pytest.raises(ValueError, match=r"alpha_end must be in \[0, 1\], got 1.2"):
        LabelRegArguments(method="maxsup", alpha_end=1.2)


def test_hf_learned_table_options(tmp_path):
    pytest.importorskip("transformers")
    from labelreg_nlp import LabelRegTrainer
    from labelreg_nlp.integrations.hf import LabelRegArguments
    from tests.integrations.hf_toy import bert_classifier, training_args

    with pytest.raises(ValueError, match="labelreg_lr must be a finite number >= 0, got -1.0"):
        LabelRegArguments(method="lls", labelreg_lr=-1.0)
    with pytest.raises(ValueError, match="labelreg_weight_decay must be a finite number >= 0, got nan"):
        LabelRegArguments(method="lls", labelreg_weight_decay=float("nan"))
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\) for LS\+\+"):
        LabelRegTrainer(model=bert_classifier(), args=training_args(tmp_path), method="lspp", alpha=0.0)
    with pytest.raises(ValueError, match="rank must be an integer >= 1, got 0"):
        LabelRegTrainer(model=bert_classifier(), args=training_args(tmp_path), method="lls", lls_rank=0)


# ------------------------------------------------------------------ scripts
def _script(name, *args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args], capture_output=True, text=True,
                          timeout=600)


def test_text_classification_bad_options_and_labels_are_one_line_errors(tmp_path):
    pytest.importorskip("transformers")
    alpha = _script("finetune_text_classification.py", "--alpha", "1.5", "--output_dir", str(tmp_path))
    assert alpha.returncode == 2 and alpha.stderr.strip() == "error: alpha must be in [0, 1], got 1.5"
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    train.write_text("text,label\n" + "".join(f"review {i},{'pos' if i % 2 else 'neg'}\n" for i in range(10)))
    test.write_text("text,label\ngood,positive\nbad,neg\n")
    unknown = _script("finetune_text_classification.py", "--dataset", str(train), "--test_file", str(test),
                      "--output_dir", str(tmp_path))
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == ("error: the test split has label 'positive', which the training data does "
                                      "not have (labels: neg, pos)")
    test.write_text("text,label\ngood,pos\nbad,\n")
    empty = _script("finetune_text_classification.py", "--dataset", str(train), "--test_file", str(test),
                    "--output_dir", str(tmp_path))
    assert empty.returncode == 2 and empty.stderr.strip() == "error: test example 1 has an empty label"


def test_nmt_bad_arguments_are_one_line_errors(tmp_path):
    unknown = _script("nmt.py", "train", "--criterion", "focal", "--data", str(tmp_path))
    assert unknown.returncode == 2 and "invalid choice: 'focal'" in unknown.stderr
    no_data = _script("nmt.py", "train", "--criterion", "ls", "--data", str(tmp_path / "none"))
    assert no_data.returncode == 2
    assert no_data.stderr.strip() == f"error: --data must be a folder made by 'prepare', got '{tmp_path / 'none'}'"
    (tmp_path / "a.de").write_text("eins\nzwei\n")
    (tmp_path / "a.en").write_text("one\n")
    misaligned = _script("nmt.py", "prepare", "--out", str(tmp_path / "out"), "--train-src", str(tmp_path / "a.de"),
                         "--train-tgt", str(tmp_path / "a.en"), "--test-src", str(tmp_path / "a.de"),
                         "--test-tgt", str(tmp_path / "a.en"))
    assert misaligned.returncode == 2
    assert misaligned.stderr.strip() == f"error: {tmp_path / 'a.de'} has 2 lines but {tmp_path / 'a.en'} has 1"


# ------------------------------------------------------------------ argument types, masked classes
@pytest.mark.parametrize("method", tuple(METHODS))
def test_arguments_of_the_wrong_type_are_named(method):
    import numpy as np

    logits, target = batch(k=5)
    loss = TokenLoss(method, 0.1 if method != "none" else 0.0, num_classes=5)
    for args, message in (((None, target), "logits must be a torch.Tensor, got NoneType"),
                          ((logits.numpy(), target), "logits must be a torch.Tensor, got numpy.ndarray (convert it "
                                                     "with torch.from_numpy)"),
                          ((logits, target.tolist()), "target must be a torch.Tensor, got list")):
        with pytest.raises(TypeError) as error:
            loss(*args)
        assert str(error.value) == message
    for fn in (label_smoothing_loss, maxsup_loss):
        with pytest.raises(TypeError, match="alpha must be a number in \\[0, 1\\], got NoneType None"):
            fn(logits, target, None)
        with pytest.raises(TypeError, match="target must be a torch.Tensor, got numpy.ndarray"):
            fn(logits, np.zeros((3, 5), dtype=np.int64), 0.1)
        with pytest.raises(TypeError, match="ignore_index must be an int or None, got float -100.0"):
            fn(logits, target, 0.1, ignore_index=-100.0)
    assert float(label_smoothing_loss(logits, target, np.float64(0.1), ignore_index=IGNORE)) == pytest.approx(
        float(label_smoothing_loss(logits, target, 0.1, ignore_index=IGNORE)))


def test_masked_classes_give_what_torch_gives():
    """-inf marks a masked class: ``none`` is torch's cross-entropy exactly (finite); a smoothing
    method that puts target mass on a masked class gives +inf with finite logit gradients, as
    torch's ``label_smoothing``; a masked target gives +inf, never NaN."""
    logits, target = batch(k=6)
    logits[..., 2] = -float("inf")
    target[target == 2] = 3
    z = logits.clone().requires_grad_()
    ce = F.cross_entropy(z.transpose(1, 2), target, ignore_index=IGNORE)
    ours = TokenLoss("none", 0.0)(z, target)
    assert torch.isfinite(ours) and torch.equal(ours, ce) or torch.allclose(ours, ce, rtol=1e-6, atol=0)
    for method in METHODS:
        loss = TokenLoss(method, 0.1, num_classes=6)
        x = logits.clone().requires_grad_()
        value = loss(x, target)
        (grad,) = torch.autograd.grad(value, x)
        assert (torch.isfinite(value) if method == "none" else torch.isposinf(value)), (method, value)
        assert bool(torch.isfinite(grad).all()), method
    masked_target = target.clone()
    masked_target[1, 1] = 2
    for method in METHODS:
        assert torch.isposinf(TokenLoss(method, 0.1, num_classes=6)(logits, masked_target)), method


# ------------------------------------------------------------------ files
def test_prediction_files_that_cannot_be_read_are_one_line(tmp_path):
    import argparse

    import numpy as np

    from labelreg_nlp.metrics import save_logits

    good = save_logits(tmp_path / "good" / "test.npz", torch.zeros(4, 3), torch.tensor([0, 1, 2, 1]))
    (tmp_path / "truncated").mkdir()
    (tmp_path / "truncated" / "test.npz").write_bytes(good.read_bytes()[:200])
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "test.npz").write_text("logits,labels\n")
    (tmp_path / "objects").mkdir()
    np.savez(tmp_path / "objects" / "test.npz", logits=np.array([{"a": 1}], dtype=object), labels=np.zeros(1))
    (tmp_path / "pickled").mkdir()
    torch.save({"logits": torch.zeros(2, 2), "args": argparse.Namespace(a=1)}, tmp_path / "pickled" / "test.pt")
    expected = {"truncated": "test.npz is not a readable .npz (truncated or damaged",
                "text": "test.npz is not a .npz archive (no zip header",
                "objects": "holds Python objects (arrays of dtype object), which are not read",
                "pickled": "holds objects that only unsafe unpickling could load (Unsupported global: GLOBAL argparse.Namespace)"}
    for name, message in expected.items():
        out = subprocess.run([sys.executable, "-m", "labelreg_nlp.cli", "evaluate", str(tmp_path / name)],
                             capture_output=True, text=True)
        assert out.returncode == 2 and message in out.stderr, (name, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and "weights_only=False" not in out.stderr, out.stderr


def test_data_files_as_spreadsheets_and_labelling_tools_export_them(tmp_path):
    """A byte-order mark, semicolons, a row with a cell too many, JSON Lines that are not objects,
    multi-label rows, labels with spaces or written as 1.0: read as the user sees them, or one line
    naming the file and the row."""
    import importlib.util

    from labelreg_nlp.experiments.records import DataError, read_records

    (tmp_path / "excel.csv").write_text("\ufefftext;label\nein guter Film;pos\n\"a; b\";neg\n", encoding="utf-8")
    assert read_records(tmp_path / "excel.csv") == [{"text": "ein guter Film", "label": "pos"},
                                                    {"text": "a; b", "label": "neg"}]
    (tmp_path / "shifted.csv").write_text("text,label\na good film, really,pos\n")
    with pytest.raises(DataError, match="shifted.csv: row 2 has 3 cells, the header 2"):
        read_records(tmp_path / "shifted.csv")
    (tmp_path / "lines.jsonl").write_text('{"text": "a", "label": 1}\n["b", 0]\n')
    with pytest.raises(DataError, match="lines.jsonl:2: expected a JSON object per line, got list"):
        read_records(tmp_path / "lines.jsonl")
    (tmp_path / "latin1.csv").write_bytes("text,label\nSch\xf6n,pos\n".encode("latin-1"))
    with pytest.raises(DataError, match="latin1.csv: not UTF-8 text"):
        read_records(tmp_path / "latin1.csv")

    spec = importlib.util.spec_from_file_location("tc", ROOT / "scripts" / "finetune_text_classification.py")
    tc = importlib.util.module_from_spec(spec)
    sys.modules["tc"] = tc  # dataclasses look their module up
    spec.loader.exec_module(tc)
    splits = {"train": [{"text": "a", "label": " pos"}, {"text": "b", "label": "neg "}],
              "test": [{"text": "c", "label": "pos"}]}
    assert tc.label_ids(splits) == ["neg", "pos"] and splits["test"][0]["label"] == 1
    floats = {"train": [{"text": "a", "label": 1.0}, {"text": "b", "label": 0.0}], "test": [{"text": "c", "label": 1}]}
    assert tc.label_ids(floats) == ["0", "1"]
    multi = {"train": [{"text": "a", "label": ["pos", "funny"]}, {"text": "b", "label": "neg"}], "test": []}
    with pytest.raises(DataError, match=r"train example 0 has the label \['pos', 'funny'\]: multi-label rows are not"):
        tc.label_ids(multi)
