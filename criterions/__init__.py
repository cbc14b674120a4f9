"""fairseq ``--user-dir`` plugin: ``fairseq-train --user-dir criterions --criterion NAME``.

Registers ``ls_cross_entropy``, ``maxsup_cross_entropy`` and ``ols_cross_entropy``; the code lives in
``labelreg_nlp.integrations.fairseq_criteria`` so that a pip install reaches the same criteria
(``labelreg-nlp user-dir`` prints the folder to pass instead).
"""

import labelreg_nlp.integrations.fairseq_criteria  # noqa: F401  (registers the criteria)
