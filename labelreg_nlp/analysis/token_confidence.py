"""Token-level confidence: a teacher-forced pass of a translation model over a split, every
non-padding target position scored (:class:`~labelreg_nlp.metrics.ScoredPredictions`), for
fairseq checkpoints and Hugging Face seq2seq trainers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from ..metrics.confidence import P_GRID
from ..metrics.prediction_files import IGNORE_INDEX
from ..metrics.scored import ScoredPredictions


def fairseq_token_scores(data_dir: str | Path, checkpoint: str | Path, split: str = "test", *,
                         max_tokens: int = 4096, p_grid: Sequence[float] = P_GRID,
                         cpu: bool | None = None) -> ScoredPredictions:
    """Score every target token of ``split`` with the model of a fairseq ``checkpoint``, fed the
    reference prefix (teacher forcing), as the training loss sees it (end of sentence included).

    Args:
        data_dir: the binarized data folder (``fairseq-preprocess`` output).
        checkpoint: the checkpoint file.
        split: ``valid``, ``test``, ...
        max_tokens: batch size in tokens.
        p_grid: pNorm orders to score.
        cpu: force the CPU (default: the GPU when there is one).

    Returns:
        The scored target positions.
    """
    from argparse import Namespace

    from fairseq import checkpoint_utils, utils

    from ..integrations.fairseq_command import allow_fairseq_checkpoints, user_dir

    allow_fairseq_checkpoints()
    utils.import_user_module(Namespace(user_dir=user_dir()))
    # fairseq leaves the root logger at DEBUG: keep the plotting libraries quiet
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    models, _cfg, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(checkpoint)], arg_overrides={"data": str(data_dir)})
    model = models[0].eval()
    device = torch.device("cuda" if torch.cuda.is_available() and not cpu else "cpu")
    model.to(device)
    task.load_dataset(split)
    batches = task.get_batch_iterator(
        dataset=task.dataset(split), max_tokens=max_tokens, required_batch_size_multiple=1,
        max_positions=utils.resolve_max_positions(task.max_positions(), model.max_positions()),
        ignore_invalid_inputs=True,
    ).next_epoch_itr(shuffle=False)
    pad = task.target_dictionary.pad()
    parts = []
    with torch.no_grad():
        for sample in batches:
            sample = utils.move_to_cuda(sample) if device.type == "cuda" else sample
            logits = model(**sample["net_input"])[0].float()
            target = sample["target"]
            parts.append(ScoredPredictions.from_logits(logits.cpu(), target.masked_fill(target == pad, IGNORE_INDEX).cpu(),
                                                       p_grid))
    return ScoredPredictions.concat(parts)


def hf_token_scores(trainer, dataset, p_grid: Sequence[float] = P_GRID, *, shift_labels: bool = False,
                    collator=None) -> ScoredPredictions:
    """Score every labelled position of ``dataset`` with a Hugging Face trainer's model, batched
    and collated as its evaluation is (for seq2seq: the collator shifts the labels into
    ``decoder_input_ids``, so this is teacher forcing).

    Args:
        trainer: a ``transformers.Trainer`` (or Seq2SeqTrainer, or TRL's SFTTrainer).
        dataset: a dataset with ``labels`` (or one the collator gives labels).
        p_grid: pNorm orders to score.
        shift_labels: causal LMs: the logits at t are scored against the label at t + 1.
        collator: collate the batches with this instead of the trainer's evaluation collator
            (e.g. a padding one where the trainer packs its training batches).

    Returns:
        The scored positions whose label is not -100.
    """
    model = trainer.model.eval()
    if collator is None:
        loader = trainer.get_eval_dataloader(dataset)
    else:
        loader = torch.utils.data.DataLoader(dataset, batch_size=trainer.args.per_device_eval_batch_size,
                                             collate_fn=collator)
    parts = []
    with torch.no_grad():
        for batch in loader:
            batch = trainer._prepare_inputs(batch)
            labels = batch.pop("labels")
            logits = model(**batch).logits.float()
            if shift_labels:
                labels = torch.nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
            parts.append(ScoredPredictions.from_logits(logits.cpu(), labels.cpu(), p_grid))
    return ScoredPredictions.concat(parts)
