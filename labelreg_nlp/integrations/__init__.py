"""Thin adapters from training frameworks to :mod:`labelreg_nlp.losses`.

* :mod:`labelreg_nlp.integrations.fairseq_criteria`: one fairseq criterion per registry method
  (importing it registers them; needs fairseq);
* :mod:`labelreg_nlp.integrations.hf`: ``LabelRegTrainer``, ``LabelRegSeq2SeqTrainer``,
  ``LabelRegArguments``, ``LabelRegLoss`` (needs transformers).

Nothing is imported here, so ``import labelreg_nlp`` stays torch-only.
"""
