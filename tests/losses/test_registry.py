"""The method registry: one entry per method (loss, options dataclass, paper), and every adapter
offering each method's options."""

import argparse
import re
from dataclasses import dataclass, fields
from pathlib import Path

import pytest
import torch

from labelreg_nlp.losses import registry
from labelreg_nlp.losses.maxsup import MaxSupLoss
from labelreg_nlp.losses.options import SHARED_OPTIONS, option, option_fields
from labelreg_nlp.losses.registry import METHODS, Method, flat_options, methods_table, register_method
from labelreg_nlp.losses.token_loss import TokenLoss

ROOT = Path(__file__).resolve().parents[2]


def test_every_method_builds_and_computes_through_token_loss():
    logits, target = torch.randn(4, 6, 9), torch.randint(0, 9, (4, 6))
    for name, method in METHODS.items():
        loss = TokenLoss(name, num_classes=9)
        assert isinstance(getattr(loss, name), method.loss) and loss.method_loss is getattr(loss, name)
        assert torch.isfinite(loss(logits, target))
        assert list(loss.state_dict()) == [f"{name}.{key}" for key in loss.method_loss.state_dict()]
        others = [m for m in METHODS if m != name]
        assert not any(hasattr(loss, m) for m in others)  # only the chosen method's module


def test_token_loss_passes_each_flat_option_to_the_module():
    loss = TokenLoss("ols", num_classes=50, ols_hard_weight=1.0, ols_soft_weight=0.25, ols_topk=8, ols_init="zeros")
    assert (loss.ols.hard_weight, loss.ols.soft_weight, loss.ols.topk, loss.ols.dense) == (1.0, 0.25, 8, False)
    assert float(loss.ols.soft_labels().sum()) == 0.0  # init zeros
    assert TokenLoss("ls", 0.2, convention="fairseq").ls.convention == "fairseq"
    with pytest.raises(TypeError, match="unknown option 'ols_topkk'"):
        TokenLoss("ols", num_classes=50, ols_topkk=8)
    with pytest.raises(ValueError, match="ols_init must be one of .* got 'flat'"):
        TokenLoss("maxsup", ols_init="flat")
    with pytest.raises(ValueError, match="ols_hard_weight must be a finite number >= 0, got -1"):
        TokenLoss("ols", num_classes=50, ols_hard_weight=-1.0)  # named as the user spelled it


def test_token_loss_from_an_options_dataclass_equals_the_flat_names():
    from labelreg_nlp.losses import LLSOptions, OLSOptions

    logits, target = torch.randn(5, 30), torch.randint(0, 30, (5,))
    flat = TokenLoss("lls", 0.2, num_classes=30, lls_rank=4)
    typed = TokenLoss.from_options(LLSOptions(alpha=0.2, rank=4), num_classes=30)
    typed.load_state_dict(flat.state_dict())
    assert torch.equal(flat(logits, target), typed(logits, target))
    assert TokenLoss.from_options(OLSOptions(topk=4), num_classes=30).ols.topk == 4
    with pytest.raises(TypeError, match="options dataclass of no registered method"):
        TokenLoss.from_options(object())


def test_flat_names_are_unique_except_the_shared_ones():
    seen: dict[str, str] = {}
    for method in METHODS.values():
        for flat in method.flat_options():
            owner = seen.setdefault(flat, method.name)
            assert owner == method.name or flat in SHARED_OPTIONS, f"{flat} names options of {owner} and {method.name}"
    assert {m.name for m in METHODS.values() if m.scheduled} == {"ls", "maxsup"}
    assert {m.name for m in METHODS.values() if m.periodic} == {"ols"}
    assert {m.name for m in METHODS.values() if m.needs_num_classes} == {"ols", "lspp", "lls"}


def test_hf_arguments_have_a_field_per_option_with_its_default():
    pytest.importorskip("transformers")
    from labelreg_nlp.integrations.hf import LabelRegArguments

    by_name = {f.name: f for f in fields(LabelRegArguments)}
    for flat, field_ in flat_options().items():
        assert by_name[flat].default == field_.default, flat
    for method in METHODS.values():
        assert (method.prefix + "period_steps" in by_name) == method.periodic
    with pytest.raises(ValueError, match="method must be one of"):
        LabelRegArguments(method="focal")


