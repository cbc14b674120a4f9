"""The BPE tokenizer the scripts train on their training text when no pretrained model is named."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from transformers import PreTrainedTokenizerFast


def scratch_tokenizer(texts: Iterable[str], vocab_size: int, saved: Path, append_eos: bool = True
                      ) -> PreTrainedTokenizerFast:
    """The tokenizer a resumed run saved in ``saved``, else a BPE tokenizer trained on ``texts``
    with ``<pad>`` (0), ``</s>`` (1) and ``<unk>`` (2).

    Args:
        texts: the training text.
        vocab_size: the BPE vocabulary size, special tokens included.
        saved: a folder where an earlier run of the same output folder saved its tokenizer.
        append_eos: end every encoded text with ``</s>`` (TRL's SFTTrainer appends it itself).

    Returns:
        A fast tokenizer (not saved: the caller saves it with the run).

    Example:
        >>> from pathlib import Path
        >>> tok = scratch_tokenizer(["a cat sat", "a cat ran"] * 10, 40, Path("/nonexistent"))
        >>> tok.decode(tok("a cat")["input_ids"], skip_special_tokens=True)
        'a cat'
    """
    if (saved / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast.from_pretrained(saved)
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing

    # BPE: its training is deterministic (the Unigram trainer's is not), so a run and its resume agree
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    special = ["<pad>", "</s>", "<unk>"]
    tokenizer.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special))
    if append_eos:
        tokenizer.post_processor = TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
