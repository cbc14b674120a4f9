"""matplotlib for files, not screens: the one place its set-up lives."""

from __future__ import annotations

import logging
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend (``ImportError`` when matplotlib is
    missing). Reading a fairseq checkpoint may leave the root logger at DEBUG: matplotlib's
    start-up messages are kept quiet."""
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
