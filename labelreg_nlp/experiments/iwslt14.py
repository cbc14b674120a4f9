"""Read the raw IWSLT14 de-en release the way fairseq's ``examples/translation/prepare-iwslt14.sh`` does.

Expected layout (the unpacked ``de-en`` folder of the release)::

    train.tags.de-en.de   train.tags.de-en.en                 (training talks, one line per segment)
    IWSLT14.TED.dev2010.de-en.de.xml   ...en.xml              (dev / test sets, <seg id="N"> lines)
    IWSLT14.TEDX.dev2012.de-en.{de,en}.xml
    IWSLT14.TED.tst2010.de-en.{de,en}.xml  tst2011  tst2012

Training files: lines holding talk metadata are dropped (``<url>``, ``<talkid>``, ``<keywords>``,
``<speaker>``, ``<reviewer``, ``<translator``, ``<doc``, ``</doc>``) and the ``<title>`` /
``<description>`` tags are stripped. Evaluation files: the text of every ``<seg id=...>`` line,
with ``’`` written as ``'``. The test set is the concatenation of the five files above, in that
order, as in the recipe. Tokenization, cleaning, the valid split and BPE follow in
:mod:`labelreg_nlp.experiments.translation`.
"""

from __future__ import annotations

import re
from pathlib import Path

METADATA_MARKERS = ("<url>", "<talkid>", "<keywords>", "<speaker>", "<reviewer", "<translator", "<doc", "</doc>")
STRIPPED_TAGS = re.compile(r"</?(title|description)>")
SEGMENT = re.compile(r"^\s*<seg id=\"?[^>]*>\s*(.*?)\s*</seg>\s*$")
TEST_SETS = ("IWSLT14.TED.dev2010", "IWSLT14.TEDX.dev2012", "IWSLT14.TED.tst2010", "IWSLT14.TED.tst2011",
             "IWSLT14.TED.tst2012")


class ReleaseError(ValueError):
    """A file of the raw release is missing or malformed; the message names it."""


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise ReleaseError(f"missing IWSLT14 file: {path}")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise ReleaseError(f"{path} is not UTF-8 text: {error}") from None


def _training_lines(path: Path) -> list[str]:
    return [STRIPPED_TAGS.sub("", line).strip() for line in _lines(path)
            if not any(marker in line for marker in METADATA_MARKERS)]


def _segments(path: Path) -> list[str]:
    segments = []
    for line in _lines(path):
        if "<seg id" in line:
            match = SEGMENT.match(line)
            if match is None:
                raise ReleaseError(f"{path}: malformed <seg> line: {line.strip()[:80]!r}")
            segments.append(match.group(1).replace("\u2019", "'"))
    if not segments:
        raise ReleaseError(f"{path}: no <seg id=...> lines (is it an IWSLT xml file?)")
    return segments


def _aligned(source: list[str], target: list[str], what: str) -> list[tuple[str, str]]:
    if len(source) != len(target):
        raise ReleaseError(f"{what}: {len(source)} source lines but {len(target)} target lines")
    return list(zip(source, target, strict=True))


def read_release(raw_dir: str | Path, src: str = "de", tgt: str = "en") -> dict[str, list[tuple[str, str]]]:
    """``{"train": pairs, "test": pairs}`` of untokenized ``(source, target)`` text."""
    raw = Path(raw_dir)
    if not raw.is_dir():
        raise ReleaseError(f"IWSLT14 release folder not found: {raw}")
    pair = f"{src}-{tgt}" if (raw / f"train.tags.{src}-{tgt}.{src}").exists() else f"{tgt}-{src}"
    train = _aligned(_training_lines(raw / f"train.tags.{pair}.{src}"),
                     _training_lines(raw / f"train.tags.{pair}.{tgt}"), f"{raw}/train.tags.{pair}")
    test: list[tuple[str, str]] = []
    for name in TEST_SETS:
        test += _aligned(_segments(raw / f"{name}.{pair}.{src}.xml"), _segments(raw / f"{name}.{pair}.{tgt}.xml"),
                         f"{raw}/{name}.{pair}")
    return {"train": train, "test": test}
