"""fairseq criteria, one per method, each written out with its config dataclass:

* ``ls_cross_entropy`` (:class:`LSCrossEntropyCriterion`; ``none`` is ``--label-smoothing 0``),
* ``maxsup_cross_entropy`` (:class:`MaxSupCrossEntropyCriterion`),
* ``ols_cross_entropy`` (:class:`OLSCrossEntropyCriterion`),
* ``lspp_cross_entropy`` (:class:`LSPPCrossEntropyCriterion`),
* ``lls_cross_entropy`` (:class:`LLSCrossEntropyCriterion`).

Importing this package registers them with fairseq (it is the only place that does). fairseq
finds them through ``--user-dir``: the repository's ``criterions/`` folder, or the folder printed
by ``labelreg-nlp user-dir`` for a pip install. The math lives in :mod:`labelreg_nlp.losses`; the
criteria slice fairseq batches, pick ``sample_size``, follow fairseq's epochs and updates, and log
like fairseq's own ``label_smoothed_cross_entropy`` (loss and nll_loss in base 2, ppl, accuracy)
plus each method's own values.
"""

from .base import (
    MethodCriterion,
    TokenCriterion,
    TokenCriterionConfig,
    flag,
    log_softmax_of_output,
    plain_output_projection,
)
from .label_smoothing import LSCrossEntropyConfig, LSCrossEntropyCriterion
from .lls import LLSCrossEntropyConfig, LLSCrossEntropyCriterion
from .lspp import LSPPCrossEntropyConfig, LSPPCrossEntropyCriterion
from .maxsup import MaxSupCrossEntropyConfig, MaxSupCrossEntropyCriterion
from .online import OLSCrossEntropyConfig, OLSCrossEntropyCriterion

#: criterion name -> class
CRITERIA: dict[str, type[MethodCriterion]] = {
    cls.criterion_name(): cls
    for cls in (LSCrossEntropyCriterion, MaxSupCrossEntropyCriterion, OLSCrossEntropyCriterion,
                LSPPCrossEntropyCriterion, LLSCrossEntropyCriterion)
}

__all__ = [
    "CRITERIA",
    "LLSCrossEntropyConfig",
    "LLSCrossEntropyCriterion",
    "LSCrossEntropyConfig",
    "LSCrossEntropyCriterion",
    "LSPPCrossEntropyConfig",
    "LSPPCrossEntropyCriterion",
    "MaxSupCrossEntropyConfig",
    "MaxSupCrossEntropyCriterion",
    "MethodCriterion",
    "OLSCrossEntropyConfig",
    "OLSCrossEntropyCriterion",
    "TokenCriterion",
    "TokenCriterionConfig",
    "flag",
    "log_softmax_of_output",
    "plain_output_projection",
]
