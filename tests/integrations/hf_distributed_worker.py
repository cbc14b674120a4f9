"""Run by torchrun in test_hf_distributed.py: one rank of a 2-process CPU (gloo) training with
OLS (``dense`` or a top-k) or a learned table (``lspp``/``lls``, optionally ``:rank``)."""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from labelreg_nlp.integrations.hf import LabelRegTrainer  # noqa: E402
from tests.integrations.hf_toy import collate, gpt2_lm, token_examples, training_args  # noqa: E402


def main(out_dir: str, kind: str) -> None:
    args = training_args(Path(out_dir) / "run", num_train_epochs=2, ddp_backend="gloo", learning_rate=5e-2)
    if kind.startswith(("lspp", "lls")):
        method, _, rank = kind.partition(":")
        options = {"method": method, f"{method}_rank": int(rank) if rank else None}
    else:
        options = {"method": "ols", "ols_topk": None if kind == "dense" else int(kind)}
    trainer = LabelRegTrainer(model=gpt2_lm(), args=args, train_dataset=token_examples(32), data_collator=collate,
                              **options)
    trainer.train()
    assert dist.is_initialized() and dist.get_world_size() == 2
    state = {k: v.clone() for k, v in trainer.labelreg_loss.token_loss.state_dict().items()}
    torch.save(state, Path(out_dir) / f"rank{dist.get_rank()}.pt")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
