#!/usr/bin/env python
"""Train a small image classifier (plain PyTorch) with a label-regularization method and report
test accuracy, NLL, ECE, AURC (MSP and pNorm), the class separation R^2 of the penultimate
features and a linear-probe accuracy on them. Saves, under --output-dir: results.json,
predictions/{validation,test}.npz (for `labelreg-nlp evaluate`), features_pca.png, a
checkpoint that --resume continues from, and run.json: every option that changes the result. A
folder that holds a run is refused unless --resume (the same options) or --overwrite.

Data: Fashion-MNIST from Debian's dataset-fashion-mnist package (`make fashion-mnist`), or
--data-dir with its four IDX files; `digits` (scikit-learn's, small); npz:PATH; folder:PATH.

Examples:
  python scripts/train_image_classifier.py --method maxsup --alpha 0.1 --alpha-end 0.2
  python scripts/train_image_classifier.py --method ols --mixup 0.8 --cutmix 1.0 --epochs 20
  python scripts/train_image_classifier.py --data digits --epochs 2 --output-dir runs/digits
"""

from __future__ import annotations

import argparse
import sys

from labelreg_nlp.experiments.image_training import (  # noqa: E402
    ImageRunConfig,
    add_method_arguments,
    method_options,
    train_image_classifier,
)
from labelreg_nlp.experiments.vision_models import MODELS  # noqa: E402


def parse_args(argv: list[str] | None = None) -> ImageRunConfig:
    d = ImageRunConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--data", default=d.data, help="fashion-mnist (default), digits, npz:PATH or folder:PATH")
    data.add_argument("--data-dir", default=None, help="folder of the Fashion-MNIST IDX files "
                      "(default: /usr/share/datasets/fashion-mnist)")
    data.add_argument("--val-fraction", type=float, default=d.val_fraction,
                      help=f"share of the training split held out for validation and pNorm's p (default: {d.val_fraction})")
    data.add_argument("--max-train", type=int, default=None, help="use only this many training images")
    train = parser.add_argument_group("training")
    train.add_argument("--model", default=d.model, choices=MODELS, help=f"network (default: {d.model})")
    train.add_argument("--width", type=int, default=d.width,
                       help=f"ResNet first-stage channels, or ViT embedding size (default: {d.width})")
    train.add_argument("--epochs", type=int, default=d.epochs, help=f"epochs (default: {d.epochs})")
    train.add_argument("--batch-size", type=int, default=d.batch_size, help=f"default: {d.batch_size}")
    train.add_argument("--lr", type=float, default=d.lr, help=f"peak SGD learning rate, one-cycle schedule (default: {d.lr})")
    train.add_argument("--weight-decay", type=float, default=d.weight_decay, help=f"default: {d.weight_decay}")
    train.add_argument("--seed", type=int, default=d.seed, help=f"initialization, batch order and mixing (default: {d.seed})")
    train.add_argument("--mixup", type=float, default=0.0, help="Mixup Beta parameter (0: off; DeiT: 0.8)")
    train.add_argument("--cutmix", type=float, default=0.0, help="CutMix Beta parameter (0: off; DeiT: 1.0)")
    train.add_argument("--mix-prob", type=float, default=1.0, help="probability of mixing a batch (default: 1)")
    train.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:1, ...")
    add_method_arguments(parser)
    run = parser.add_argument_group("output")
    run.add_argument("--output-dir", default=d.output_dir, help=f"default: {d.output_dir}")
    run.add_argument("--resume", action="store_true",
                     help="continue the run in OUTPUT_DIR from its checkpoint (every option that changes the result "
                          "must equal the run's, as OUTPUT_DIR/run.json records them); starts a new run where there is none")
    run.add_argument("--overwrite", action="store_true",
                     help="delete the run in OUTPUT_DIR and start anew (without --resume or --overwrite, a folder "
                          "that holds a run is refused)")
    run.add_argument("--stop-after", type=int, default=None,
                     help="stop after this epoch, as an interrupted run would (for time-limited jobs; then --resume)")
    run.add_argument("--probe-examples", type=int, default=d.probe_examples,
                     help=f"training images the linear probe is fitted on (default: {d.probe_examples})")
    run.add_argument("--plot-classes", type=int, default=d.plot_classes,
                     help=f"classes in the PCA figure, 0 for none (default: {d.plot_classes})")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    return ImageRunConfig(
        data=args.data, data_dir=args.data_dir, output_dir=args.output_dir, model=args.model, width=args.width,
        method=args.method, alpha=args.alpha, alpha_end=args.alpha_end, method_options=method_options(args),
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, seed=args.seed,
        val_fraction=args.val_fraction, mixup=args.mixup, cutmix=args.cutmix, mix_prob=args.mix_prob,
        max_train=args.max_train, probe_examples=args.probe_examples, plot_classes=args.plot_classes,
        device=args.device, resume=args.resume, overwrite=args.overwrite, stop_after=args.stop_after,
        progress=not args.no_progress,
    )


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    try:
        train_image_classifier(cfg)
    except (FileNotFoundError, ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
