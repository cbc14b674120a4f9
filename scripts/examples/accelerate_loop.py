#!/usr/bin/env python
"""A causal-LM training loop of one's own with ``accelerate`` and a labelreg_nlp loss.

What the loop owes the method, as LabelRegTrainer does it:

* gradient accumulation over ``--accumulation`` micro-batches (``accelerator.no_sync`` until the
  last), the loss normalised by the non-ignored tokens of the whole accumulated batch over all
  processes (``num_items_in_batch``) and multiplied by ``num_processes`` (DDP averages the
  gradients over processes), so the update is the one of a single process over the whole batch.
  (``accelerator.accumulate`` with ``Accelerator(gradient_accumulation_steps=G)`` works too; its
  ``backward`` divides the loss by G, so multiply by ``num_processes * G`` there);
* ``token_loss.train()`` for training steps only (OLS accumulates in training mode only);
* the loss's own parameters (LS++/LLS tables) in the optimizer and their gradients averaged
  across processes (:func:`labelreg_nlp.integrations.distributed.average_gradients_across_processes`)
  before ``optimizer.step()``: they live outside the DDP-wrapped model;
* ``token_loss.end_period()`` at each epoch end (OLS all-reduces its counts there).

At the end every process checks that its copy of the method's state equals the others', and the
main process saves the model and the state (``labelreg_state.pt``) in ``--output_dir``.

Runs on an embedded default (a 2-layer Llama built from a config, synthetic token sequences):

    python scripts/examples/accelerate_loop.py --method ols --output_dir runs/accelerate-ols
    accelerate launch --num_processes 2 --cpu scripts/examples/accelerate_loop.py --method lls \\
        --output_dir runs/accelerate-lls
"""

from __future__ import annotations

import argparse
import itertools
import sys
from contextlib import nullcontext
from pathlib import Path

import torch
from accelerate import Accelerator
from tiny_lm import IGNORE_INDEX, collate, next_token_labels, tiny_llama, token_sequences

from labelreg_nlp import TokenLoss
from labelreg_nlp.integrations.distributed import average_gradients_across_processes
from labelreg_nlp.losses.registry import METHODS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", choices=list(METHODS), default="ls", help="loss (default ls)")
    p.add_argument("--alpha", type=float, default=0.1, help="the method's alpha (default 0.1)")
    p.add_argument("--output_dir", type=Path, required=True, help="where the model and labelreg_state.pt go")
    p.add_argument("--overwrite_output_dir", action="store_true", help="replace what --output_dir holds")
    p.add_argument("--epochs", type=int, default=2, help="passes over the data (default 2)")
    p.add_argument("--sequences", type=int, default=64, help="training sequences (default 64)")
    p.add_argument("--batch_size", type=int, default=4, help="sequences per micro-batch and process (default 4)")
    p.add_argument("--accumulation", type=int, default=2, help="micro-batches per optimizer step (default 2)")
    p.add_argument("--vocab", type=int, default=96, help="vocabulary size (default 96)")
    p.add_argument("--lr", type=float, default=3e-3, help="learning rate of model and table (default 3e-3)")
    p.add_argument("--seed", type=int, default=0, help="model initialisation and data (default 0)")
    args = p.parse_args(argv)
    for name in ("epochs", "sequences", "batch_size", "accumulation", "vocab"):
        if getattr(args, name) < (3 if name == "vocab" else 1):
            p.error(f"--{name} must be >= {3 if name == 'vocab' else 1}, got {getattr(args, name)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    out = args.output_dir
    if out.exists() and any(out.iterdir()) and not args.overwrite_output_dir:
        if accelerator.is_main_process:
            print(f"error: {out} is not empty; pass --overwrite_output_dir to replace it", file=sys.stderr)
        return 2
    model = tiny_llama(args.vocab, args.seed)
    token_loss = TokenLoss(args.method, args.alpha, num_classes=args.vocab).to(accelerator.device)
    optimizer = torch.optim.AdamW(list(model.parameters()) + list(token_loss.parameters()), lr=args.lr)
    loader = torch.utils.data.DataLoader(token_sequences(args.sequences, args.vocab, args.seed),
                                         batch_size=args.batch_size, collate_fn=collate)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)

    for epoch in range(args.epochs):
        model.train()
        batches = iter(loader)
        while group := list(itertools.islice(batches, args.accumulation)):
            # tokens the loss is normalised by: every micro-batch of this update, every process
            local = sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in group)
            num_items = accelerator.reduce(torch.tensor(local, device=accelerator.device), "sum")
            for i, batch in enumerate(group):
                # gradients are all-reduced by DDP at the last micro-batch's backward only
                with accelerator.no_sync(model) if i < len(group) - 1 else nullcontext():
                    labels = batch.pop("labels")
                    logits = model(**batch).logits
                    token_loss.train()
                    loss = token_loss(logits, next_token_labels(labels), num_items) * accelerator.num_processes
                    token_loss.eval()
                    accelerator.backward(loss)
            average_gradients_across_processes(token_loss.parameters())
            optimizer.step()
            optimizer.zero_grad()
        token_loss.end_period()
        accelerator.print(f"epoch {epoch + 1}: {token_loss.log_values()}")

    state = token_loss.state_dict()
    flat = torch.cat([t.float().reshape(-1) for t in state.values()]) if state else torch.zeros(1)
    copies = accelerator.gather(flat[None].to(accelerator.device))
    if not bool((copies == copies[0]).all()):
        raise RuntimeError("the processes' copies of the method's state differ")
    accelerator.print(f"{args.method} state identical on {accelerator.num_processes} process(es): "
                      f"{flat.numel()} numbers")
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        accelerator.unwrap_model(model).save_pretrained(out)
        torch.save({"method": args.method, "state": state}, out / "labelreg_state.pt")
    accelerator.wait_for_everyone()
    return 0


if __name__ == "__main__":
    sys.exit(main())