def _image_flags() -> set[str]:
    from labelreg_nlp.experiments.image_training import add_method_arguments

    parser = argparse.ArgumentParser()
    add_method_arguments(parser)
    return {a.dest for a in parser._actions}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_adapter_offers_every_option_of_the_method(name):
    """TokenLoss, the HF arguments, the image script and the fairseq criterion take the same
    options of each method (fairseq by its own names, ``none`` = ``ls_cross_entropy`` at 0)."""
    method = METHODS[name]
    options = {f.name for f in method.fields}
    flat = set(method.flat_options())
    assert flat <= set(flat_options())  # TokenLoss
    assert flat <= _image_flags()
    pytest.importorskip("transformers")
    from labelreg_nlp.integrations.hf import LabelRegArguments

    assert flat <= {f.name for f in fields(LabelRegArguments)}
    pytest.importorskip("fairseq")
    from labelreg_nlp.integrations.fairseq_command import FAIRSEQ_SELECTION
    from labelreg_nlp.integrations.fairseq_criteria import CRITERIA

    criterion = CRITERIA[FAIRSEQ_SELECTION[name].criterion]
    config = {f.name for f in fields(_config_of(criterion))}
    if name != "none":
        assert criterion.method == name and set(criterion.option_fields) == options
        # the command lines the scripts build select alpha by the criterion's own field
        assert FAIRSEQ_SELECTION[name].alpha_field == criterion.option_fields.get("alpha")
    assert set(criterion.option_fields.values()) <= config
    if method.scheduled:
        assert {"max_epoch", "max_update"} <= config and any(f.endswith("schedule_horizon") for f in config)


def _config_of(criterion):
    from fairseq.criterions import CRITERION_DATACLASS_REGISTRY

    return CRITERION_DATACLASS_REGISTRY[criterion.criterion_name()]


@dataclass(frozen=True)
class ToyOptions:
    """A method added from outside: MaxSup under another name, with its own option."""

    alpha: float = option(0.3, "weight")
    beta: float = option(1.0, "unused extra option", valid=">= 0")

    def validate(self, label=str) -> None:
        if self.beta < 0:
            raise ValueError(f"{label('beta')} must be >= 0, got {self.beta!r}")

    def build(self, num_classes=None, schedule_horizon=None) -> MaxSupLoss:
        return MaxSupLoss(self.alpha)


@pytest.fixture
def unregister_toy():
    yield
    METHODS.pop("toy", None)


