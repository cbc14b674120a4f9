"""A real (tiny) fairseq translation task, transformer and padded batch, built in-process."""

import torch

VOCAB = 40


def build(seed: int = 0, n_sentences: int = 6, extra_args: tuple[str, ...] = ()):
    from fairseq import options
    from fairseq.data import Dictionary, LanguagePairDataset
    from fairseq.models.transformer import TransformerModel
    from fairseq.tasks.translation import TranslationConfig, TranslationTask

    torch.manual_seed(seed)
    d = Dictionary()
    for i in range(VOCAB - len(d)):
        d.add_symbol(f"w{i}")
    task = TranslationTask(TranslationConfig(), d, d)
    args = options.parse_args_and_arch(options.get_training_parser(), [
        "unused", "--task", "translation", "--arch", "transformer", "--dropout", "0",
        "--encoder-layers", "1", "--decoder-layers", "1", "--encoder-embed-dim", "16",
        "--decoder-embed-dim", "16", "--encoder-ffn-embed-dim", "32", "--decoder-ffn-embed-dim", "32",
        "--encoder-attention-heads", "2", "--decoder-attention-heads", "2", *extra_args,
    ])
    model = TransformerModel.build_model(args, task)
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 9, (n_sentences,), generator=g).tolist()
    sents = [torch.cat([torch.randint(d.nspecial, len(d), (n,), generator=g), torch.tensor([d.eos()])]) for n in lengths]
    ds = LanguagePairDataset(sents, [len(s) for s in sents], d, sents[::-1], [len(s) for s in sents[::-1]], d)
    sample = ds.collater([ds[i] for i in range(len(ds))])
    return task, model, sample


def run(criterion, model, sample, reduce=True):
    """loss, sample_size, logging output and the gradients of every model parameter."""
    model.zero_grad()
    loss, sample_size, log = criterion(model, sample, reduce=reduce)
    loss.sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), sample_size, log, grads


def reduced(criterion_cls, logs):
    """What fairseq would print: reduce_metrics inside a fresh aggregation context."""
    from fairseq.logging import metrics

    with metrics.aggregate(new_root=True) as agg:
        criterion_cls.reduce_metrics(logs)
        return agg.get_smoothed_values()
