"""ls_cross_entropy / maxsup_cross_entropy against fairseq's own label_smoothed_cross_entropy."""

import math

import pytest
import torch

pytest.importorskip("fairseq")

from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion  # noqa: E402

from labelreg_nlp import label_smoothing_loss, maxsup_parts  # noqa: E402
from labelreg_nlp.integrations.fairseq_criteria import LSCrossEntropyCriterion, MaxSupCrossEntropyCriterion  # noqa: E402
from tests.integrations.fairseq_toy import build, reduced, run  # noqa: E402


def assert_same(a, b, what):
    torch.testing.assert_close(torch.as_tensor(a).double(), torch.as_tensor(b).double(), rtol=1e-5, atol=1e-5,
                               msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.25])
@pytest.mark.parametrize("sentence_avg", [False, True])
@pytest.mark.parametrize("ignore_prefix_size", [0, 1])
def test_ls_cross_entropy_reproduces_fairseq(eps, sentence_avg, ignore_prefix_size):
    task, model, sample = build(seed=int(eps * 100) + ignore_prefix_size)
    theirs = LabelSmoothedCrossEntropyCriterion(task, sentence_avg, eps, ignore_prefix_size, report_accuracy=True)
    ours = LSCrossEntropyCriterion(task, sentence_avg, eps, ignore_prefix_size=ignore_prefix_size,
                                   report_accuracy=True)
    l1, s1, log1, g1 = run(theirs, model, sample)
    l2, s2, log2, g2 = run(ours, model, sample)
    assert s1 == s2
    assert_same(l2, l1, "loss")
    assert set(log1) == set(log2)
    for key in log1:
        assert_same(log2[key], log1[key], key)
    assert g1.keys() == g2.keys()
    for name in g1:
        assert_same(g2[name], g1[name], f"grad {name}")
    m1, m2 = reduced(LabelSmoothedCrossEntropyCriterion, [log1]), reduced(LSCrossEntropyCriterion, [log2])
    assert set(m1) == set(m2) >= {"loss", "nll_loss", "ppl", "accuracy"}
    for key in m1:
        assert_same(m2[key], m1[key], f"logged {key}")


def test_ls_cross_entropy_unreduced_matches_fairseq():
    task, model, sample = build(seed=4)
    theirs = LabelSmoothedCrossEntropyCriterion(task, False, 0.1)
    ours = LSCrossEntropyCriterion(task, False, 0.1)
    l1, _, _, g1 = run(theirs, model, sample, reduce=False)
    l2, _, _, g2 = run(ours, model, sample, reduce=False)
    assert_same(l2.view(-1), l1.view(-1), "per-token loss")
    for name in g1:
        assert_same(g2[name], g1[name], f"grad {name}")


def test_logging_outputs_sum_like_fairseq_across_workers():
    task, model, sample = build(seed=5)
    _, _, log_a, _ = run(LSCrossEntropyCriterion(task, False, 0.1, report_accuracy=True), model, sample)
    task2, model2, sample2 = build(seed=6)
    _, _, log_b, _ = run(LSCrossEntropyCriterion(task2, False, 0.1, report_accuracy=True), model2, sample2)
    summed = {k: log_a[k] + log_b[k] for k in log_a}
    assert LSCrossEntropyCriterion.logging_outputs_can_be_summed()
    m = reduced(LSCrossEntropyCriterion, [summed])
    total = log_a["ntokens"] + log_b["ntokens"]
    assert m["nll_loss"] == pytest.approx(float(log_a["nll_loss"] + log_b["nll_loss"]) / total / math.log(2), abs=1e-3)
    assert m["accuracy"] == pytest.approx(round(100 * (log_a["n_correct"] + log_b["n_correct"]) / total, 3))


def test_uniform_convention_in_fairseq_matches_core():
    task, model, sample = build(seed=7)
    crit = LSCrossEntropyCriterion(task, False, 0.2, smoothing_convention="uniform")
    loss, _, _, _ = run(crit, model, sample)
    logits = model(**sample["net_input"])[0]
    ref = label_smoothing_loss(logits, sample["target"], 0.2, ignore_index=task.target_dictionary.pad(),
                               reduction="sum")
    assert_same(loss, ref, "uniform loss")
    fairseq_conv, _, _, _ = run(LSCrossEntropyCriterion(task, False, 0.2), model, sample)
    assert not torch.allclose(loss, fairseq_conv)  # the two conventions really differ


