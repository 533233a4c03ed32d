"""The fine-tuning data: the new style's sources, replay of the base mix, held-out sets.

The training stream mixes

* ``pairs``: the user's pairs, drawn with replacement;
* ``spun``: clean sentences (the user's corpus or the base corpus) spun with the new style,
  which is mined from the pairs, built from a dictionary, or given as a style file;
* ``clean``: identity pairs of the new domain's sentences (the corpus, or the pairs' originals);
* ``replay``: the base training mix (``mixed`` on the base corpus, with its clean pairs), so the
  model keeps what it knew.

Example ``k`` of a process is a pure function of ``(seed, rank, k)`` (as in ``PairStream``), so a
resumed run sees exactly the examples it would have seen.
"""

from __future__ import annotations

import random
import shutil
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from restorer.data import PairsError, load_sentences, make_pairs, read_pairs
from restorer.infer.styles import (
    DICTIONARY_FILE,
    STYLE_FILE,
)
from restorer.spin.spinner import Spinner
from restorer.train.config import RunConfig

Draw = Callable[[random.Random], tuple[str, str]]


class FinetuneError(ValueError):
    """Fine-tuning input that cannot be used: reported as one line, exit code 2."""


# ----------------------------------------------------------------------------- the stream


@dataclass
class Source:
    """One part of the mix: ``draw(rng)`` returns a ``(source, target)`` training pair."""

    name: str
    weight: float
    draw: Draw
    size: int  # pairs or sentences behind it


