"""Hugging Face adapter: ``Trainer`` subclasses, a ``compute_loss_func`` callable and a callback.

One-line swap::

    trainer = LabelRegTrainer(model=model, args=args, train_dataset=ds, method="maxsup", alpha=0.1)

The loss is :class:`~labelreg_nlp.losses.token_loss.TokenLoss` over the model's logits (``[N, K]``
for sequence classification, ``[N, T, V]`` for token-level models; causal LMs shifted so position
t predicts label t+1), ``-100`` labels left out of every term, and the summed loss divided by the
Trainer's ``num_items_in_batch`` (the non-ignored labels of the whole accumulated batch, over all
processes) when it passes one, else by this micro-batch's non-ignored labels. That makes
gradient accumulation exact, as with the models' own losses.

The alpha schedule follows ``state.epoch`` or ``state.global_step``; periods of stateful methods
(OLS) end at each epoch end (or every N optimizer steps), are all-reduced across processes by
``torch.distributed``, and the state is saved in every checkpoint directory
(``labelreg_state.pt``) and read back by ``trainer.train(resume_from_checkpoint=...)``.

Methods with learnable parameters (LS++ and LLS tables) get their own optimizer parameter group
(``labelreg_lr``, ``labelreg_weight_decay``), follow the model's learning-rate schedule, are saved
in every checkpoint with the rest of the method's state, and have their gradients averaged across
processes before each optimizer step (they live outside the DDP-wrapped model).

:class:`LabelRegArguments` has one field per option of every method (``labelreg-nlp methods``
lists them), readable by ``HfArgumentParser``.

Modules: ``arguments`` (:class:`LabelRegArguments`), ``loss`` (:class:`LabelRegLoss`),
``output_head`` (the output layer the fused loss applies), ``callback``
(:class:`LabelRegCallback`), ``trainer`` (:class:`LabelRegTrainer`,
:class:`LabelRegSeq2SeqTrainer`).
"""

from ..distributed import average_gradients_across_processes
from .arguments import HF_SCHEDULE_UNITS, IGNORE_INDEX, LabelRegArguments
from .callback import LabelRegCallback
from .loss import STATE_FILE, LabelRegLoss
from .output_head import LOGIT_POSTPROCESSING, OutputHead, is_causal_lm
from .trainer import LabelRegSeq2SeqTrainer, LabelRegTrainer, LabelRegTrainerMixin

__all__ = [
    "HF_SCHEDULE_UNITS",
    "IGNORE_INDEX",
    "LOGIT_POSTPROCESSING",
    "STATE_FILE",
    "LabelRegArguments",
    "LabelRegCallback",
    "LabelRegLoss",
    "LabelRegSeq2SeqTrainer",
    "LabelRegTrainer",
    "LabelRegTrainerMixin",
    "OutputHead",
    "average_gradients_across_processes",
    "is_causal_lm",
]
