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
    ols.step_period()
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
