"""fairseq ``--user-dir`` plugin: ``fairseq-train --user-dir criterions --criterion NAME``.

Registers ``ls_cross_entropy``, ``maxsup_cross_entropy``, ``ols_cross_entropy``, ``lspp_cross_entropy``
and ``lls_cross_entropy``; the code lives in
``labelreg_nlp.integrations.fairseq_criteria`` so that a pip install reaches the same criteria
(``labelreg-nlp user-dir`` prints the folder to pass instead).
"""

from labelreg_nlp.integrations.fairseq_command import allow_fairseq_checkpoints

allow_fairseq_checkpoints()  # before fairseq loads a checkpoint (--restore-file, fairseq-generate)

import labelreg_nlp.integrations.fairseq_criteria  # noqa: E402, F401  (registers the criteria)
