"""fairseq's own label-smoothing test cases (its ``tests/test_label_smoothing.py``), pointed at our
criteria, on a decoder whose output is probabilities, not logits.

As in fairseq's test, the model's decoder returns fixed probabilities per step and its
``get_normalized_probs`` takes their log: a criterion that read ``net_output[0]`` as logits would
compute the wrong loss. The cases: the logged nll equals fairseq's ``cross_entropy`` loss; a padded
batch costs the sum of its sentences; ``reduce=False`` sums to the reduced loss (same shape as
fairseq's); smoothing 0 equals ``cross_entropy``. They apply to every criterion of the package
with its weight at the value that makes it plain cross-entropy where the case asks for it.
"""

import argparse
import copy

import pytest
import torch

pytest.importorskip("fairseq")

from fairseq.criterions.cross_entropy import CrossEntropyCriterion  # noqa: E402
from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion  # noqa: E402
from fairseq.data import Dictionary, LanguagePairDataset  # noqa: E402
from fairseq.models import FairseqDecoder, FairseqEncoder, FairseqEncoderDecoderModel  # noqa: E402
from fairseq.tasks.translation import TranslationConfig, TranslationTask  # noqa: E402

from labelreg_nlp.integrations.fairseq_criteria import (  # noqa: E402
    CRITERIA,
    LSCrossEntropyCriterion,
    log_softmax_of_output,
)

PAD, EOS, UNK, W1, W2, W3 = 1, 2, 3, 4, 5, 6
# per decoding step:  bos   pad   eos  unk   w1   w2   w3
PROBS = torch.tensor([[0.05, 0.05, 0.1, 0.05, 0.3, 0.4, 0.05],
                      [0.05, 0.10, 0.2, 0.05, 0.2, 0.3, 0.10],
                      [0.05, 0.15, 0.3, 0.05, 0.1, 0.2, 0.15]])
DATA = [  # the first sentence is padded in a batch of both
    {"source": torch.tensor([W1, EOS]), "target": torch.tensor([W1, EOS])},
    {"source": torch.tensor([W1, EOS]), "target": torch.tensor([W1, W1, EOS])},
]


class NullEncoder(FairseqEncoder):
    def forward(self, src_tokens, src_lengths=None, **kwargs):
        return {"src_tokens": src_tokens}


class ProbabilityDecoder(FairseqDecoder):
    """Outputs the fixed probabilities ``probs[b, t]``; normalizes by taking their log."""

    def __init__(self, dictionary, probs):
        super().__init__(dictionary)
        self.probs = probs

    def forward(self, prev_output_tokens, encoder_out=None, **kwargs):
        batch, steps = prev_output_tokens.shape
        return self.probs[:batch, :steps], {"attn": [None]}

    def get_normalized_probs(self, net_output, log_probs, sample=None):
        probs = net_output[0]
        return probs.log() if log_probs else probs


def setup(probs=None, data=DATA):
    d = Dictionary()
    for word in ("w1", "w2", "w3"):
        d.add_symbol(word)
    assert len(d) == 7 and (d.pad(), d.eos(), d.unk()) == (PAD, EOS, UNK)
    task = TranslationTask(TranslationConfig(), d, d)
    probs = PROBS.unsqueeze(0).expand(len(data), 3, 7) if probs is None else probs
    model = FairseqEncoderDecoderModel(NullEncoder(d), ProbabilityDecoder(d, probs))
    dataset = LanguagePairDataset([x["source"] for x in data], [2] * len(data), d,
                                  [x["target"] for x in data], [len(x["target"]) for x in data], d)
    sample = dataset.collater([dataset[i] for i in range(len(data))])
    return task, model, sample


def args(**values):
    return argparse.Namespace(sentence_avg=False, report_accuracy=False, **values)


# each criterion with its weight: (options for a smoothing weight of 0.1, options for plain CE)
OPTIONS = {
    "ls_cross_entropy": ({"label_smoothing": 0.1}, {"label_smoothing": 0.0}),
    "maxsup_cross_entropy": ({"maxsup_alpha": 0.1}, {"maxsup_alpha": 0.0}),
    "ols_cross_entropy": ({}, {"ols_hard_weight": 1.0, "ols_soft_weight": 0.0}),
}


