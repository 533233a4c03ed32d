"""What training and inference share about models: today the offline pretrained causal LM that
judges edits (:mod:`restorer.model.base_lm`: fetch from PyPI, convert from GGUF, cache, load)."""
