"""What the ``labelreg-nlp`` command ships beside the losses: confidence evaluation of saved runs
(``evaluate``, with its figures), token confidence under teacher forcing (fairseq and Hugging Face
models), and the learned soft labels of a checkpoint (``neighbours``).

Builds on :mod:`labelreg_nlp.metrics` and :mod:`labelreg_nlp.losses`; fairseq, transformers and
matplotlib are imported only by the functions that need them.
"""
