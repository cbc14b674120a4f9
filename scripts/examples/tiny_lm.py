"""The embedded default of the example loops: a 2-layer Llama built from a config and synthetic
token sequences with something to learn (no download)."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

IGNORE_INDEX = -100


def tiny_llama(vocab: int, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
                                        pad_token_id=0))


def token_sequences(n: int, vocab: int, seed: int) -> list[torch.Tensor]:
    """``n`` sequences of 6 to 24 tokens; each token tends to follow from the previous one."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(6, 25, (1,), generator=gen))
        start = torch.randint(2, vocab, (1,), generator=gen)
        steps = torch.randint(1, 4, (length,), generator=gen)
        out.append((start + steps.cumsum(0)) % (vocab - 2) + 2)
    return out


def collate(sequences: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids`` (pad 0), ``attention_mask`` and ``labels`` (-100 at padding)."""
    width = max(len(s) for s in sequences)
    ids = torch.zeros(len(sequences), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(sequences):
        ids[i, : len(s)], mask[i, : len(s)] = s, 1
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, IGNORE_INDEX)}


def next_token_labels(labels: torch.Tensor) -> torch.Tensor:
    """Labels aligned with the logits of a causal LM: position t scores token t + 1."""
    return torch.nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)[:, 1:]