def test_a_registered_method_reaches_token_loss_hf_fairseq_and_the_image_script(unregister_toy):
    """Adding a method = its loss and options dataclass, one registry entry; the fairseq criterion
    and the HF arguments' fields are written out by the method's author, as below."""
    toy = register_method(Method("toy", "Toy", "CE + a (z_max - mean z)", None, MaxSupLoss, ToyOptions, prefix="toy_"))
    with pytest.raises(ValueError, match="already registered"):
        register_method(toy)
    logits, target = torch.randn(3, 7), torch.tensor([1, 2, 3])
    assert TokenLoss("toy", 0.2, toy_beta=2.0).toy.alpha == 0.2
    with pytest.raises(ValueError, match="toy_beta must be >= 0"):
        TokenLoss("toy", toy_beta=-1.0)
    assert torch.allclose(TokenLoss("toy", 0.2)(logits, target), TokenLoss("maxsup", 0.2)(logits, target))
    assert "| `toy` | Toy |" in methods_table()
    assert {"toy_beta"} <= _image_flags()

    pytest.importorskip("transformers")
    from labelreg_nlp.integrations.hf import LabelRegArguments

    @dataclass
    class ToyArguments(LabelRegArguments):
        toy_beta: float = 1.0

    args = ToyArguments(method="toy", alpha=0.2, toy_beta=3.0)
    assert args.build_loss(num_classes=7).toy.alpha == 0.2

    pytest.importorskip("fairseq")
    from fairseq.criterions import register_criterion

    from labelreg_nlp.integrations.fairseq_criteria import MethodCriterion, TokenCriterionConfig

    @dataclass
    class ToyCrossEntropyConfig(TokenCriterionConfig):
        toy_alpha: float = 0.3

    @register_criterion("toy_cross_entropy_test", dataclass=ToyCrossEntropyConfig)
    class ToyCrossEntropyCriterion(MethodCriterion):
        method = "toy"
        option_fields = {"alpha": "toy_alpha"}

        def __init__(self, task, sentence_avg, toy_alpha=0.3, ignore_prefix_size=0, report_accuracy=False,
                     fused_output_layer=False, no_validate_args=False):
            super().__init__(task, sentence_avg, ToyOptions(alpha=toy_alpha), ignore_prefix_size=ignore_prefix_size,
                             report_accuracy=report_accuracy, fused_output_layer=fused_output_layer,
                             no_validate_args=no_validate_args)

    from fairseq.data import Dictionary

    class Task:
        target_dictionary = Dictionary()

    criterion = ToyCrossEntropyCriterion(Task(), False, toy_alpha=0.2)
    assert criterion.method_loss.alpha == 0.2 and criterion.toy is criterion.method_loss


@pytest.mark.parametrize("page", ["README.md", "docs/methods.md"])
def test_docs_method_table_is_the_registry(page):
    text = (ROOT / page).read_text()
    match = re.search(r"<!-- generated by `labelreg-nlp methods`.*?-->\n(.*?)\n<!-- end of generated table -->",
                      text, re.S)
    assert match, f"{page} has no generated methods table"
    assert match.group(1) == methods_table(), f"{page}: run `labelreg-nlp methods` and paste the table"


def test_docs_name_every_adapter_option():
    pytest.importorskip("fairseq")
    from labelreg_nlp.integrations.fairseq_criteria import CRITERIA, flag

    fairseq_page = (ROOT / "docs" / "fairseq.md").read_text()
    for criterion in CRITERIA.values():
        for f in fields(_config_of(criterion)):
            if not f.name.startswith("_") and f.name not in ("max_epoch", "max_update"):
                assert f"`{flag(f.name)}" in fairseq_page, f"docs/fairseq.md does not describe {flag(f.name)}"
    hf_page = (ROOT / "docs" / "huggingface.md").read_text()
    from labelreg_nlp.integrations.hf import LabelRegArguments

    for f in fields(LabelRegArguments):
        assert f"--{f.name}" in hf_page, f"docs/huggingface.md does not describe --{f.name}"


def test_papers_page_cites_every_paper():
    from labelreg_nlp.losses.papers import PAPERS

    page = (ROOT / "docs" / "papers.md").read_text()
    for paper in PAPERS.values():
        assert paper.citation() in page
    assert all(m.paper is None or m.paper in PAPERS for m in METHODS.values())
    assert registry.get_method("ols").paper == "ols"


@pytest.mark.parametrize("name", ["ols", "lspp", "lls"])
def test_fairseq_config_fields_take_the_options_defaults_and_help(name):
    """options_field: each config field has the options dataclass's default (0 for an automatic
    int, fairseq having no null) and its help with the accepted range."""
    pytest.importorskip("fairseq")
    from labelreg_nlp.integrations.fairseq_command import FAIRSEQ_SELECTION
    from labelreg_nlp.integrations.fairseq_criteria import CRITERIA

    criterion = CRITERIA[FAIRSEQ_SELECTION[name].criterion]
    config = {f.name: f for f in fields(_config_of(criterion))}
    for opt in option_fields(METHODS[name].options):
        field_ = config[criterion.option_fields[opt.name]]
        auto = opt.nullable and opt.type is int
        assert field_.default == (0 if auto else opt.default), opt.name
        assert field_.metadata["help"].startswith(opt.help) and opt.valid in field_.metadata["help"]
