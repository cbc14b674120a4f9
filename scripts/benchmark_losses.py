#!/usr/bin/env python
"""Benchmark: every method's loss against the peers' label smoothing, the fused output layer, and
Hugging Face and TRL causal-LM training steps at a 128k vocabulary.

Four sections (``--sections``), each a table of median step times (forward + backward) and peak
step memory, with ratios measured in the same run; the variants take turns within every round,
in an order that rotates, so drift in the machine's speed hits all alike. Peak memory is read in a
fresh process per table (CUDA's peak allocation, or the resident set on Linux CPUs), never
estimated.

1. ``logits``: the loss over random logits [N, K] (``--sizes``, ``--dtypes``): torch's
   ``F.cross_entropy(label_smoothing=0.1)``, fairseq's ``label_smoothed_nll_loss`` (on the float32
   log-softmax, as its criterion computes it), transformers' ``LabelSmoother``, Liger-Kernel's
   ``LigerCrossEntropyLoss`` (CUDA only, when installed), each method of this package, and the
   floor: reading the logits once and writing a gradient of their size (and, where LS++ and LLS
   factor their table, the matrix products they spend on it alone). Times are also given
   against our LS and against the floor; ``--targets zipf`` draws targets as text's tokens are
   (LS++ and LLS build a learned row once per distinct class of a batch).
2. ``fused``: the output projection and the loss, from hidden states [N, d] and a weight [V, d]
   (``--fused-sizes``, ``--hidden``): torch (linear + CE), each method on the logits (plain) and
   fused (:func:`labelreg_nlp.fused_linear_parts`), Liger's ``LigerFusedLinearCrossEntropyLoss``
   and Apple's Cut Cross-Entropy ``linear_cross_entropy`` (plain CE: it has no label smoothing;
   CUDA only, when installed).
3. ``hf``: one training step (``Trainer.compute_loss`` + backward) of a Llama causal LM built from
   a config (``--hf-vocab``, small hidden size, 2 layers) on ``--hf-batch`` x ``--hf-length``
   tokens: the model's own loss, ``LabelRegTrainer`` on the logits and with ``fused_linear``.
4. ``sft``: the same step through TRL's ``SFTTrainer``: its default loss (TRL's fused LM head),
   its ``label_smoothing_factor`` (full logits), ``LabelRegSFTTrainer`` on the logits and with
   ``fused_linear`` (which also runs TRL's gradient-free metric pass, as TRL does for any
   ``compute_loss_func``).

Example:  python scripts/benchmark_losses.py --sections logits --sizes 4096x10000 --dtypes float32
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from labelreg_nlp import TokenLoss  # noqa: E402
from labelreg_nlp.experiments.timing import child_peaks, peak_step_bytes, step_times  # noqa: E402
from labelreg_nlp.losses.learned import DEFAULT_RANK, FULL_MAX_CLASSES  # noqa: E402
from labelreg_nlp.losses.registry import METHODS  # noqa: E402

MIB = 2**20
SECTIONS = ("logits", "fused", "hf", "sft")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
LOSS_METHODS = [("none", {}), ("ls", {}), ("ls", {"convention": "fairseq"}), ("maxsup", {}), ("ols", {}),
                ("lspp", {}), ("lls", {})]
Variant = tuple[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]
FLOOR = "floor: read the logits, write their gradient"
TABLE_PRODUCTS = "floor of LS++/LLS: their table's products alone, rank"


def size(text: str) -> tuple[int, int]:
    """``4096x128000`` -> (4096, 128000)."""
    try:
        n, k = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size is TOKENSxCLASSES such as 4096x10000, got {text!r}") from None
    if n < 1 or k < 2:
        raise argparse.ArgumentTypeError(f"tokens must be >= 1 and classes >= 2, got {text!r}")
    return n, k


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            name = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU {name}, {torch.get_num_threads()} threads"


def label(method: str, options: dict) -> str:
    extra = ", ".join(f"{k}={v}" for k, v in options.items())
    return f"{method} ({extra})" if extra else method


def liger():
    """Liger-Kernel's module, or None (it needs CUDA and Triton)."""
    try:
        import liger_kernel.transformers as module
    except ImportError:
        return None
    return module


def cut_cross_entropy():
    """Apple's ``cut_cross_entropy.linear_cross_entropy``, or None (it needs CUDA and Triton)."""
    try:
        from cut_cross_entropy import linear_cross_entropy
    except ImportError:
        return None
    return linear_cross_entropy


