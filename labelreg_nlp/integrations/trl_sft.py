"""``LabelRegSFTTrainer``: TRL's ``SFTTrainer`` with a label-regularized loss.

The same keyword arguments as :class:`~labelreg_nlp.integrations.hf.LabelRegTrainer`
(``method=``, ``alpha=``, ``fused_linear=``, ...) and the same behaviour: the loss is TRL's
``compute_loss_func`` (so TRL keeps its own handling of ``num_items_in_batch``, gradient
accumulation and ``average_tokens_across_devices``), the method's state is saved in every
checkpoint (``labelreg_state.pt``) and read back on resume, LS++/LLS tables get their own
optimizer group. Padding-free batches (``padding_free=True``) are scored sequence by sequence
(:func:`~labelreg_nlp.integrations.hf.trainer.mask_sequence_starts`).

TRL's logged ``entropy`` and ``mean_token_accuracy`` stay TRL's own: with a ``compute_loss_func``,
``SFTTrainer`` measures them in a second, gradient-free pass through its fused LM head.
"""

from __future__ import annotations

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
