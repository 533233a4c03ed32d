"""Inference with pretrained knowledge: proposals (``proposals``), the causal-LM scorer
(``lm``) and the judge that chooses among the proposals (``judge``)."""