# ---------------------------------------------------------------------------------------- logits
class ReadWriteFloor(torch.autograd.Function):
    """The least a loss over logits can cost: read them once (forward) and write a gradient of
    their size (backward)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.shape, ctx.dtype = x.shape, x.dtype
        return x.sum(dtype=torch.float32)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.full(ctx.shape, float(g), dtype=ctx.dtype, device=g.device)


class TableProducts(torch.autograd.Function):
    """The matrix products LS++ and LLS spend on a factored table ``r_y = u_y v^T`` (rank r) and
    nothing else: the rows of the batch's distinct targets in the forward, and in the backward the
    rows again (rebuilt, not kept: keeping them would hold a second logits-sized tensor) and the
    two parameter gradients. A floor for those methods over a factored table, whatever the rest
    of their kernels costs."""

    @staticmethod
    def forward(ctx, target: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        classes = target.unique()
        ctx.save_for_backward(classes, u, v)
        return (u[classes] @ v.T).sum()

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        classes, u, v = ctx.saved_tensors
        u_y = u[classes]
        grad_rows = (u_y @ v.T).mul_(g)  # stands for the kernel's row gradient, of the same size
        grad_u = torch.zeros_like(u).index_add_(0, classes, grad_rows @ v)
        return None, grad_u, grad_rows.T @ u_y


def table_products(k: int, device: torch.device) -> Variant:
    """The :class:`TableProducts` row for K classes, at the rank LS++/LLS use for K."""
    rank = DEFAULT_RANK
    u = (torch.randn(k, rank) / rank**0.5).to(device).requires_grad_()
    v = (torch.randn(k, rank) / rank**0.5).to(device).requires_grad_()

    def run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        u.grad = v.grad = None
        return TableProducts.apply(y, u, v)  # the logits are not read: this row is the products alone

    return f"{TABLE_PRODUCTS} {rank}", run


def targets(n: int, k: int, kind: str, gen: torch.Generator) -> torch.Tensor:
    """``n`` targets over ``k`` classes: ``uniform``, or ``zipf`` (class i drawn with weight 1/(i+1),
    as token frequencies in text go: a 4096-token batch over 10k classes holds ~1,500 distinct)."""
    if kind == "uniform":
        return torch.randint(0, k, (n,), generator=gen)
    weights = 1.0 / torch.arange(1, k + 1, dtype=torch.float64)
    return torch.multinomial(weights, n, replacement=True, generator=gen)


def logits_setup(n: int, k: int, dtype: torch.dtype, device: torch.device,
                 target_kind: str = "uniform") -> tuple[torch.Tensor, torch.Tensor, list[Variant]]:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(n, k, generator=gen).to(device)
    target = targets(n, k, target_kind, gen).to(device)
    # half of the positions predicted correctly (target logit above the row max), so OLS accumulates
    hit = (torch.rand(n, generator=gen) < 0.5).to(device)
    rows = torch.arange(n, device=device)[hit]
    logits[rows, target[hit]] = logits[rows].max(-1).values + 1.0
    logits = logits.to(dtype)
    variants: list[Variant] = [("torch CE(label_smoothing=0.1)", lambda x, y: F.cross_entropy(x, y, label_smoothing=0.1))]
    try:
        from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss

        def fairseq_ls(x, y):
            lprobs = F.log_softmax(x.float(), dim=-1)  # fairseq's get_normalized_probs: float32
            return label_smoothed_nll_loss(lprobs, y[:, None], 0.1, ignore_index=None, reduce=True)[0] / y.numel()

        variants.append(("fairseq label_smoothed_nll_loss", fairseq_ls))
        logging.getLogger().setLevel(logging.WARNING)  # importing fairseq lowers the root logger to DEBUG
    except ImportError:
        pass
    try:
        from transformers.trainer_pt_utils import LabelSmoother

        smoother = LabelSmoother(epsilon=0.1)
        variants.append(("transformers LabelSmoother", lambda x, y: smoother({"logits": x}, y)))
    except ImportError:
        pass
    lk = liger() if device.type == "cuda" else None
    if lk is not None:
        liger_ce = lk.LigerCrossEntropyLoss(label_smoothing=0.1)
        variants.append(("Liger LigerCrossEntropyLoss", lambda x, y: liger_ce(x, y)))
    for method, options in LOSS_METHODS:
        loss = TokenLoss(method, 0.1, num_classes=k, **options).to(device)
        variants.append((f"ours: {label(method, options)}", loss))
    variants.append((FLOOR, lambda x, y: ReadWriteFloor.apply(x)))
    if k > FULL_MAX_CLASSES:  # LS++/LLS use a factored table
        variants.append(table_products(k, device))
    return logits, target, variants


# ----------------------------------------------------------------------------------------- fused
def fused_setup(n: int, k: int, dtype: torch.dtype, device: torch.device, hidden_size: int,
                methods: list[str]) -> tuple[torch.Tensor, torch.Tensor, list[Variant]]:
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(n, hidden_size, generator=gen).to(device=device, dtype=dtype)
    weight = (torch.randn(k, hidden_size, generator=gen) * hidden_size**-0.5).to(device=device, dtype=dtype)
    weight.requires_grad_()
    target = torch.randint(0, k, (n,), generator=gen).to(device)

    def step(fn):
        def run(x, y):
            weight.grad = None  # a fresh gradient each step, as after optimizer.zero_grad(set_to_none=True)
            return fn(x, y)
        return run

    variants: list[Variant] = [("torch linear + CE(label_smoothing=0.1)",
                                step(lambda x, y: F.cross_entropy(F.linear(x, weight), y, label_smoothing=0.1)))]
    lk = liger() if device.type == "cuda" else None
    if lk is not None:
        liger_flce = lk.LigerFusedLinearCrossEntropyLoss(label_smoothing=0.1)
        variants.append(("Liger LigerFusedLinearCrossEntropyLoss", step(lambda x, y: liger_flce(weight, x, y))))
    cce = cut_cross_entropy() if device.type == "cuda" else None
    if cce is not None:  # Apple's Cut Cross-Entropy has no label smoothing: plain CE, for time and memory
        variants.append(("Apple CCE linear_cross_entropy (plain CE)", step(lambda x, y: cce(x, weight, y))))
    for method in methods:
        loss = TokenLoss(method, 0.1, num_classes=k).to(device)
        variants.append((f"ours: {method}, logits", step(lambda x, y, loss=loss: loss(F.linear(x, weight), y))))
        variants.append((f"ours: {method}, fused", step(lambda x, y, loss=loss: loss.fused(x, weight, y))))
    return hidden, target, variants


# -------------------------------------------------------------------------------------------- hf
def trainer_steps(trainers: list[tuple[str, Any]], model: torch.nn.Module, inputs: dict, num_items: int,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor, list[Variant]]:
    """A variant per trainer: one ``compute_loss`` of ``inputs`` (gradients of the model reset
    first, as after ``zero_grad(set_to_none=True)``); the logits and targets are unused stand-ins."""
    items = torch.tensor(num_items, device=device)

    def step(trainer):
        def run(_x, _y):
            model.zero_grad(set_to_none=True)
            return trainer.compute_loss(model, dict(inputs), num_items_in_batch=items)
        return run

    dummy = torch.zeros(1, device=device)
    return dummy, dummy, [(name, step(trainer)) for name, trainer in trainers]


def hf_setup(vocab: int, batch: int, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, list[Variant]]:
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments
    from transformers.utils import logging as hf_logging

    from labelreg_nlp import LabelRegTrainer

    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=max(length, 64),
                         tie_word_embeddings=False)
    model = LlamaForCausalLM(config).to(device).train()
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (batch, length), generator=gen).to(device)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}
    out_dir = tempfile.mkdtemp(prefix="labelreg-bench-")
    args = TrainingArguments(output_dir=out_dir, report_to=[], use_cpu=device.type == "cpu", disable_tqdm=True)
    trainers = [("model's own loss (Trainer)", Trainer(model=model, args=args))]
    trainers += [(f"LabelRegTrainer {m}, logits", LabelRegTrainer(model=model, args=args, method=m)) for m in ("ls",)]
    trainers += [(f"LabelRegTrainer {m}, fused_linear", LabelRegTrainer(model=model, args=args, method=m, fused_linear=True))
                 for m in ("ls", "maxsup")]
    return trainer_steps(trainers, model, inputs, batch * (length - 1), device)


# ------------------------------------------------------------------------------------------- sft
def sft_setup(vocab: int, batch: int, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, list[Variant]]:
    """One ``SFTTrainer.compute_loss`` + backward of the hf section's Llama: TRL's default loss (its
    fused LM head), TRL's ``label_smoothing_factor`` (full logits) and ``LabelRegSFTTrainer``."""
    from datasets import Dataset
    from tokenizers import Tokenizer, models
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from transformers.utils import logging as hf_logging
    from trl import SFTConfig, SFTTrainer

    from labelreg_nlp import LabelRegSFTTrainer

    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=max(length, 64),
                         tie_word_embeddings=False, pad_token_id=0, eos_token_id=1)
    model = LlamaForCausalLM(config).to(device).train()
    words = Tokenizer(models.WordLevel({"<pad>": 0, "<eos>": 1}, unk_token="<pad>"))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=words, pad_token="<pad>", eos_token="<eos>")
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(2, vocab, (batch, length), generator=gen).to(device)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}
    data = Dataset.from_dict({"input_ids": ids[:1].tolist()})

    def config_(**extra):
        return SFTConfig(output_dir=tempfile.mkdtemp(prefix="labelreg-bench-"), report_to=[], disable_tqdm=True,
                         use_cpu=device.type == "cpu", bf16=False, **extra)

    common = dict(model=model, train_dataset=data, processing_class=tokenizer)
    trainers = [("TRL SFTTrainer, default loss", SFTTrainer(args=config_(), **common)),
                ("TRL SFTTrainer, label_smoothing_factor=0.1",
                 SFTTrainer(args=config_(label_smoothing_factor=0.1), **common)),
                ("LabelRegSFTTrainer ls, logits", LabelRegSFTTrainer(args=config_(), method="ls", **common))]
    trainers += [(f"LabelRegSFTTrainer {m}, fused_linear",
                  LabelRegSFTTrainer(args=config_(), method=m, fused_linear=True, **common)) for m in ("ls", "lls")]
    return trainer_steps(trainers, model, inputs, batch * (length - 1), device)


