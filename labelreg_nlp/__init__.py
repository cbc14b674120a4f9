"""labelreg_nlp: label-regularization losses for token logits with padding.

Layers, each a subpackage:

* :mod:`labelreg_nlp.losses`: torch only; every formula with its options dataclass, the method
  registry, :class:`TokenLoss`;
* :mod:`labelreg_nlp.metrics`: torch only; calibration and selective-classification metrics;
* :mod:`labelreg_nlp.integrations`: fairseq criteria and Hugging Face trainers (imported on use);
* :mod:`labelreg_nlp.analysis`: what ``labelreg-nlp evaluate`` and ``neighbours`` run;
* :mod:`labelreg_nlp.experiments`: what the repository's scripts use (corpora, pipelines).

Each layer imports only those above it in this list (``tests/test_layers.py``).

``import labelreg_nlp`` needs torch only. The Hugging Face names (``LabelRegTrainer``,
``LabelRegSeq2SeqTrainer``, ``LabelRegArguments``, ``LabelRegLoss``) and TRL's
``LabelRegSFTTrainer`` are importable from here too; transformers and trl are imported on first use.
"""

from typing import Any

from .losses import (
    METHODS,
    ConstantSchedule,
    LabelSmoothingLoss,
    LabelSmoothingPlusPlus,
    LearnableLabelSmoothing,
    LinearSchedule,
    LossParts,
    MaxSupLoss,
    OnlineLabelSmoothing,
    TokenLoss,
    check_alpha,
    fused_linear_loss,
    fused_linear_parts,
    get_method,
    label_smoothing_loss,
    label_smoothing_parts,
    make_schedule,
    maxsup_loss,
    maxsup_parts,
    smoothing_coefficient,
    soft_target_parts,
)
from .metrics import aurc, excess_aurc, expected_calibration_error

__version__ = "0.1.0"

_HF_NAMES = ("LabelRegArguments", "LabelRegLoss", "LabelRegSeq2SeqTrainer", "LabelRegTrainer")


def __getattr__(name: str) -> Any:
    if name in _HF_NAMES:
        from .integrations import hf

        return getattr(hf, name)
    if name == "LabelRegSFTTrainer":  # needs trl (the sft extra)
        from .integrations.trl_sft import LabelRegSFTTrainer

        return LabelRegSFTTrainer
    raise AttributeError(f"module 'labelreg_nlp' has no attribute {name!r}")


__all__ = [
    "METHODS",
    "ConstantSchedule",
    "LabelRegArguments",
    "LabelRegLoss",
    "LabelRegSFTTrainer",
    "LabelRegSeq2SeqTrainer",
    "LabelRegTrainer",
    "LabelSmoothingLoss",
    "LabelSmoothingPlusPlus",
    "LearnableLabelSmoothing",
    "LinearSchedule",
    "LossParts",
    "MaxSupLoss",
    "OnlineLabelSmoothing",
    "TokenLoss",
    "aurc",
    "check_alpha",
    "excess_aurc",
    "expected_calibration_error",
    "fused_linear_loss",
    "fused_linear_parts",
    "get_method",
    "label_smoothing_loss",
    "label_smoothing_parts",
    "make_schedule",
    "maxsup_loss",
    "maxsup_parts",
    "smoothing_coefficient",
    "soft_target_parts",
]
