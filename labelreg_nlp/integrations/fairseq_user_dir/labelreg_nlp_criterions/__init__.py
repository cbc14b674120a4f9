"""fairseq ``--user-dir`` plugin shipped inside the package: ``--user-dir $(labelreg-nlp user-dir)``.

The folder name is unique on purpose: fairseq imports a user dir by its basename.
"""

from labelreg_nlp.integrations.fairseq_command import allow_fairseq_checkpoints

allow_fairseq_checkpoints()  # before fairseq loads a checkpoint (--restore-file, fairseq-generate)

import labelreg_nlp.integrations.fairseq_criteria  # noqa: E402, F401  (registers the criteria)