# ------------------------------------------------------------------------------------------ main
def tables(args: argparse.Namespace) -> list[tuple[str, str, Callable[[], tuple]]]:
    """(section, title, setup) of every table the arguments ask for, in order."""
    device = torch.device(args.device)
    out = []
    if "logits" in args.sections:
        for dtype in args.dtypes:
            for n, k in args.sizes:
                out.append(("logits", f"loss over logits, {n} x {k}, {dtype}, {args.targets} targets",
                            lambda n=n, k=k, dtype=dtype: logits_setup(n, k, DTYPES[dtype], device, args.targets)))
    if "fused" in args.sections:
        for dtype in args.fused_dtypes:
            for n, k in args.fused_sizes:
                out.append(("fused", f"output layer + loss, {n} x {k}, hidden {args.hidden}, {dtype}",
                            lambda n=n, k=k, dtype=dtype: fused_setup(n, k, DTYPES[dtype], device, args.hidden,
                                                                      args.fused_methods)))
    if "hf" in args.sections:
        out.append(("hf", f"Llama causal LM step, vocabulary {args.hf_vocab}, {args.hf_batch} x {args.hf_length} "
                          "tokens, hidden 64, 2 layers, float32",
                    lambda: hf_setup(args.hf_vocab, args.hf_batch, args.hf_length, device)))
    if "sft" in args.sections:
        out.append(("sft", f"TRL SFTTrainer step, Llama causal LM, vocabulary {args.hf_vocab}, {args.hf_batch} x "
                           f"{args.hf_length} tokens, hidden 64, 2 layers, float32",
                    lambda: sft_setup(args.hf_vocab, args.hf_batch, args.hf_length, device)))
    return out


