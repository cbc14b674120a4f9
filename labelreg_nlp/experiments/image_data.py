"""Image data sets for the image-classification script, as float tensors in memory.

* ``fashion-mnist``: the IDX files of Debian's ``dataset-fashion-mnist`` package
  (``/usr/share/datasets/fashion-mnist``; ``make fashion-mnist`` installs it) or any folder
  holding the four ``*-ubyte.gz`` files ("Fashion-MNIST: a Novel Image Dataset for Benchmarking
  Machine Learning Algorithms", Xiao, Rasul and Vollgraf, arXiv 1708.07747);
* ``digits``: scikit-learn's bundled 8 x 8 digits (1,797 images; the tests' data set);
* ``npz:PATH``: arrays ``x_train``, ``y_train``, ``x_test``, ``y_test`` (images ``[N, H, W]`` or
  ``[N, C, H, W]`` or ``[N, H, W, C]`` with C in 1, 3; integer labels);
* ``folder:PATH``: ``PATH/train/<class>/*.png|jpg`` and ``PATH/test/<class>/*`` (Pillow reads them;
  sizes must agree).

Images come back as float32 ``[N, C, H, W]`` scaled to [0, 1], labels as int64.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte.gz", "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz",
}
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")


@dataclass
class ImageData:
    """Train and test splits in memory."""

    x_train: Tensor  # [N, C, H, W] float32 in [0, 1]
    y_train: Tensor  # [N] int64
    x_test: Tensor
    y_test: Tensor
    classes: tuple[str, ...]
    name: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip or plain) as a uint8 array: ``[N, H, W]`` images or ``[N]`` labels."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (header {data[:4]!r})")
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape}, the file holds {array.size} values")
    return array.reshape(shape)


def load_fashion_mnist(directory: str | Path | None = None) -> ImageData:
    """Fashion-MNIST (60,000 train, 10,000 test, 28 x 28 grey) from its four IDX files."""
    folder = Path(directory) if directory else FASHION_MNIST_DIR
    missing = [name for name in FASHION_MNIST_FILES.values() if not (folder / name).exists()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST not found in {folder} (missing {', '.join(missing)}). Install Debian's "
            f"package (`make fashion-mnist`, i.e. `apt-get install dataset-fashion-mnist`) or pass "
            f"--data-dir with the four *-ubyte.gz files of https://github.com/zalandoresearch/fashion-mnist"
        )
    arrays = {key: read_idx(folder / name) for key, name in FASHION_MNIST_FILES.items()}
    return _from_arrays(arrays, FASHION_MNIST_CLASSES, "fashion-mnist")


def load_digits_data(test_fraction: float = 0.25, seed: int = 0) -> ImageData:
    """scikit-learn's 8 x 8 digits, split by a seeded permutation (pixel values 0..16)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError("the digits data set needs scikit-learn: pip install scikit-learn") from err
    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32)[:, None] / 16.0
    y = torch.tensor(bunch.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = int(round(len(y) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return ImageData(x[train], y[train], x[test], y[test], tuple(str(i) for i in range(10)), "digits")


def load_npz(path: str | Path) -> ImageData:
    """Arrays ``x_train``, ``y_train``, ``x_test``, ``y_test`` from an ``.npz`` (optional ``classes``)."""
    from ..metrics.prediction_files import read_npz

    arrays = read_npz(path)
    needed = ("x_train", "y_train", "x_test", "y_test")
    missing = [k for k in needed if k not in arrays]
    if missing:
        raise ValueError(f"{path} lacks the arrays {missing} (it has {sorted(arrays)})")
    classes = tuple(str(c) for c in arrays["classes"]) if "classes" in arrays else None
    for key in ("y_train", "y_test"):
        y = arrays[key]
        if y.ndim != 1 or y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0)):
            raise ValueError(f"{path}: {key} must be a 1-d array of integer class indices, got shape "
                             f"{y.shape} dtype {y.dtype} (one-hot or multi-label arrays: give argmax)")
    if not len(arrays["y_train"]) or not len(arrays["y_test"]):
        raise ValueError(f"{path}: y_train and y_test must not be empty")
    n_classes = int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1
    return _from_arrays(arrays, classes or tuple(str(i) for i in range(n_classes)), Path(path).stem)


def _read_image(file: Path) -> np.ndarray:
    """One image as a viewer shows it: grey stays ``[H, W]``, anything else (palette, RGBA,
    CMYK, 16-bit) becomes RGB ``[H, W, 3]``; an unreadable file is an error naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            image.load()
            return np.asarray(image if image.mode == "L" else image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ValueError(f"{file}: not a readable image ({error})") from None


def load_folder(path: str | Path) -> ImageData:
    """``PATH/train/<class>/<image>`` and ``PATH/test/<class>/<image>``; classes sorted by name."""

    root = Path(path)
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise FileNotFoundError(f"{root / split} is not a folder (expected {root}/train/<class>/... and {root}/test/<class>/...)")
    classes = tuple(sorted(d.name for d in (root / "train").iterdir() if d.is_dir()))
    if len(classes) < 2:
        raise ValueError(f"{root / 'train'} has {len(classes)} class folders; at least 2 are needed")
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        images, labels = [], []
        for label, name in enumerate(classes):
            for file in sorted((root / split / name).glob("*")):
                if file.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".gif"):
                    images.append(_read_image(file))
                    labels.append(label)
        if not images:
            raise ValueError(f"{root / split} holds no images (.png, .jpg, .jpeg, .bmp, .gif) in its class folders")
        if any(im.ndim == 3 for im in images):  # some colour: every image as RGB, as a viewer shows them
            images = [np.repeat(im[..., None], 3, axis=-1) if im.ndim == 2 else im for im in images]
        shapes = {im.shape for im in images}
        if len(shapes) != 1:
            raise ValueError(f"images under {root / split} have different shapes {sorted(shapes)}; resize them first")
        arrays["x_" + split], arrays["y_" + split] = np.stack(images), np.array(labels)
    return _from_arrays(arrays, classes, root.name)


MAX_CHANNELS = 4


def _as_nchw(x: np.ndarray, name: str = "images") -> Tensor:
    """``[N, H, W]``, ``[N, C, H, W]`` or ``[N, H, W, C]`` (C from 1 to 4) as float ``[N, C, H, W]``.

    The channel axis is the small one (at most 4) of axes 1 and 3; a shape where both or neither
    are small is refused, naming it, rather than read along the wrong axis."""
    if x.dtype.kind not in "uif" and x.dtype != np.bool_:
        raise ValueError(f"{name}: images must be numbers, got dtype {x.dtype}")
    t = torch.from_numpy(np.array(x, copy=True))
    if t.dim() == 3:
        t = t[:, None]
    elif t.dim() == 4:
        first, last = t.shape[1] <= MAX_CHANNELS, t.shape[-1] <= MAX_CHANNELS
        if last and not first:
            t = t.permute(0, 3, 1, 2)
        elif first == last:
            raise ValueError(f"{name}: cannot tell the channel axis of shape {tuple(x.shape)}: give [N, C, H, W] or "
                             f"[N, H, W, C] with 1 to {MAX_CHANNELS} channels and images larger than that")
    else:
        raise ValueError(f"{name}: images must be [N, H, W], [N, C, H, W] or [N, H, W, C], got shape {tuple(x.shape)}")
    t = t.float()
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: images hold NaN or inf values")
    scale = 255.0 if x.dtype == np.uint8 or (t.numel() and float(t.max()) > 1.0) else 1.0
    return t.div_(scale).contiguous()


def _from_arrays(arrays: dict[str, np.ndarray], classes: tuple[str, ...], name: str) -> ImageData:
    x_train, x_test = _as_nchw(arrays["x_train"], f"{name} x_train"), _as_nchw(arrays["x_test"], f"{name} x_test")
    y_train, y_test = (torch.from_numpy(np.asarray(arrays[k]).astype(np.int64)) for k in ("y_train", "y_test"))
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if len(x) != len(y):
            raise ValueError(f"{name}: {len(x)} {split} images but {len(y)} labels")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= len(classes)):
            raise ValueError(f"{name}: {split} label {int(y.max()) if int(y.max()) >= len(classes) else int(y.min())} "
                             f"is outside [0, {len(classes)})")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(f"{name}: train images {tuple(x_train.shape[1:])} and test images {tuple(x_test.shape[1:])} differ")
    return ImageData(x_train, y_train, x_test, y_test, classes, name)


def load_image_data(spec: str, data_dir: str | None = None) -> ImageData:
    """``fashion-mnist`` (``data_dir``: its folder), ``digits``, ``npz:PATH`` or ``folder:PATH``."""
    if spec == "fashion-mnist":
        return load_fashion_mnist(data_dir)
    if spec == "digits":
        return load_digits_data()
    if spec.startswith("npz:"):
        return load_npz(spec[4:])
    if spec.startswith("folder:"):
        return load_folder(spec[7:])
    raise ValueError(f"--data must be fashion-mnist, digits, npz:PATH or folder:PATH, got {spec!r}")