def test_maxsup_criterion_loss_logging_and_padding():
    task, model, sample = build(seed=8)
    crit = MaxSupCrossEntropyCriterion(task, False, maxsup_alpha=0.1, report_accuracy=True)
    loss, sample_size, log, _ = run(crit, model, sample)
    pad = task.target_dictionary.pad()
    logits = model(**sample["net_input"])[0].detach().double()
    target = sample["target"]
    mask = target != pad
    ref_nll = torch.nn.functional.cross_entropy(logits[mask], target[mask], reduction="sum")
    ref_gap = (logits.max(-1).values - logits.mean(-1))[mask].sum()
    assert_same(loss, ref_nll + 0.1 * ref_gap, "maxsup loss")
    assert sample_size == sample["ntokens"] == int(mask.sum())
    assert_same(log["nll_loss"], ref_nll, "nll")
    assert_same(log["maxsup"], ref_gap, "maxsup term")
    m = reduced(MaxSupCrossEntropyCriterion, [log])
    assert m["alpha"] == pytest.approx(0.1)
    assert m["maxsup"] == pytest.approx(float(ref_gap) / sample_size / math.log(2), abs=1e-3)
    # logged identity: loss = nll_loss + alpha * maxsup (all base 2, per token)
    assert m["loss"] == pytest.approx(m["nll_loss"] + 0.1 * m["maxsup"], abs=2e-3)
    assert {"ppl", "accuracy"} <= set(m)


@pytest.mark.parametrize("unit", ["epoch", "update"])
def test_maxsup_schedule_follows_fairseq_progress(unit):
    task, model, sample = build(seed=9)
    crit = MaxSupCrossEntropyCriterion(task, False, maxsup_alpha=0.1, maxsup_alpha_end=0.2,
                                       maxsup_schedule_unit=unit, max_epoch=5, max_update=11)
    assert crit.alpha == pytest.approx(0.1)
    if unit == "epoch":
        task.begin_epoch(3, model)  # what fairseq's Trainer.begin_epoch calls
        assert crit.alpha == pytest.approx(0.1 + 0.1 * 2 / 4)
        task.begin_epoch(5, model)
    else:
        from fairseq.optim.adam import FairseqAdam, FairseqAdamConfig
        from omegaconf import OmegaConf

        cfg = OmegaConf.structured(FairseqAdamConfig(lr=[1e-3], tpu=False))
        opt = FairseqAdam(cfg, list(model.parameters()))
        task.train_step(sample, model, crit, opt, 10)
    assert crit.alpha == pytest.approx(0.2)
    _, _, log, _ = run(crit, model, sample)
    assert reduced(MaxSupCrossEntropyCriterion, [log])["alpha"] == pytest.approx(0.2)


def test_criterion_option_errors():
    task, _, _ = build()
    with pytest.raises(ValueError, match=r"--maxsup-alpha must be in \[0, 1\], got 1.5"):
        MaxSupCrossEntropyCriterion(task, False, maxsup_alpha=1.5)
    with pytest.raises(ValueError, match=r"--maxsup-alpha-end must be in \[0, 1\], got -0.2"):
        MaxSupCrossEntropyCriterion(task, False, maxsup_alpha=0.1, maxsup_alpha_end=-0.2, max_epoch=3)
    with pytest.raises(ValueError, match="--maxsup-alpha-end=0.2 needs a horizon"):
        MaxSupCrossEntropyCriterion(task, False, maxsup_alpha=0.1, maxsup_alpha_end=0.2)
    with pytest.raises(ValueError, match=r"--label-smoothing must be in \[0, 1\], got 2.0"):
        LSCrossEntropyCriterion(task, False, 2.0)
    with pytest.raises(ValueError, match="--ignore-prefix-size must be >= 0"):
        LSCrossEntropyCriterion(task, False, 0.1, ignore_prefix_size=-1)


def test_maxsup_parts_is_what_the_criterion_uses():
    task, model, sample = build(seed=10)
    crit = MaxSupCrossEntropyCriterion(task, False, maxsup_alpha=0.3)
    loss, _, _, _ = run(crit, model, sample)
    logits = model(**sample["net_input"])[0]
    parts = maxsup_parts(logits, sample["target"], 0.3, ignore_index=task.target_dictionary.pad())
    assert_same(loss, parts.loss, "loss")


