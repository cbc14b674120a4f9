"""The papers behind the methods, cited once (docstrings use the short titles).

Example:
    >>> PAPERS["maxsup"].arxiv
    '2502.15798'
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Paper:
    short: str
    title: str
    authors: str
    venue: str
    arxiv: str | None = None
    url: str | None = None

    def citation(self) -> str:
        """One markdown line: authors, title, venue, arXiv link."""
        where = f"arXiv [{self.arxiv}](https://arxiv.org/abs/{self.arxiv})" if self.arxiv else self.url or ""
        return f"{self.authors}. *{self.title}*. {self.venue}. {where}".rstrip(". ")


PAPERS: dict[str, Paper] = {
    "rethinking": Paper(
        "Szegedy et al. 2016", "Rethinking the Inception Architecture for Computer Vision",
        "Christian Szegedy, Vincent Vanhoucke, Sergey Ioffe, Jonathon Shlens, Zbigniew Wojna", "CVPR 2016",
        "1512.00567"),
    "maxsup": Paper(
        "MaxSup (Zhou et al. 2025)", "MaxSup: Overcoming Representation Collapse in Label Smoothing",
        "Yuxuan Zhou, Heng Li, Zhi-Qi Cheng, Xudong Yan, Yifei Dong, Mario Fritz, Margret Keuper",
        "NeurIPS 2025", "2502.15798"),
    "ols": Paper(
        "OLS (Zhang et al. 2021)", "Delving Deep into Label Smoothing",
        "Chang-Bin Zhang, Peng-Tao Jiang, Qibin Hou, Yunchao Wei, Qi Han, Zhen Li, Ming-Ming Cheng",
        "IEEE Transactions on Image Processing 30, 2021", "2011.12562"),
    "lspp": Paper(
        "LS++ (Chhabra et al. 2025)", "Label Smoothing++: Enhanced Label Regularization for Training Neural Networks",
        "Sachin Chhabra, Hemanth Venkateswara, Baoxin Li", "2025", "2509.05307"),
    "lls": Paper(
        "LLS (ICLR 2025 submission)", "LLS: Regulating Neural Network Training via Learnable Label Smoothing",
        "Anonymous authors", "ICLR 2025 submission (withdrawn), OpenReview VmW7Sf84sj", None,
        "https://openreview.net/forum?id=VmW7Sf84sj"),
    "selective": Paper(
        "Xia et al. 2025",
        "Towards Understanding Why Label Smoothing Degrades Selective Classification and How to Fix It",
        "Guoxuan Xia, Olivier Laurent, Gianni Franchi, Christos-Savvas Bouganis", "ICLR 2025", "2403.14715"),
}
