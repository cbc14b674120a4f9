"""fairseq ``--user-dir`` plugin shipped inside the package: ``--user-dir $(labelreg-nlp user-dir)``.

The folder name is unique on purpose: fairseq imports a user dir by its basename.
"""

import labelreg_nlp.integrations.fairseq_criteria  # noqa: F401  (registers the criteria)
