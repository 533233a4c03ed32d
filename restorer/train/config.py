"""Configuration: one dataclass per concern, loaded from YAML with ``key=value`` overrides.

A training YAML has one section per concern::

    data: {...}       # DataConfig: corpus, spinner style, clean share, lengths
    tokenizer: {...}  # TokenizerConfig (restorer.model.tokenizer)
    model: {...}      # ModelConfig (restorer.model.t5): the T5 shape
    train: {...}      # TrainConfig: optimisation, evaluation, checkpoints
    finetune: {...}   # FinetuneConfig: a new style's data, for `restorer finetune`

Overrides use dotted keys: ``train.lr=5e-4 model.d_model=128 data.style=autoblog``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

import yaml

from restorer.common import ConfigError
from restorer.model.t5 import ModelConfig
from restorer.model.tokenizer import TokenizerConfig

T = TypeVar("T")


@dataclass
class DataConfig:
    corpus_dir: str = "corpus"  # built by `restorer data build --out corpus`
    style: str = "mixed"  # spinner style used to make training pairs on the fly
    clean_share: float = 0.12  # share of identity pairs (clean in, clean out)
    max_tokens: int = 64  # pairs longer than this (either side) are skipped
    min_words: int = 3
    valid_size: int = 400  # spun valid pairs evaluated during training
    valid_clean_size: int = 150  # clean valid sentences for clean_changed
    valid_seed: int = 1234
    pool_batches: int = 50  # length bucketing: sort a pool of this many batches by length
    seed: int = 0


@dataclass
class TrainConfig:
    output_dir: str = "runs/default"
    batch_size: int = 64  # sentences per step per process (before accumulation)
    grad_accum: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 500
    max_steps: int = 100_000  # the schedule's length; --max-minutes may stop earlier
    max_minutes: float = 0.0  # 0 = no time limit
    schedule: str = "cosine"  # cosine | linear | constant
    min_lr_ratio: float = 0.1
    max_grad_norm: float = 1.0
    eval_every: int = 500  # steps
    log_every: int = 20
    checkpoint_minutes: float = 10.0
    keep_checkpoints: int = 2
    mixed_precision: str = "auto"  # auto | no | fp16 | bf16 (auto: bf16/fp16 on CUDA, no on CPU)
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # torch CPU threads, 0 = all cores
    seed: int = 0
    eval_batch_size: int = 64
    eval_max_new_tokens: int = 96
    # a model directory to start from (its weights and its tokenizer; the tokenizer is never
    # retrained): fine-tuning and continued training. "" trains from scratch.
    init_from: str = ""


@dataclass
class FinetuneConfig:
    """The new spinner style's data for fine-tuning (``restorer finetune``, docs/finetuning.md).

    One of ``pairs``, ``dictionary`` or ``style`` names the new style; ``train.init_from`` names
    the base model. With ``train.max_minutes`` set, it is the budget of the whole fine-tune
    (data, evaluations before and after, training)."""

    pairs: str = ""  # JSONL of the new style's {"spun", "original"} pairs (sentences or phrases)
    dictionary: str = ""  # the new spinner's dictionary: spintax, word|syn lines or TSV
    style: str = ""  # the new spinner's style YAML (or a built-in style name)
    corpus: str = ""  # clean text to spin with the new style; "" = the base corpus
    valid: str = ""  # held-out pairs of the new style; "" = split off the pairs (or the corpus)
    base_corpus: str = "corpus"  # a `restorer data build` folder: replay and the base valid set
    mine: bool = True  # mine a style from the pairs and spin the corpus with it
    train: bool = True  # false: the style package is its dictionary alone (no training, seconds)
    min_count: int = 1  # mined substitutions seen fewer times are left out of the style
    max_phrase_words: int = 4  # longest mined phrase, on either side
    replay_share: float = 0.3  # share of replay: replay_style on the base corpus, with clean pairs
    replay_style: str = "mixed"
    pairs_weight: float = 0.35  # relative weights of the new style's sources (of 1 - replay_share)
    spun_weight: float = 0.5  # corpus spun with the new (mined, dictionary or given) style
    clean_weight: float = 0.15  # identity pairs of the new domain's clean sentences
    valid_share: float = 0.1  # share of the pairs held out when no valid file is given
    min_valid: int = 5
    valid_size: int = 200  # at most this many held-out pairs of the new style
    base_valid_size: int = 200  # fixed sample of the base style's valid set (forgetting)
    dictionary_base: str = "autoblog"  # the style a --dictionary is imported into
    dictionary_rate: float = 0.6
    dictionary_only: bool = True  # the dictionary's spinner uses its dictionary alone
    seed: int = 0


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(value: Any, typ: Any, where: str) -> Any:
    """Convert a YAML or command-line value to the field's type."""
    if isinstance(typ, str):
        typ = {"int": int, "float": float, "str": str, "bool": bool}.get(typ, typ)
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if typ is int:
        try:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if typ is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if typ is str:
        return "" if value is None else str(value)
    return value  # optional / union types: keep as parsed


def build_section(cls: type[T], data: dict[str, Any] | None, where: str) -> T:
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping")
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(names)}")
    kwargs = {}
    for k, v in data.items():
        typ = hints[k]
        base = typ if typ in (int, float, str, bool) else None
        kwargs[k] = _coerce(v, base, f"{where}.{k}") if base else v
    return cls(**kwargs)


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "tokenizer": TokenizerConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "finetune": FinetuneConfig,
}


def parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, value = item.split("=", 1)
        if "." not in key:
            raise ConfigError(f"override {item!r} must name a section: one of {', '.join(SECTIONS)}")
        section, name = key.split(".", 1)
        if section not in SECTIONS:
            raise ConfigError(f"override {item!r}: unknown section {section!r}; use {', '.join(SECTIONS)}")
        out.setdefault(section, {})[name] = yaml.safe_load(value) if value else value
    return out


def _read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file not found: {p}")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping with sections {', '.join(SECTIONS)}")
    unknown = set(raw) - set(SECTIONS)
    if unknown:
        raise ConfigError(f"{path}: unknown sections {sorted(unknown)}; use {', '.join(SECTIONS)}")
    return raw


def _merge(raw: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    out = dict(raw)
    for section, values in more.items():
        out[section] = {**(out.get(section) or {}), **(values or {})}
    return out


def load_config(
    path: str | Path | None, overrides: list[str] | None = None, base: str | Path | None = None
) -> RunConfig:
    """A config from a YAML file (on top of the ``base`` YAML, when given) and overrides."""
    raw: dict[str, Any] = _read_yaml(base) if base is not None else {}
    if path is not None:
        raw = _merge(raw, _read_yaml(path))
    raw = _merge(raw, parse_overrides(overrides or []))
    return RunConfig(**{name: build_section(cls, raw.get(name), name) for name, cls in SECTIONS.items()})


def save_config(cfg: RunConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
