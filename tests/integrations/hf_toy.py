"""Tiny Hugging Face models built from configs (no download) and token batches with -100 padding."""

from __future__ import annotations

import torch
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    Seq2SeqTrainingArguments,
    T5Config,
    T5ForConditionalGeneration,
    TrainingArguments,
)

VOCAB = 37
PAD = 0


def bert_classifier(num_labels: int = 3, seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64, num_labels=num_labels,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pad_token_id=PAD)
    return BertForSequenceClassification(config)


def gpt2_lm(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=VOCAB, n_embd=16, n_layer=1, n_head=2, n_positions=64,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, pad_token_id=PAD)
    return GPT2LMHeadModel(config)


def t5_seq2seq(seed: int = 0) -> T5ForConditionalGeneration:
    torch.manual_seed(seed)
    config = T5Config(vocab_size=VOCAB, d_model=16, d_ff=32, d_kv=8, num_layers=1, num_heads=2,
                      dropout_rate=0.0, pad_token_id=PAD, eos_token_id=1, decoder_start_token_id=PAD)
    return T5ForConditionalGeneration(config)


def bart_seq2seq(seed: int = 0) -> BartForConditionalGeneration:
    """A seq2seq model that adds ``final_logits_bias`` after its output layer (randomized here)."""
    torch.manual_seed(seed)
    config = BartConfig(vocab_size=VOCAB, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64,
                        dropout=0.0, attention_dropout=0.0, pad_token_id=PAD, bos_token_id=2, eos_token_id=1,
                        decoder_start_token_id=PAD, forced_eos_token_id=None)
    model = BartForConditionalGeneration(config)
    model.final_logits_bias.normal_()
    return model


def token_examples(n: int, seed: int = 0, seq2seq: bool = False) -> list[dict[str, list[int]]]:
    """Sequences of uneven length 3..12 (so micro-batches pad differently)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(3, 13, (1,), generator=gen))
        ids = torch.randint(2, VOCAB, (length,), generator=gen).tolist()
        if seq2seq:
            target = [(t * 3) % (VOCAB - 2) + 2 for t in ids[: max(2, length - 2)]] + [1]
            out.append({"input_ids": ids, "labels": target, "seq2seq": True})
        else:
            out.append({"input_ids": ids, "labels": list(ids)})
    return out


def class_examples(n: int, num_labels: int = 3, seed: int = 0) -> list[dict]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(3, 10, (1,), generator=gen))
        ids = torch.randint(2, VOCAB, (length,), generator=gen).tolist()
        out.append({"input_ids": ids, "labels": ids[0] % num_labels})
    return out


def collate(features: list[dict]) -> dict[str, torch.Tensor]:
    """Right-pad input_ids with PAD and token labels with -100; class labels stay [N]; seq2seq
    examples also get decoder_input_ids (the labels shifted right, starting with PAD)."""
    width = max(len(f["input_ids"]) for f in features)
    ids = torch.full((len(features), width), PAD)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    for i, f in enumerate(features):
        ids[i, : len(f["input_ids"])] = torch.tensor(f["input_ids"])
        mask[i, : len(f["input_ids"])] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    if isinstance(features[0]["labels"], list):
        lwidth = max(len(f["labels"]) for f in features)
        labels = torch.full((len(features), lwidth), -100)
        for i, f in enumerate(features):
            labels[i, : len(f["labels"])] = torch.tensor(f["labels"])
        batch["labels"] = labels
        if features[0].get("seq2seq"):  # what DataCollatorForSeq2Seq does: labels shifted right
            shifted = torch.full_like(labels, PAD)
            shifted[:, 1:] = labels[:, :-1].clamp(min=PAD)
            batch["decoder_input_ids"] = shifted
    else:
        batch["labels"] = torch.tensor([f["labels"] for f in features])
    return batch


def training_args(output_dir, seq2seq: bool = False, **overrides) -> TrainingArguments:
    options = dict(
        output_dir=str(output_dir), per_device_train_batch_size=4, per_device_eval_batch_size=4,
        learning_rate=1e-2, num_train_epochs=1, logging_steps=1, save_strategy="no", report_to=[],
        use_cpu=True, seed=0, data_seed=0, disable_tqdm=True, max_grad_norm=0.0, remove_unused_columns=False,
        dataloader_num_workers=0,
    )
    options.update(overrides)
    return (Seq2SeqTrainingArguments if seq2seq else TrainingArguments)(**options)


def llama_lm(vocab: int = VOCAB, seed: int = 0):
    """A one-layer Llama (SDPA attention, which keeps the sequences of a padding-free row apart)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64, pad_token_id=PAD,
                         eos_token_id=1, bos_token_id=None)
    return LlamaForCausalLM(config)


def word_tokenizer():
    """A tokenizer with only <pad> (0) and <eos> (1): the examples are already token ids."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    words = Tokenizer(models.WordLevel({"<pad>": PAD, "<eos>": 1}, unk_token="<pad>"))
    return PreTrainedTokenizerFast(tokenizer_object=words, pad_token="<pad>", eos_token="<eos>")
