"""SentencePiece training and the Hugging Face tokenizer wrapper.

We train a unigram SentencePiece model on the target side of the corpus with byte fallback and
identity normalisation, so that any input (curly quotes, dashes, ``&``, accents, emoji, double
spaces) survives ``decode(encode(text)) == text`` exactly. The model is then converted into a
``tokenizers`` object with the same segmentation and saved with the model directory as
``tokenizer.json``, which plain ``transformers.AutoTokenizer`` loads with no extra code.
Inputs are stripped sentences: the text layout around them is kept by ``restorer.text``.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"


@dataclass
class TokenizerConfig:
    vocab_size: int = 8000
    model_type: str = "unigram"  # or "bpe"
    max_sentences: int = 300_000  # sentences sampled for training the piece model
    character_coverage: float = 0.9995
    seed_text_file: str | None = None  # optional extra text to include


def train_sentencepiece(texts: Iterable[str], out_prefix: Path, cfg: TokenizerConfig) -> Path:
    """Train the SentencePiece model; returns the path of ``<prefix>.model``."""
    import sentencepiece as spm

    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt", delete=False) as fh:
        n = 0
        for t in texts:
            t = t.replace("\n", " ").strip()
            if t:
                fh.write(t + "\n")
                n += 1
        path = fh.name
    if n == 0:
        raise ValueError("no text to train the tokenizer on")
    spm.SentencePieceTrainer.train(
        input=path,
        model_prefix=str(out_prefix),
        vocab_size=cfg.vocab_size,
        model_type=cfg.model_type,
        byte_fallback=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        character_coverage=cfg.character_coverage,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        input_sentence_size=cfg.max_sentences,
        shuffle_input_sentence=True,
        hard_vocab_limit=False,  # tiny corpora (tests) may not reach vocab_size
        num_threads=2,
        minloglevel=2,
    )
    Path(path).unlink(missing_ok=True)
    return out_prefix.with_suffix(".model")


def sentencepiece_to_hf(model_file: Path):  # -> transformers.PreTrainedTokenizerFast
    """Wrap a SentencePiece model as a fast HF tokenizer with identical segmentation."""
    import sentencepiece as spm
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    tk = Tokenizer(models.Unigram(vocab, unk_id=sp.unk_id(), byte_fallback=True))
    tk.normalizer = normalizers.Replace(" ", "▁")
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tk.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tk.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", special_tokens=[(EOS, sp.eos_id())])
    return PreTrainedTokenizerFast(
        tokenizer_object=tk,
        pad_token=PAD,
        eos_token=EOS,
        unk_token=UNK,
        clean_up_tokenization_spaces=False,
        model_max_length=512,
    )


def train_tokenizer(texts: Iterable[str], out_dir: Path, cfg: TokenizerConfig | None = None):
    """Train and save the tokenizer into ``out_dir`` (tokenizer.json + spiece.model)."""
    cfg = cfg or TokenizerConfig()
    out_dir.mkdir(parents=True, exist_ok=True)
    model_file = train_sentencepiece(texts, out_dir / "spiece", cfg)
    tok = sentencepiece_to_hf(model_file)
    tok.save_pretrained(str(out_dir))
    (out_dir / "spiece.vocab").unlink(missing_ok=True)
    meta = {
        "vocab_size": len(tok),
        "model_type": cfg.model_type,
        "byte_fallback": True,
        "normalization": "identity",
    }
    (out_dir / "tokenizer_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return tok


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))
