"""The seq2seq model as a prior for the judge: how much likelier it finds a candidate's first
changed token than the spun sentence's own token there.

The seq2seq model was trained on spinner pairs to map a spun sentence to its original, so its
encoder has read the whole sentence (left and right context) and learnt which words spinners
put in. Forced to copy the spun sentence, at each position it gives a distribution over what
the original had there. For a candidate edit, the prior is

    log P_s2s(variant token at k | spun sentence, shared prefix) - log P_s2s(spun token at k | ...)

where ``k`` is the first token (of the seq2seq tokenizer) where the variant leaves the spun
sentence. One encoder and one decoder pass per sentence serve all its candidates. On our train
split the prior separates the right candidates (median -1.1) from candidates on clean text
(median -10.9) far better than the LM gain alone; the judge adds it, clipped, to the LM gain.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch


class Seq2SeqPrior:
    """First-token log-probability gains of variants under a seq2seq (T5) model."""

    def __init__(self, model: Any, tokenizer: Any, max_tokens: int = 96, batch_size: int = 16) -> None:
        self.model = model.eval()
        self.tok = tokenizer
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.device = next(model.parameters()).device
        self.start_id = int(model.config.decoder_start_token_id)

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu") -> Seq2SeqPrior | None:
        """The transformers model in ``model_dir`` in fp32; None if the directory holds none
        (for example a CTranslate2 export alone)."""
        model_dir = Path(model_dir)
        if not any(model_dir.glob("*.safetensors")) or not (model_dir / "config.json").is_file():
            return None
        from transformers import AutoTokenizer, T5ForConditionalGeneration

        model = T5ForConditionalGeneration.from_pretrained(str(model_dir), dtype=torch.float32).to(device)
        return cls(model, AutoTokenizer.from_pretrained(str(model_dir)))

    @torch.inference_mode()
    def first_gains(self, sentences: Sequence[str], variants: Sequence[Sequence[str]]) -> list[list[float]]:
        """For each variant of each sentence, the prior in nats (0.0 where it cannot be computed:
        a sentence longer than ``max_tokens``, or a variant that only cuts the sentence short)."""
        out: list[list[float]] = [[0.0] * len(vs) for vs in variants]
        ids = self.tok(list(sentences))["input_ids"] if sentences else []
        flat = [v for vs in variants for v in vs]
        var_ids = self.tok(flat)["input_ids"] if flat else []
        # the branch point of every variant
        branches: list[list[int | None]] = []
        k = 0
        for i, vs in enumerate(variants):
            row: list[int | None] = []
            x = ids[i]
            for v in var_ids[k : k + len(vs)]:
                b = 0
                while b < min(len(v), len(x)) and v[b] == x[b]:
                    b += 1
                row.append(b if b < len(v) and b < len(x) else None)
            branches.append(row)
            k += len(vs)
        todo = [i for i in range(len(sentences)) if variants[i] and 0 < len(ids[i]) <= self.max_tokens]
        todo.sort(key=lambda i: len(ids[i]))  # batches of like lengths: little padding
        k = 0
        starts = []
        for vs in variants:
            starts.append(k)
            k += len(vs)
        for c in range(0, len(todo), self.batch_size):
            part = todo[c : c + self.batch_size]
            width = max(len(ids[i]) for i in part)
            enc = torch.zeros(len(part), width, dtype=torch.long)
            mask = torch.zeros(len(part), width, dtype=torch.long)
            dec = torch.zeros(len(part), width, dtype=torch.long)
            for r, i in enumerate(part):
                x = ids[i]
                enc[r, : len(x)] = torch.tensor(x)
                mask[r, : len(x)] = 1
                dec[r, : len(x)] = torch.tensor([self.start_id, *x[:-1]])
            logits = self.model(input_ids=enc.to(self.device), attention_mask=mask.to(self.device),
                                decoder_input_ids=dec.to(self.device)).logits  # fmt: skip
            for r, i in enumerate(part):
                at = sorted({b for b in branches[i] if b is not None})
                if not at:
                    continue
                lp = torch.log_softmax(logits[r, at].float(), -1)
                where = {p: j for j, p in enumerate(at)}
                x = ids[i]
                for j, b in enumerate(branches[i]):
                    if b is not None:
                        v = var_ids[starts[i] + j]
                        out[i][j] = float(lp[where[b], v[b]] - lp[where[b], x[b]])
        return out
