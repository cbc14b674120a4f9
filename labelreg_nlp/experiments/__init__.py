"""What the repository's scripts use, apart from the library: offline corpora and packaged data,
record readers, the fairseq translation pipeline, the IWSLT14 reader. The library (``losses``,
``metrics``, ``integrations``) never imports from here."""
