"""``LabelRegSFTTrainer``: TRL's ``SFTTrainer`` with a label-regularized loss.

The same keyword arguments as :class:`~labelreg_nlp.integrations.hf.LabelRegTrainer`
(``method=``, ``alpha=``, ``fused_linear=``, ...) and the same behaviour: the loss is TRL's
``compute_loss_func`` (so TRL keeps its own handling of ``num_items_in_batch``, gradient
accumulation and ``average_tokens_across_devices``), the method's state is saved in every
checkpoint (``labelreg_state.pt``) and read back on resume, LS++/LLS tables get their own
optimizer group. Padding-free batches (``padding_free=True``) are scored sequence by sequence
(:func:`~labelreg_nlp.integrations.hf.trainer.mask_sequence_starts`).

TRL logs ``entropy`` and ``mean_token_accuracy`` (and ``num_tokens``) at every step. With a
``compute_loss_func`` its ``SFTTrainer`` measures them by running the model a second time, without
gradients, through its own fused LM head; this trainer measures them from the loss's own pass
instead (:func:`~labelreg_nlp.losses.token_metrics.token_metrics` over the logits, or the chunked
:func:`~labelreg_nlp.losses.token_metrics.fused_token_metrics` over the hidden states with
``fused_linear``): the same numbers (tested), without the second forward of the model.
"""

from __future__ import annotations

from typing import Any

from transformers import Trainer
from trl import SFTTrainer

from .hf.trainer import LabelRegTrainerMixin


class LabelRegSFTTrainer(LabelRegTrainerMixin, SFTTrainer):
    """``trl.SFTTrainer`` with a label-regularized loss.

    Args:
        *args, **kwargs: what ``SFTTrainer`` takes (``compute_loss_func`` excepted; leave
            ``label_smoothing_factor`` at 0 and use ``method="ls"`` instead).
        labelreg_args: a :class:`~labelreg_nlp.integrations.hf.LabelRegArguments`; its fields may
            also be given as keywords (``method="maxsup", alpha=0.1``), which override it.
        num_classes: K, when it cannot be read from the model's output embeddings.
        shift_labels: compare logits at t with labels at t + 1; default: True for causal LMs.

    Example:
        >>> from datasets import Dataset
        >>> from tokenizers import Tokenizer, models
        >>> from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
        >>> from trl import SFTConfig
        >>> words = Tokenizer(models.WordLevel({"<pad>": 0, "<eos>": 1}, unk_token="<pad>"))
        >>> tokenizer = PreTrainedTokenizerFast(tokenizer_object=words, pad_token="<pad>", eos_token="<eos>")
        >>> model = LlamaForCausalLM(LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=32,
        ...     num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2))
        >>> data = Dataset.from_dict({"input_ids": [[1, 5, 7, 9], [1, 4, 4]]})
        >>> args = SFTConfig(output_dir="/tmp/labelreg-sft-doc", report_to=[], use_cpu=True, max_steps=1)
        >>> trainer = LabelRegSFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
        ...                              method="lls", alpha=0.2)
        >>> trainer.labelreg_loss.method
        'lls'
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.labelreg_loss.track_metrics = True

    def base_compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """``transformers.Trainer.compute_loss`` (the loss, scaled for ``average_tokens_across_devices``
        as TRL scales it), then TRL's logged metrics from the loss's own pass."""
        mode = "train" if self.model.training else "eval"
        inputs["use_cache"] = False  # as SFTTrainer: no cache in training forwards
        self.labelreg_loss.metrics = None  # never a previous batch's
        result = Trainer.compute_loss(self, model, inputs, return_outputs=return_outputs,
                                      num_items_in_batch=num_items_in_batch)
        self.record_trl_metrics(mode, inputs)
        return result

    def record_trl_metrics(self, mode: str, inputs: dict[str, Any]) -> None:
        """What ``SFTTrainer.compute_loss`` appends to ``self._metrics[mode]``: the mean entropy and
        top-1 accuracy over every process's counted tokens, and (training) the running count of
        input tokens."""
        metrics = self.labelreg_loss.metrics
        if metrics is None:
            return
        gather = self.accelerator.gather_for_metrics
        count = gather(metrics.count).sum()
        entropy, correct = gather(metrics.entropy.float()).sum(), gather(metrics.correct).sum()
        self._metrics[mode]["entropy"].append((entropy / count).item() if count > 0 else 0.0)
        self._metrics[mode]["mean_token_accuracy"].append((correct / count).item() if count > 0 else 0.0)
        if mode == "train":
            if "attention_mask" in inputs:
                local = inputs["attention_mask"].sum()
            else:  # padding-free: one row of packed tokens
                local = inputs["input_ids"].new_tensor(inputs["position_ids"].size(1))
            self._total_train_tokens += gather(local).sum().item() // self._tp_size
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
