"""Small German-English parallel corpora that exist offline (no download).

* :func:`gettext_pairs`: the translated messages of the gettext catalogs a Debian machine ships
  under ``/usr/share/locale/de/LC_MESSAGES/*.mo`` (software-UI domain, about 17k clean pairs).
* :func:`synthetic_pairs`: a generated toy De-En corpus (tiny grammar) for machines without them.
"""

from __future__ import annotations

import gettext
import glob
import random
import re
from pathlib import Path

DEFAULT_LOCALE_DIR = "/usr/share/locale/de/LC_MESSAGES"

_PLACEHOLDER = re.compile(r"%[-+ #0-9.*]*[a-zA-Z]|\{[^}]*\}|\$\{?\w+\}?")
_MARKUP = re.compile(r"[<>_&\\|@=]|\\n|\t|https?:|\.\w{2,4}$")


def _clean(text: str) -> str | None:
    text = " ".join(text.split())
    if not text or _MARKUP.search(text) or len(_PLACEHOLDER.findall(text)) > 1:
        return None
    return text


def gettext_pairs(
    locale_dir: str | Path = DEFAULT_LOCALE_DIR, min_words: int = 2, max_words: int = 40
) -> list[tuple[str, str]]:
    """``(german, english)`` pairs from every readable ``.mo`` catalog in ``locale_dir``.

    Kept: single-sentence messages with 2..40 words on each side, at most one format placeholder,
    no markup, German different from English; first translation of each English message wins.
    Sorted by English text so the result does not depend on file-system order.
    """
    by_english: dict[str, str] = {}
    for path in sorted(glob.glob(str(Path(locale_dir) / "*.mo"))):
        try:
            with open(path, "rb") as handle:
                catalog = gettext.GNUTranslations(handle)._catalog  # noqa: SLF001 (public data, no API)
        except (OSError, UnicodeDecodeError, ValueError):
            continue  # a catalog in a legacy encoding or a damaged file: skip it
        for key, german in catalog.items():
            english = key[0] if isinstance(key, tuple) else key
            if not english or not isinstance(german, str):
                continue
            en, de = _clean(english), _clean(german)
            if en is None or de is None or en == de:
                continue
            if not (min_words <= len(en.split()) <= max_words and min_words <= len(de.split()) <= max_words):
                continue
            by_english.setdefault(en, de)
    return [(de, en) for en, de in sorted(by_english.items())]


_SUBJECTS = [("der Hund", "the dog"), ("die Katze", "the cat"), ("der Mann", "the man"),
             ("die Frau", "the woman"), ("das Kind", "the child"), ("der Lehrer", "the teacher")]
_VERBS = [("sieht", "sees"), ("findet", "finds"), ("mag", "likes"), ("ruft", "calls"), ("hört", "hears")]
_OBJECTS = [("den Ball", "the ball"), ("das Haus", "the house"), ("den Baum", "the tree"),
            ("das Auto", "the car"), ("den Vogel", "the bird"), ("das Buch", "the book")]
_ADVERBS = [("", ""), ("heute", "today"), ("oft", "often"), ("nie", "never"), ("gestern", "yesterday")]


def synthetic_pairs(n: int = 4000, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` distinct-as-possible ``(german, english)`` sentences from a tiny grammar."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        (s_de, s_en), (v_de, v_en), (o_de, o_en), (a_de, a_en) = (
            rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS), rng.choice(_ADVERBS))
        de = " ".join(w for w in (s_de, v_de, a_de, o_de) if w)
        en = " ".join(w for w in (s_en, v_en, o_en, a_en) if w)
        de, en = de[0].upper() + de[1:] + ".", en[0].upper() + en[1:] + "."
        pairs.append((de, en))
    return pairs


def offline_de_en_pairs(locale_dir: str | Path = DEFAULT_LOCALE_DIR, min_pairs: int = 1000) -> tuple[list[tuple[str, str]], str]:
    """The gettext corpus when it has at least ``min_pairs`` pairs, else the synthetic one.

    Returns ``(pairs, name)`` with ``name`` in ``{"gettext", "synthetic"}``.
    """
    pairs = gettext_pairs(locale_dir)
    if len(pairs) >= min_pairs:
        return pairs, "gettext"
    return synthetic_pairs(), "synthetic"


def split_pairs(
    pairs: list[tuple[str, str]], valid: int, test: int, seed: int = 1
) -> dict[str, list[tuple[str, str]]]:
    """Shuffle with ``seed`` and cut ``test`` and ``valid`` pairs off; the rest is ``train``."""
    if valid + test >= len(pairs):
        raise ValueError(f"valid={valid} + test={test} leaves no training pairs out of {len(pairs)}")
    shuffled = list(pairs)
    random.Random(seed).shuffle(shuffled)
    return {"test": shuffled[:test], "valid": shuffled[test : test + valid], "train": shuffled[test + valid :]}
