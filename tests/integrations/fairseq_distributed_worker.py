"""Run by torchrun in test_fairseq_e2e.py: one rank of a 2-process CPU (gloo) fairseq-train.

``fairseq_distributed_worker.py OUT_DIR <fairseq-train arguments>``. fairseq's own torchrun
detection divides by the number of GPUs, so the rank and world size that torchrun puts in the
environment are passed as fairseq options instead (legacy_ddp: torch's DDP wants GPU device ids).
After each epoch every rank writes its criterion's state to ``OUT_DIR/rank<R>.pt`` (fairseq
checkpoints only rank 0's).
"""

import os
import sys

import fairseq_cli.train as fairseq_train
import torch


def main() -> None:
    out_dir, rank = sys.argv.pop(1), os.environ["RANK"]
    sys.argv += ["--distributed-world-size", os.environ["WORLD_SIZE"], "--distributed-rank", rank,
                 "--distributed-init-method", "env://", "--distributed-no-spawn", "--distributed-backend", "gloo",
                 "--ddp-backend", "legacy_ddp", "--cpu"]
    train_one_epoch = fairseq_train.train

    def train_and_dump(cfg, trainer, task, epoch_itr):
        result = train_one_epoch(cfg, trainer, task, epoch_itr)
        torch.save(trainer.get_criterion().state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))
        return result

    fairseq_train.train = train_and_dump
    fairseq_train.cli_main()


if __name__ == "__main__":
    main()