def ratio_bases(section: str, names: list[str]) -> tuple[list[str], list[list[int]]]:
    """Column titles and, per row, the rows its time and memory are divided by: the first row (the
    peer: torch, or the model's own loss); in the fused table also the same method on the logits."""
    first = {"logits": "torch", "fused": "torch", "hf": "model's own loss", "sft": "TRL's default loss"}[section]
    if section == "logits":  # also against our LS, and LS against the floor
        ls, floor = names.index("ours: ls"), names.index(FLOOR)
        return [f"vs {first}", "vs ours: ls", "vs floor"], [[0, ls, floor] for _ in names]
    if section != "fused":
        return [f"vs {first}"], [[0] for _ in names]
    bases = []
    for name in names:
        plain = name[: -len(", fused")] + ", logits" if name.endswith(", fused") else name
        bases.append([names.index(plain), 0])
    return ["vs logits path", f"vs {first}"], bases


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="tables to run (default: all)")
    p.add_argument("--sizes", type=size, nargs="+", default=[(4096, 10000), (8192, 32000), (4096, 128000)],
                   help="logits section: TOKENSxCLASSES (default 4096x10000 8192x32000 4096x128000)")
    p.add_argument("--dtypes", nargs="+", choices=DTYPES, default=["float32", "bfloat16"],
                   help="logits section: dtypes of the logits (default float32 bfloat16)")
    p.add_argument("--targets", choices=("uniform", "zipf"), default="uniform",
                   help="logits section: targets drawn uniformly over the classes, or with Zipf's law (class i "
                        "with weight 1/(i+1)), as tokens of text are (default uniform)")
    p.add_argument("--fused-sizes", type=size, nargs="+", default=[(4096, 128000)],
                   help="fused section: TOKENSxVOCAB (default 4096x128000)")
    p.add_argument("--fused-dtypes", nargs="+", choices=DTYPES, default=["float32"],
                   help="fused section: dtype of hidden states and weight (default float32; bfloat16 matmuls "
                        "are slow on most CPUs)")
    p.add_argument("--fused-methods", nargs="+", choices=list(METHODS), default=["ls", "maxsup", "ols", "lspp", "lls"],
                   help="fused section: methods (default ls maxsup ols lspp lls)")
    p.add_argument("--hidden", type=int, default=128, help="fused section: hidden size d (default 128)")
    p.add_argument("--hf-vocab", type=int, default=128000, help="hf and sft sections: vocabulary (default 128000)")
    p.add_argument("--hf-batch", type=int, default=2, help="hf and sft sections: sequences per step (default 2)")
    p.add_argument("--hf-length", type=int, default=512, help="hf and sft sections: tokens per sequence (default 512)")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds; the median is reported (default 5)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="cpu or cuda (default: cuda if available)")
    p.add_argument("--list", action="store_true", help="print the tables these options would make, and stop")
    p.add_argument("--peaks-of", type=int, default=None, help=argparse.SUPPRESS)  # child: peak memory of table i
    args = p.parse_args(argv)
    if args.repeats < 1 or args.hidden < 1 or args.hf_batch < 1 or args.hf_length < 2 or args.hf_vocab < 2:
        p.error("--repeats, --hidden and --hf-batch must be >= 1, --hf-length and --hf-vocab >= 2")
    plan = tables(args)
    if args.list:
        print("\n".join(title for _, title, _ in plan))
        return 0

    if args.peaks_of is not None:
        x, target, variants = plan[args.peaks_of][2]()
        print(json.dumps([peak_step_bytes(fn, x, target) for _, fn in variants]))
        return 0

    device = torch.device(args.device)
    print(f"device: {machine(device)}; torch {torch.__version__}; median of {args.repeats} rounds "
          "(forward + backward); peak = memory a step adds at its peak (gradients included)\n")
    given = argv if argv is not None else sys.argv[1:]
    for i, (section, title, setup) in enumerate(plan):
        x, target, variants = setup()
        names = [name for name, _ in variants]
        times = step_times([fn for _, fn in variants], x, target, args.repeats)
        del x, target, variants  # the child measuring peaks needs the memory
        peaks = child_peaks(__file__, [*given, "--peaks-of", str(i)], len(times))
        titles, bases = ratio_bases(section, names)
        print(f"### {title}\n")
        memory_columns = len(titles) if section == "fused" else 1  # logits: memory against torch only
        header = ["variant", "step ms", *(f"time {t}" for t in titles), "peak MiB",
                  *(f"memory {t}" for t in titles[:memory_columns])]
        print("| " + " | ".join(header) + " |\n" + "|---" * len(header) + "|")
        for name, t, peak, rows in zip(names, times, peaks, bases, strict=True):
            cells = [name, f"{t * 1e3:,.1f}", *(f"{t / times[b]:.2f}x" for b in rows),
                     "-" if peak is None else f"{peak / MIB:,.0f}",
                     *("-" if peak is None or not peaks[b] else f"{peak / peaks[b]:.2f}x"
                       for b in rows[:memory_columns])]
            print("| " + " | ".join(cells) + " |", flush=True)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