class MixStream:
    """Deterministic, endless mixture of sources, sharded by rank like ``PairStream``."""

    def __init__(self, sources: Sequence[Source], seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        self.sources = [s for s in sources if s.weight > 0]
        if not self.sources:
            raise FinetuneError("nothing to train on")
        self.seed, self.rank, self.world_size = seed, rank, world_size
        total = sum(s.weight for s in self.sources)
        acc = 0.0
        self._cum = []
        for s in self.sources:
            acc += s.weight / total
            self._cum.append(acc)

    def shares(self) -> dict[str, float]:
        total = sum(s.weight for s in self.sources)
        return {s.name: round(s.weight / total, 4) for s in self.sources}

    def example(self, k: int) -> tuple[str, str]:
        g = k * self.world_size + self.rank
        rng = random.Random(f"finetune:{self.seed}:{g}")
        u = rng.random()
        for source, edge in zip(self.sources, self._cum, strict=True):
            if u < edge:
                return source.draw(rng)
        return self.sources[-1].draw(rng)


def pairs_draw(pairs: Sequence[dict[str, Any]]) -> Draw:
    """A pair drawn with replacement."""

    def draw(rng: random.Random) -> tuple[str, str]:
        p = pairs[rng.randrange(len(pairs))]
        return p["spun"], p["original"]

    return draw


def clean_draw(sentences: Sequence[str]) -> Draw:
    """An identity pair: a clean sentence in, the same sentence out."""

    def draw(rng: random.Random) -> tuple[str, str]:
        s = sentences[rng.randrange(len(sentences))]
        return s, s

    return draw


def spun_draw(sentences: Sequence[str], spinner: Spinner, clean_share: float = 0.0, tries: int = 4) -> Draw:
    """A sentence spun with ``spinner``; up to ``tries`` draws to find one the style changes."""

    def draw(rng: random.Random) -> tuple[str, str]:
        if clean_share and rng.random() < clean_share:
            return clean_draw(sentences)(rng)
        for _ in range(tries):
            s = sentences[rng.randrange(len(sentences))]
            spun = spinner.spin(s, rng).text
            if spun != s:
                break
        return spun, s

    return draw


# ----------------------------------------------------------------------------- inputs


def read_user_pairs(path: str | Path, what: str = "pairs") -> list[dict[str, str]]:
    """The ``spun``/``original`` of a pairs file; pairs with an empty side are dropped."""
    try:
        raw = read_pairs(path)
    except PairsError as exc:
        raise FinetuneError(f"{what}: {exc}") from None
    pairs = [{"spun": p["spun"].strip(), "original": p["original"].strip()} for p in raw]
    pairs = [p for p in pairs if p["spun"] and p["original"]]
    if not pairs:
        raise FinetuneError(f"{what}: {path}: every pair has an empty side")
    return pairs


def read_corpus(path: str | Path, min_words: int) -> tuple[list[str], list[str]]:
    """``(train, valid)`` sentences of a corpus: a `restorer data build` folder (valid from its
    valid.jsonl), or text/Markdown/JSONL files and folders (valid empty)."""
    from restorer.corpus.sources import UserInputError, read_user

    p = Path(path)
    try:
        if (p / "train.jsonl").exists():
            valid = load_sentences(p / "valid.jsonl", min_words) if (p / "valid.jsonl").exists() else []
            return load_sentences(p / "train.jsonl", min_words), valid
        seen: dict[str, None] = {}
        for doc in read_user(p):
            for s in doc.raw_sentences():
                if len(s.split()) >= min_words:
                    seen.setdefault(s, None)
    except (PairsError, UserInputError) as exc:
        raise FinetuneError(f"corpus: {exc}") from None
    if not seen:
        raise FinetuneError(f"corpus: {p}: no sentences of at least {min_words} words")
    return list(seen), []


def _stable(text: str, seed: int) -> int:
    return zlib.crc32(f"{seed}:{text}".encode())


def split_held_out(
    items: Sequence[Any], n: int, seed: int, key: Callable[[Any], str]
) -> tuple[list[Any], list[Any]]:
    """``(rest, held_out)``: ``n`` items chosen by a stable hash, both in their input order."""
    order = sorted(range(len(items)), key=lambda i: (_stable(key(items[i]), seed), i))
    held = set(order[:n])
    return [x for i, x in enumerate(items) if i not in held], [x for i, x in enumerate(items) if i in held]


def held_out_size(n: int, share: float, minimum: int, maximum: int) -> int:
    """How many of ``n`` pairs to hold out: ``share`` of them, at least ``minimum``, at most
    ``maximum``, and never more than half."""
    return max(1, min(maximum, max(minimum, round(n * share)), n // 2))


# ----------------------------------------------------------------------------- preparation


@dataclass
class Prepared:
    """Everything the fine-tune trains and evaluates on."""

    sources: list[Source]
    valid_pairs: list[dict[str, Any]]  # the new style's held-out pairs
    base_valid_pairs: list[dict[str, Any]]  # the base style's valid sample (may be empty)
    info: dict[str, Any] = field(default_factory=dict)  # counts and paths for the card
    notes: list[str] = field(default_factory=list)  # warnings for the user
    train_pairs: list[dict[str, Any]] = field(default_factory=list)  # the user's pairs trained on

    def make_stream(self, seed: int) -> Callable[[int, int], MixStream]:
        return lambda rank, world_size: MixStream(self.sources, seed, rank, world_size)


def _load_spinner(style: str | Path, what: str) -> Spinner:
    from restorer.spin.importers import DictionaryError
    from restorer.spin.styles import StyleError

    try:
        return Spinner.from_style(style)
    except (StyleError, DictionaryError, OSError) as exc:
        raise FinetuneError(f"{what}: {exc}") from None


def dictionary_style(cfg: RunConfig, style_dir: Path) -> Path:
    """Copy the dictionary next to a style that imports it; return the style file."""
    fc = cfg.finetune
    src = Path(fc.dictionary)
    if not src.is_file():
        raise FinetuneError(f"dictionary not found: {src}")
    style_dir.mkdir(parents=True, exist_ok=True)
    copy = style_dir / (DICTIONARY_FILE if src.suffix in (".tsv", ".tab") else f"dictionary{src.suffix or '.txt'}")
    if src.resolve() != copy.resolve():
        shutil.copyfile(src, copy)
    style = {
        "description": f"spinner built from the dictionary {src.name}",
        "base": fc.dictionary_base,
        "dictionaries": [copy.name],
        "dictionary_only": fc.dictionary_only,
        "rate": fc.dictionary_rate,
        "coverage": 1.0,
    }
    path = style_dir / STYLE_FILE
    header = "# Written by `restorer finetune --dictionary`: edit it and fine-tune again.\n"
    path.write_text(header + yaml.safe_dump(style, sort_keys=False), encoding="utf-8")
    return path


def new_style_valid(spinner: Spinner, sentences: Sequence[str], size: int, seed: int) -> list[dict[str, Any]]:
    """Up to ``size`` held-out pairs of the new style: sentences the style changes."""
    order = sorted(sentences, key=lambda s: _stable(s, seed))
    out: list[dict[str, Any]] = []
    for i, s in enumerate(order):
        r = spinner.spin(s, f"valid:{seed}:{i}")
        if r.text != s:
            out.append({"spun": r.text, "original": s})
            if len(out) >= size:
                break
    return out


def base_valid(cfg: RunConfig, notes: list[str]) -> list[dict[str, Any]]:
    """A fixed sample of the base style's valid set: replay_style on the base corpus's valid split."""
    fc, dc = cfg.finetune, cfg.data
    path = Path(fc.base_corpus) / "valid.jsonl"
    if fc.base_valid_size <= 0:
        return []
    if not path.exists():
        notes.append(f"no base valid set at {path}: forgetting is not measured")
        return []
    sents = load_sentences(path, dc.min_words)
    random.Random(dc.valid_seed).shuffle(sents)
    spinner = _load_spinner(fc.replay_style, "finetune.replay_style")
    return make_pairs(sents[: fc.base_valid_size], spinner, seed=f"base-valid:{dc.valid_seed}")


def check_sources(cfg: RunConfig) -> str:
    """The one data option given: ``pairs``, ``dictionary`` or ``style``."""
    fc = cfg.finetune
    given = [n for n in ("pairs", "dictionary", "style") if getattr(fc, n)]
    if not given:
        raise FinetuneError(
            "give the new style's data: --pairs FILE, --dictionary FILE or --style FILE --corpus PATH"
        )
    if len(given) > 1:
        raise FinetuneError(f"give only one of --pairs, --dictionary and --style (got {', '.join(given)})")
    return given[0]


def split_pairs(cfg: RunConfig, mode: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """``(training pairs, held-out pairs)``: ``--valid``, or a share of ``--pairs`` split off."""
    fc = cfg.finetune
    pairs = read_user_pairs(fc.pairs) if mode == "pairs" else []
    if fc.valid:
        return pairs, read_user_pairs(fc.valid, "valid")
    if not pairs:
        return [], []
    if len(pairs) < 2:
        raise FinetuneError(f"{fc.pairs}: one pair cannot be both trained on and held out; give --valid FILE")
    n = held_out_size(len(pairs), fc.valid_share, fc.min_valid, fc.valid_size)
    return split_held_out(pairs, n, fc.seed, key=lambda p: p["spun"] + "\t" + p["original"])


def domain_text(cfg: RunConfig, held_out: list[dict[str, str]]) -> tuple[str, list[str], list[str]]:
    """``(path, train, valid)`` sentences to spin with the new style: ``--corpus``, else the
    base corpus when it exists; the originals of held-out pairs are left out."""
    fc = cfg.finetune
    path = fc.corpus or (fc.base_corpus if (Path(fc.base_corpus) / "train.jsonl").exists() else "")
    if not path:
        return "", [], []
    train, valid = read_corpus(path, cfg.data.min_words)
    held = {p["original"] for p in held_out}
    return path, [s for s in train if s not in held], valid


def spun_valid(cfg: RunConfig, spinner: Spinner, style: Path | None, corpus: list[str], valid_text: list[str],
               info: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:  # fmt: skip
    """``(corpus, held-out pairs)`` of a style without pairs: the corpus's valid split (or a
    share of the corpus, then left out of it) spun with the style."""
    fc = cfg.finetune
    if not valid_text:
        n = held_out_size(len(corpus), fc.valid_share, fc.min_valid, fc.valid_size)
        corpus, valid_text = split_held_out(corpus, n, fc.seed, key=str)
    valid = new_style_valid(spinner, valid_text, fc.valid_size, fc.seed)
    if not valid:
        raise FinetuneError(f"the style {style} changes none of {len(valid_text)} held-out sentences")
    info.update(
        valid_pairs=len(valid),
        valid_source=f"{len(valid_text)} held-out corpus sentences spun with the new style",
    )
    return corpus, valid


def prepare(cfg: RunConfig, out: Path, style_dir: Path, resume: bool = False) -> Prepared:
    """Read, mine and split the fine-tune data; derived style files go to ``style_dir``."""
    fc = cfg.finetune
    mode = check_sources(cfg)
    notes: list[str] = []
    info: dict[str, Any] = {"mode": mode, "source": getattr(fc, mode)}
    pairs, valid = split_pairs(cfg, mode)
    info.update(
        pairs=len(pairs),
        valid_pairs=len(valid),
        valid_source=fc.valid or ("split off the pairs" if pairs else ""),
    )
    corpus_path, corpus, corpus_valid = domain_text(cfg, valid)
    info.update(corpus=corpus_path, corpus_sentences=len(corpus))

    spinner, style_path = _new_style(cfg, mode, pairs, style_dir, out, resume, notes, info)
    if spinner is not None and not corpus:
        if mode != "pairs":
            raise FinetuneError(f"--{mode} needs clean text to spin: pass --corpus PATH, or build the base "
                                f"corpus with `restorer data build --out {fc.base_corpus}`")  # fmt: skip
        notes.append(f"no corpus to spin with the mined style (no --corpus, and no {fc.base_corpus}/train.jsonl: "
                     "build it with `restorer data build`); training on the pairs alone, with their originals "
                     "as clean pairs")  # fmt: skip
        spinner = None
    if spinner is not None and not valid:
        corpus, valid = spun_valid(cfg, spinner, style_path, corpus, corpus_valid, info)
    sources = _sources(cfg, pairs, corpus, spinner, notes, info)
    return Prepared(sources, valid, base_valid(cfg, notes), info, notes, pairs)


def _new_style(cfg: RunConfig, mode: str, pairs: list[dict[str, str]], style_dir: Path, out: Path, resume: bool,
               notes: list[str], info: dict[str, Any]) -> tuple[Spinner | None, Path | None]:  # fmt: skip
    """The spinner of the new style (mined, from the dictionary, or given) and its style file."""
    fc = cfg.finetune
    if mode == "style":
        info["style"] = fc.style
        return _load_spinner(fc.style, "--style"), Path(fc.style)
    if mode == "dictionary":
        path = dictionary_style(cfg, style_dir)
        info["style"] = str(path)
        return _load_spinner(path, "--dictionary"), path
    if not fc.mine:
        return None, None
    from restorer.train.finetune.mining import mine_style, save_style_package

    mined = mine_style(pairs, fc.max_phrase_words)
    info["mined"] = mined.summary(fc.min_count)
    path = style_dir / STYLE_FILE
    if resume and (out / STYLE_FILE).exists():  # the user may have edited it: keep it
        path = out / STYLE_FILE
        notes.append(f"resuming with the existing {path}")
    elif not info["mined"]["entries"]:
        notes.append("style mining found no substitutions in the pairs: training on the pairs alone")
        return None, None
    else:
        save_style_package(mined, pairs, style_dir, fc.min_count, source=Path(fc.pairs).name)
    info["style"] = str(path)
    return _load_spinner(path, "mined style"), path


def _sources(cfg: RunConfig, pairs: list[dict[str, str]], corpus: list[str], spinner: Spinner | None,
             notes: list[str], info: dict[str, Any]) -> list[Source]:  # fmt: skip
    """The weighted sources: the new style's (share 1 - replay_share) and the replay."""
    fc, dc = cfg.finetune, cfg.data
    base_train = Path(fc.base_corpus) / "train.jsonl"
    clean_text = corpus or [p["original"] for p in pairs]
    new: list[Source] = []
    if pairs:
        new.append(Source("pairs", fc.pairs_weight, pairs_draw(pairs), len(pairs)))
    if spinner is not None and corpus:
        new.append(Source("spun", fc.spun_weight, spun_draw(corpus, spinner), len(corpus)))
    if clean_text:
        new.append(Source("clean", fc.clean_weight, clean_draw(clean_text), len(clean_text)))
    total = sum(s.weight for s in new) or 1.0
    for s in new:
        s.weight = s.weight / total * (1.0 - fc.replay_share)
    if base_train.exists():
        replay_text, where = load_sentences(base_train, dc.min_words), str(base_train)
    else:
        replay_text, where = clean_text, "the new style's clean text"
        notes.append(f"no base corpus at {base_train}: replaying the base mix on {where} instead")
    replay = _load_spinner(cfg.finetune.replay_style, "finetune.replay_style")
    sources = [
        *new,
        Source(
            "replay",
            fc.replay_share,
            spun_draw(replay_text, replay, dc.clean_share, tries=1),
            len(replay_text),
        ),
    ]
    info["replay"] = {
        "style": fc.replay_style,
        "text": where,
        "sentences": len(replay_text),
        "clean_share": dc.clean_share,
    }
    info["shares"] = MixStream(sources).shares()
    return sources