def build(name, options):
    task, model, sample = setup()
    return task, model, sample, CRITERIA[name].build_criterion(args(**options), task)


def close(a, b):
    assert a.shape == b.shape, f"size mismatch: {tuple(a.shape)} vs {tuple(b.shape)}"
    assert float((a - b).abs().max()) < 1e-6, f"{a} vs {b}"


def test_the_probability_decoder_takes_the_normalized_path():
    _, model, _ = setup()
    assert not log_softmax_of_output(model)


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_nll_loss(name):
    task, model, sample, ours = build(name, OPTIONS[name][0])
    nll_crit = CrossEntropyCriterion.build_criterion(args(), task)
    nll_loss, _, nll_log = nll_crit(model, sample)
    _, _, log = ours(model, sample)
    assert abs(nll_loss - nll_log["loss"]) < 1e-6
    assert abs(nll_loss - log["nll_loss"]) < 1e-6


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_padding(name):
    task, model, sample, crit = build(name, OPTIONS[name][0])
    crit.eval()  # OLS: the loss reads last period's soft labels; do not accumulate between calls
    loss, _, _ = crit(model, sample)

    def one_without_padding(i):
        _, model1, sample1 = setup(PROBS.unsqueeze(0).expand(1, 3, 7), [DATA[i]])
        return crit(model1, sample1)[0]

    close(loss, one_without_padding(0) + one_without_padding(1))


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_reduction(name):
    task, model, sample, crit = build(name, OPTIONS[name][0])
    crit.eval()
    loss, _, _ = crit(model, sample, reduce=True)
    unreduced, _, log = crit(model, sample, reduce=False)
    close(loss, unreduced.sum())
    theirs = LabelSmoothedCrossEntropyCriterion.build_criterion(args(label_smoothing=0.1), task)
    unreduced_theirs, _, log_theirs = theirs(model, sample, reduce=False)
    assert unreduced.shape == unreduced_theirs.shape
    assert log["loss"].shape == log_theirs["loss"].shape and log["nll_loss"].shape == log_theirs["nll_loss"].shape
    close(log["nll_loss"], log_theirs["nll_loss"])


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_zero_eps(name):
    task, model, sample, crit = build(name, OPTIONS[name][1])
    nll_loss, _, _ = CrossEntropyCriterion.build_criterion(args(), task)(model, sample)
    close(nll_loss, crit(model, sample)[0])


def test_ls_cross_entropy_equals_fairseq_on_probability_outputs():
    task, model, sample = setup()
    theirs = LabelSmoothedCrossEntropyCriterion.build_criterion(args(label_smoothing=0.1), task)
    ours = LSCrossEntropyCriterion.build_criterion(args(label_smoothing=0.1), task)
    loss_theirs, _, log_theirs = theirs(model, sample)
    loss_ours, _, log_ours = ours(model, sample)
    close(loss_ours, loss_theirs)
    close(log_ours["nll_loss"], log_theirs["nll_loss"])
    unreduced_ours, unreduced_theirs = ours(model, sample, reduce=False)[0], theirs(model, sample, reduce=False)[0]
    close(unreduced_ours, unreduced_theirs)


def test_the_logit_path_only_for_fairseqs_own_normalization():
    from tests.integrations.fairseq_toy import build as build_transformer

    _, model, _ = build_transformer()
    wrapper = torch.nn.Module()
    wrapper.module = model  # what DDP and fairseq's ModuleProxyWrapper look like
    assert log_softmax_of_output(model) and log_softmax_of_output(wrapper)

    class OwnNormalization(type(model.decoder)):
        def get_normalized_probs(self, net_output, log_probs, sample=None):
            return super().get_normalized_probs(net_output, log_probs, sample) * 2

    custom = copy.deepcopy(model)
    custom.decoder.__class__ = OwnNormalization
    assert not log_softmax_of_output(custom)