def test_ols_criterion_loss_periods_logging_and_state():
    from labelreg_nlp.integrations.fairseq_criteria import OLSCrossEntropyCriterion
    from labelreg_nlp.losses.online import OnlineLabelSmoothing

    task, model, sample = build(seed=11)
    crit = OLSCrossEntropyCriterion(task, False, ols_topk=8, report_accuracy=True)
    ref = OnlineLabelSmoothing(len(task.target_dictionary), topk=8)
    pad = task.target_dictionary.pad()
    task.begin_epoch(1, model)
    crit.train()
    loss, _, log, _ = run(crit, model, sample)
    logits = model(**sample["net_input"])[0]
    assert_same(loss, ref.train()(logits, sample["target"], ignore_index=pad, reduction="sum"), "ols loss")
    assert torch.equal(crit.ols.count, ref.count)
    m = reduced(OLSCrossEntropyCriterion, [log])
    assert m["ols_target_mass"] == pytest.approx(1 / len(task.target_dictionary), abs=1e-4)
    assert m["ols_periods"] == 0 and {"ols_soft", "accuracy", "ppl"} <= set(m)
    crit.eval()
    run(crit, model, sample)  # evaluation never changes the state
    assert torch.equal(crit.ols.count, ref.count)
    task.begin_epoch(2, model)  # epoch boundary ends the period
    ref.end_period()
    assert int(crit.ols.periods) == 1 and torch.equal(crit.ols.soft_labels(), ref.soft_labels())
    task.begin_epoch(2, model)  # a repeated call (resume) does not end another period
    assert int(crit.ols.periods) == 1
    state = crit.state_dict()
    assert {"ols.table.soft_val", "ols.table.acc_val", "current_epoch", "checkpoint_anchor"} <= set(state)
    assert len(list(crit.parameters())) == 1  # fairseq checkpoints criteria that have a parameter


def test_ols_criterion_update_periods_and_errors():
    from labelreg_nlp.integrations.fairseq_criteria import OLSCrossEntropyCriterion

    task, model, sample = build(seed=12)
    crit = OLSCrossEntropyCriterion(task, False, ols_period_updates=2, ols_dense=True)
    for update in (0, 1, 2, 2, 3, 4):
        crit.on_update(update)
    assert int(crit.ols.periods) == 2
    with pytest.raises(ValueError, match="--ols-period-updates must be >= 0, got -1"):
        OLSCrossEntropyCriterion(task, False, ols_period_updates=-1)
    with pytest.raises(ValueError, match="--ols-soft-weight must be a finite number >= 0, got -0.5"):
        OLSCrossEntropyCriterion(task, False, ols_soft_weight=-0.5)
    with pytest.raises(ValueError, match=r"topk must be in \[1, num_classes=40\], got 41"):
        OLSCrossEntropyCriterion(task, False, ols_topk=41)


@pytest.mark.parametrize("name", ["lspp", "lls"])
def test_learned_table_criteria_loss_gradients_logging_and_errors(name):
    from labelreg_nlp.integrations.fairseq_criteria import CRITERIA
    from labelreg_nlp.losses import LabelSmoothingPlusPlus, LearnableLabelSmoothing

    task, model, sample = build(seed=12)
    cls = CRITERIA[f"{name}_cross_entropy"]
    crit = cls(task, False, **{f"{name}_alpha": 0.2}, report_accuracy=True).train()
    k = len(task.target_dictionary)
    ref = (LabelSmoothingPlusPlus if name == "lspp" else LearnableLabelSmoothing)(k, alpha=0.2)
    with torch.no_grad():
        weight = torch.randn_like(ref.table.weight)
        ref.table.weight.copy_(weight)
        crit.method_loss.table.weight.copy_(weight)
    assert [p is crit.method_loss.table.weight for p in crit.parameters()] == [True]  # no anchor: a real parameter
    loss, sample_size, log, grads = run(crit, model, sample)
    pad = task.target_dictionary.pad()
    logits = model(**sample["net_input"])[0].detach().requires_grad_()
    expected = ref(logits, sample["target"], ignore_index=pad, reduction="sum")
    expected.backward()
    assert_same(loss, expected.detach(), f"{name} loss")
    assert_same(crit.method_loss.table.weight.grad, ref.table.weight.grad, "table gradient")
    m = reduced(cls, [log])
    assert {f"{name}_reverse", f"{name}_entropy", f"{name}_top_mass", "accuracy"} <= set(m)
    assert 0 < m[f"{name}_top_mass"] < 1
    with pytest.raises(ValueError, match="alpha must be in"):
        cls(task, False, **{f"{name}_alpha": 0.0})
    with pytest.raises(ValueError, match="rank must be an integer >= 1, got -2"):
        cls(task, False, **{f"{name}_rank": -2})
    assert isinstance(cls(task, False, **{f"{name}_rank": 4}).method_loss.table.rank, int)


