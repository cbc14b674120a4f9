"""``LabelRegCallback``: moves the alpha schedule with the trainer, ends the periods of stateful
methods and averages the learned tables' gradients across processes."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from transformers import TrainerCallback

from ..distributed import average_gradients_across_processes

if TYPE_CHECKING:
    from .loss import LabelRegLoss


class LabelRegCallback(TrainerCallback):
    """Moves the alpha schedule with the trainer and ends the periods of stateful methods (OLS)."""

    def __init__(self, loss: LabelRegLoss) -> None:
        self.loss = loss

    def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
        token_loss, options = self.loss.token_loss, self.loss.args
        params = list(token_loss.parameters())
        if params and optimizer is not None:
            known = {id(p) for group in optimizer.param_groups for p in group["params"]}
            if not all(id(p) in known for p in params):
                raise ValueError(f"the {token_loss.method} table is not in the optimizer, so it would never learn: "
                                 "use LabelRegTrainer, or give your optimizer the loss's parameters "
                                 "(LabelRegLoss.token_loss.parameters())")
        if token_loss.alpha_end is not None and token_loss.schedule_horizon is None:
            total = math.ceil(state.num_train_epochs) if options.schedule_unit == "epoch" else state.max_steps
            token_loss.schedule_horizon = max(1, int(total))

    def on_epoch_begin(self, args, state, control, **kwargs):
        if self.loss.args.schedule_unit == "epoch":
            self.loss.token_loss.set_progress(math.floor((state.epoch or 0.0) + 1e-9))

    def on_step_begin(self, args, state, control, **kwargs):
        if self.loss.args.schedule_unit == "step":
            self.loss.token_loss.set_progress(state.global_step)
        self.loss.token_loss.train(True)

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        average_gradients_across_processes(list(self.loss.token_loss.parameters()))

    def on_optimizer_step(self, args, state, control, **kwargs):
        # the Trainer zeroes the model's gradients only (model.zero_grad())
        for p in self.loss.token_loss.parameters():
            p.grad = None

    def on_step_end(self, args, state, control, **kwargs):
        self.loss.token_loss.train(False)
        period = self.loss.args.period_steps()
        if period and state.global_step % period == 0:
            self.loss.token_loss.end_period()

    def on_epoch_end(self, args, state, control, **kwargs):
        self.loss.token_loss.train(False)
        if not self.loss.args.period_steps():
            self.loss.token_loss.end_period()
