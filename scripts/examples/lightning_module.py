#!/usr/bin/env python
"""A causal LM trained by PyTorch Lightning with a labelreg_nlp loss in ``training_step``.

What the module owes the method, as LabelRegTrainer does it:

* the :class:`~labelreg_nlp.TokenLoss` is a submodule, so its LS++/LLS table is in
  ``self.parameters()`` (the optimizer's) and DDP averages its gradients with the model's, and
  its state (OLS soft labels, LS++/LLS table) is in every checkpoint's ``state_dict``;
* DDP must not broadcast buffers (``DDPStrategy(broadcast_buffers=False)``): OLS accumulates its
  counts in buffers on every process and all-reduces them itself at ``end_period()``; broadcasting
  rank 0's buffers before each forward would drop the other processes' counts;
* ``set_progress(epoch)`` at each training epoch's start (the alpha schedule) and
  ``end_period()`` at its end; the schedule position (``progress``) and the
  method's name in the checkpoint (``on_save_checkpoint``), checked and restored on resume;
* the loss normalised by the non-ignored tokens of the step over all processes, times the
  number of processes (DDP averages), so a step is the one of a single process over the global
  batch.

Runs on an embedded default (a 2-layer Llama built from a config, synthetic token sequences):

    python scripts/examples/lightning_module.py --method ols --output_dir runs/lightning-ols
    python scripts/examples/lightning_module.py --method lls --devices 2 --output_dir runs/lightning-lls
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.strategies import DDPStrategy
from tiny_lm import IGNORE_INDEX, collate, next_token_labels, tiny_llama, token_sequences

from labelreg_nlp import TokenLoss
from labelreg_nlp.losses.registry import METHODS


class LabelRegLM(L.LightningModule):
    """A causal LM and its label-regularized loss.

    Args:
        method: a method of :data:`labelreg_nlp.METHODS`.
        alpha: its alpha.
        vocab: vocabulary size (the model's and the loss's K).
        lr: learning rate of the model and the table.
        seed: the model's initialisation.
    """

    def __init__(self, method: str = "ls", alpha: float = 0.1, vocab: int = 96, lr: float = 3e-3, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = tiny_llama(vocab, seed)
        self.token_loss = TokenLoss(method, alpha, num_classes=vocab)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        labels = next_token_labels(batch.pop("labels"))
        logits = self.model(**batch).logits
        # normalised by the step's tokens over all processes; DDP averages the gradients
        local = (labels != IGNORE_INDEX).sum()
        num_items = self.trainer.strategy.reduce(local.float(), reduce_op="sum")
        loss = self.token_loss(logits, labels, num_items) * self.trainer.world_size
        self.log("train_loss", loss / self.trainer.world_size, sync_dist=True, batch_size=labels.size(0))
        return loss

    def on_train_epoch_start(self) -> None:
        self.token_loss.set_progress(self.current_epoch)  # the alpha schedule (--alpha_end) counts epochs

    def on_train_epoch_end(self) -> None:
        self.token_loss.end_period()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)  # the table included

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["labelreg"] = {"method": self.token_loss.method, "progress": self.token_loss.progress}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("labelreg", {})
        if saved.get("method") != self.token_loss.method:
            raise ValueError(f"the checkpoint was saved for method {saved.get('method')!r}, "
                             f"this module uses {self.token_loss.method!r}")
        self.token_loss.set_progress(saved["progress"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", choices=list(METHODS), default="ls", help="loss (default ls)")
    p.add_argument("--alpha", type=float, default=0.1, help="the method's alpha (default 0.1)")
    p.add_argument("--output_dir", type=Path, required=True, help="where checkpoints and labelreg_state.pt go")
    p.add_argument("--overwrite_output_dir", action="store_true", help="replace what --output_dir holds")
    p.add_argument("--devices", type=int, default=1, help="CPU processes (DDP over gloo when > 1; default 1)")
    p.add_argument("--epochs", type=int, default=2, help="passes over the data (default 2)")
    p.add_argument("--sequences", type=int, default=64, help="training sequences (default 64)")
    p.add_argument("--batch_size", type=int, default=4, help="sequences per step and process (default 4)")
    p.add_argument("--vocab", type=int, default=96, help="vocabulary size (default 96)")
    p.add_argument("--lr", type=float, default=3e-3, help="learning rate of model and table (default 3e-3)")
    p.add_argument("--seed", type=int, default=0, help="model initialisation and data (default 0)")
    args = p.parse_args(argv)
    for name in ("devices", "epochs", "sequences", "batch_size", "vocab"):
        if getattr(args, name) < (3 if name == "vocab" else 1):
            p.error(f"--{name} must be >= {3 if name == 'vocab' else 1}, got {getattr(args, name)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.output_dir
    # only the launching process checks: DDP's workers start after it has created the folder
    if "LOCAL_RANK" not in os.environ and out.exists() and any(out.iterdir()) \
            and not args.overwrite_output_dir:
        print(f"error: {out} is not empty; pass --overwrite_output_dir to replace it", file=sys.stderr)
        return 2
    L.seed_everything(args.seed, verbose=False)  # also the seed of the DistributedSampler Lightning adds
    module = LabelRegLM(args.method, args.alpha, args.vocab, args.lr, args.seed)
    data = token_sequences(args.sequences, args.vocab, args.seed)
    if args.devices > 1:  # Lightning replaces the sampler by a shuffling DistributedSampler
        loader = torch.utils.data.DataLoader(data, batch_size=args.batch_size, collate_fn=collate, shuffle=True)
    else:  # the same order on one process: the global batches of any number of processes are the same
        sampler = torch.utils.data.DistributedSampler(data, num_replicas=1, rank=0, shuffle=True, seed=args.seed)
        loader = torch.utils.data.DataLoader(data, batch_size=args.batch_size, collate_fn=collate, sampler=sampler)
    strategy = DDPStrategy(broadcast_buffers=False) if args.devices > 1 else "auto"
    trainer = L.Trainer(accelerator="cpu", devices=args.devices, strategy=strategy, max_epochs=args.epochs,
                        default_root_dir=out, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        use_distributed_sampler=True, deterministic=True)
    trainer.fit(module, loader)
    state = module.token_loss.state_dict()
    flat = torch.cat([t.float().reshape(-1) for t in state.values()]) if state else torch.zeros(1)
    copies = trainer.strategy.all_gather(flat)
    if not bool((copies == copies.reshape(-1, flat.numel())[0]).all()):
        raise RuntimeError("the processes' copies of the method's state differ")
    if trainer.is_global_zero:
        print(f"{args.method} state identical on {trainer.world_size} process(es): {flat.numel()} numbers")
        torch.save({"method": args.method, "state": state}, out / "labelreg_state.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