def _fused_and_plain(name, tied, **options):
    """(plain, fused) runs of criterion ``name`` on the same model and batch: loss, sample_size,
    logging output, gradients of the model and of the criterion's own parameters."""
    from labelreg_nlp.integrations.fairseq_criteria import CRITERIA

    extra = ("--share-decoder-input-output-embed",) if tied else ()
    task, model, sample = build(seed=13, extra_args=extra)
    out = []
    for fused in (False, True):
        crit = CRITERIA[name](task, False, report_accuracy=True, fused_output_layer=fused, **options).train()
        torch.manual_seed(0)
        with torch.no_grad():
            for p in crit.method_loss.parameters():
                p.copy_(torch.randn_like(p))
        loss, sample_size, log, grads = run(crit, model, sample)
        grads.update({f"criterion.{n}": p.grad.clone() for n, p in crit.named_parameters() if p.grad is not None})
        out.append((loss, sample_size, log, grads))
    return out


@pytest.mark.parametrize("tied", [False, True], ids=["separate", "tied"])
@pytest.mark.parametrize("name,options", [
    ("ls_cross_entropy", {"label_smoothing": 0.1}), ("maxsup_cross_entropy", {"maxsup_alpha": 0.1}),
    ("ols_cross_entropy", {"ols_topk": 8}), ("lspp_cross_entropy", {}), ("lls_cross_entropy", {}),
])
def test_fused_output_layer_equals_the_plain_criterion(name, options, tied):
    """--fused-output-layer: the decoder's features and output projection instead of its logits;
    same loss, sample size, every logged value and every gradient (output projection included)."""
    plain, fused = _fused_and_plain(name, tied, **options)
    assert_same(fused[0], plain[0], "loss")
    assert fused[1] == plain[1]
    assert set(fused[2]) == set(plain[2])
    for key in plain[2]:
        assert_same(fused[2][key], plain[2][key], key)
    assert fused[3].keys() == plain[3].keys()
    # tied: the projection is decoder.embed_tokens.weight (named_parameters lists a shared one once)
    assert ("decoder.output_projection.weight" in plain[3]) != tied and "decoder.embed_tokens.weight" in plain[3]
    for key in plain[3]:
        assert_same(fused[3][key], plain[3][key], f"grad {key}")


def test_fused_output_layer_falls_back_with_a_reason(caplog):
    """A decoder whose output layer is not a plain linear map: one warning naming why, then the usual path."""
    task, model, sample = build(seed=14)
    model.decoder.output_projection = torch.nn.Sequential(model.decoder.output_projection)
    crit = LSCrossEntropyCriterion(task, False, 0.1, fused_output_layer=True)
    with caplog.at_level("WARNING"):
        loss, _, _, _ = run(crit, model, sample)
        run(crit, model, sample)
    warnings = [r.getMessage() for r in caplog.records if "--fused-output-layer" in r.getMessage()]
    assert warnings == ["--fused-output-layer: TransformerDecoderBase has no plain nn.Linear output_projection; "
                        "computing the full logits instead"]
    expected, _, _, _ = run(LSCrossEntropyCriterion(task, False, 0.1), model, sample)
    assert_same(loss, expected, "fallback loss")


def test_no_validate_args_reaches_the_method():
    task, _, _ = build()
    assert MaxSupCrossEntropyCriterion(task, False, no_validate_args=True).method_loss.validate_args is False
    assert MaxSupCrossEntropyCriterion(task, False).method_loss.validate_args is True


def test_a_checkpoint_of_another_criterion_starts_the_state_fresh(caplog):
    """fairseq hands the criterion ``state["criterion"]``: None (a criterion without parameters),
    another method's state, or its own. Only its own is loaded; a wrong size is still an error."""
    import logging

    from labelreg_nlp.integrations.fairseq_criteria import CRITERIA

    task, _model, _sample = build()
    for name in ("ols_cross_entropy", "lspp_cross_entropy", "lls_cross_entropy"):
        criterion = CRITERIA[name](task, False)
        before = {k: v.clone() for k, v in criterion.state_dict().items()}
        with caplog.at_level(logging.INFO):
            criterion.load_state_dict(None, strict=True)
            other = "lls_cross_entropy" if name != "lls_cross_entropy" else "lspp_cross_entropy"
            criterion.load_state_dict(CRITERIA[other](task, False).state_dict(), strict=True)
        assert caplog.text.count(f"starting the {criterion.method} state fresh") == 2
        caplog.clear()
        for key, value in criterion.state_dict().items():
            assert torch.equal(value, before[key]), key
        own = {k: v + 1 if v.is_floating_point() and "shape_info" not in k else v for k, v in before.items()}
        criterion.load_state_dict(own, strict=True)
        assert all(torch.equal(criterion.state_dict()[k], v) for k, v in own.items())
        wrong = {k: torch.cat([v, v]) if v.dim() and "shape_info" not in k else v for k, v in before.items()}
        with pytest.raises((RuntimeError, ValueError), match="size mismatch|was saved"):
            criterion.load_state_dict(wrong, strict=True)
