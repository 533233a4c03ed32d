"""Style packages (issue 15): a style adds a dictionary (and optionally its own proposer) to the
base, which it never changes. The LM is the tiny random one of conftest; nothing is downloaded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from restorer.infer.judge import JudgeConfig
from restorer.infer.proposals import Candidate, ProposalConfig, Proposer
from restorer.infer.styles import (
    StylePackageError,
    load_style_package,
    load_style_packages,
    log_odds,
    read_evidence,
    write_evidence,
)
from restorer.spin.lexicon import default_lexicon
from restorer.train.finetune.mining import mine_style, save_style_package

# a spinner of our own: soil -> earth, market -> showcase, growth -> development
PAIRS = [
    {"spun": "earth disintegration", "original": "soil erosion"},
    {"spun": "earth quality", "original": "soil quality"},
    {"spun": "showcase development", "original": "market growth"},
    {"spun": "showcase share", "original": "market share"},
    {"spun": "development rates", "original": "growth rates"},
    {"spun": "earth moisture", "original": "soil moisture"},
    {"spun": "the earth orbits", "original": "the earth orbits"},  # a genuine "earth"
]


@pytest.fixture()
def package(tmp_path: Path) -> Path:
    out = tmp_path / "mystyle"
    save_style_package(mine_style(PAIRS, lexicon=default_lexicon()), PAIRS, out, source="pairs.jsonl")
    return out


def test_a_mined_package_loads_with_its_dictionary_and_evidence(package: Path) -> None:
    assert (package / "style.yaml").exists() and (package / "dictionary.tsv").exists()
    pkg = load_style_package(package)
    assert pkg.name == "mystyle" and pkg.model_dir is None and pkg.entries >= 3
    # "earth" stood for "soil" 3 times of 4 (once it was a genuine earth): lower log-odds than
    # "showcase" for "market" (2 of 2)
    assert pkg.evidence[("earth", "soil")] == pytest.approx(log_odds(3, 4))
    assert pkg.evidence[("showcase", "market")] == pytest.approx(log_odds(2, 2))
    assert pkg.evidence[("earth", "soil")] < pkg.evidence[("showcase", "market")]


def test_style_dictionary_proposes_next_to_the_base_tables(package: Path) -> None:
    pkg = load_style_package(package)
    base = Proposer(ProposalConfig(thesaurus=False))
    styled = Proposer(ProposalConfig(thesaurus=False), [pkg.lexicon], evidence=pkg.evidence)
    s = "The showcase development of earth disintegration firms."
    ours = {(c.original, c.replacement) for c in styled.propose(s) if c.source == "style"}
    assert {("showcase", "market"), ("development", "growth"), ("earth", "soil")} <= ours
    # the base's own candidates are all still there (a style adds, it never replaces)
    assert {(c.start, c.end, c.replacement) for c in base.propose(s)} <= {
        (c.start, c.end, c.replacement) for c in styled.propose(s)
    }
    ev = {c.original: c.evidence for c in styled.propose(s) if c.source == "style"}
    assert ev["showcase"] == pytest.approx(log_odds(2, 2))


def test_inflected_unseen_forms_are_proposed(package: Path) -> None:
    """Mining generalises: a base-form entry covers inflections never seen in the pairs."""
    pkg = load_style_package(package)
    styled = Proposer(ProposalConfig(tables=False, thesaurus=False), [pkg.lexicon])
    got = {(c.original, c.replacement) for c in styled.propose("Several showcases grew.")}
    assert ("showcases", "markets") in got


def test_evidence_lowers_the_cost_within_its_clip() -> None:
    cfg = JudgeConfig(style_weight=1.0, style_min=-2.0, style_max=8.0)
    plain = Candidate(0, 4, "earth", "soil", "style")
    sure = Candidate(0, 4, "earth", "soil", "style", evidence=4.0)
    unsure = Candidate(0, 4, "earth", "soil", "style", evidence=-30.0)
    assert cfg.cost(sure) == pytest.approx(cfg.cost(plain) - 4.0)
    assert cfg.cost(unsure) == pytest.approx(cfg.cost(plain) + 2.0)
    assert JudgeConfig(style_weight=0.0).cost(sure) == JudgeConfig().cost(plain)


def test_bad_styles_are_clear_errors(tmp_path: Path, package: Path) -> None:
    with pytest.raises(StylePackageError, match="unknown style"):
        load_style_package("no-such-style")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StylePackageError, match="no style.yaml"):
        load_style_package(tmp_path / "empty")
    (package / "evidence.tsv").write_text("earth\tsoil\t5\t3\n")
    with pytest.raises(StylePackageError, match="right <= seen"):
        load_style_package(package)


def test_only_one_style_may_bring_a_proposer(tmp_path: Path, package: Path, tiny_model: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        shutil.copytree(tiny_model, d)
        shutil.copy(package / "style.yaml", d / "style.yaml")
        shutil.copy(package / "dictionary.tsv", d / "dictionary.tsv")
    assert load_style_package(a).model_dir == a
    assert len(load_style_packages([a, package])) == 2
    with pytest.raises(StylePackageError, match="only one style"):
        load_style_packages([a, b])


def test_evidence_file_round_trips(tmp_path: Path) -> None:
    write_evidence(tmp_path / "e.tsv", {("earth", "soil"): (3, 4), ("a b", "c"): (0, 2)})
    assert read_evidence(tmp_path / "e.tsv") == {("earth", "soil"): log_odds(3, 4), ("a b", "c"): log_odds(0, 2)}


@pytest.fixture(scope="module")
def judged_model(tiny_model: Path, tiny_lm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("styled") / "model"
    shutil.copytree(tiny_model, out)
    spec = {"lm": str(tiny_lm), "proposers": ["tables"], "judge": {"margin": -100.0, "rounds": 1}}
    (out / "restorer.json").write_text(json.dumps({"judge": spec}))
    return out


def test_restore_with_a_style_takes_its_edits_and_keeps_the_base(judged_model: Path, package: Path) -> None:
    from restorer import Restorer

    s = "The showcase development slowed."
    base = Restorer.from_pretrained(judged_model, device="cpu", backend="torch")
    styled = Restorer.from_pretrained(judged_model, device="cpu", backend="torch", styles=[package])
    assert not any(e.source == "style" for e in base.explain(s).edits)
    exp = styled.explain(s)
    assert any(e.source == "style" for e in exp.edits), "with no cost every style edit pays"
    # a style changes nothing on disk
    assert not (judged_model / "style.yaml").exists()


def _base_and_style_with_a_model(judged_model: Path, package: Path, tiny_model: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A judged base whose judge takes the seq2seq proposer, and a style package with its own model."""
    base = tmp_path / "base"
    shutil.copytree(judged_model, base)
    spec = json.loads((base / "restorer.json").read_text())
    spec["judge"]["proposers"] = ["tables", "seq2seq"]
    (base / "restorer.json").write_text(json.dumps(spec))
    own = tmp_path / "own"
    shutil.copytree(tiny_model, own)
    for f in ("style.yaml", "dictionary.tsv"):
        shutil.copy(package / f, own / f)
    return base, own


def test_a_style_with_its_own_model_adds_to_the_base_proposer_and_prior(
    judged_model: Path, package: Path, tiny_model: Path, tmp_path: Path
) -> None:
    """No forgetting by construction: with the judge, the base seq2seq model keeps decoding and
    vouching; a style's fine-tuned copy adds its edits and its prior. With ``judge="none"`` the
    style's copy decodes."""
    from restorer import Restorer

    base, own = _base_and_style_with_a_model(judged_model, package, tiny_model, tmp_path)
    r = Restorer.from_pretrained(base, device="cpu", backend="torch", styles=[own])
    assert r.style_decoder is not None and r.style_decoder.judge is None
    assert len(r.judge.judge.priors) == 2
    calls = []
    real = r.style_decoder.decode
    r.style_decoder.decode = lambda ss: calls.append(list(ss)) or real(ss)
    s = "The showcase development slowed."
    assert r.restore(s) and calls == [[s]]
    plain = Restorer.from_pretrained(base, device="cpu", backend="torch")
    assert plain.style_decoder is None and len(plain.judge.judge.priors) == 1
    alone = Restorer.from_pretrained(base, device="cpu", backend="torch", judge="none", styles=[own])
    assert alone.style_decoder is None and alone.judge is None
    assert Path(alone.seq2seq.model.name_or_path) == own and Path(r.seq2seq.model.name_or_path) == base
    assert Path(r.style_decoder.seq2seq.model.name_or_path) == own


def test_finetune_card_measures_the_style_model_alone_beside_the_judge(
    judged_model: Path, package: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The card's "seq2seq" rows are the fine-tuned model's own decodes, also when the base's judge
    keeps the base model as its proposer."""
    import restorer.eval.evaluation as evaluation
    from restorer.train.config import RunConfig
    from restorer.train.finetune.run import evaluate_sets

    base, own = _base_and_style_with_a_model(judged_model, package, tiny_model, tmp_path)
    seen = []
    real = evaluation.evaluate_pairs
    monkeypatch.setattr(evaluation, "evaluate_pairs", lambda r, *a, **k: seen.append(r) or real(r, *a, **k))
    cfg = RunConfig()
    cfg.train.device = "cpu"
    out = evaluate_sets(base, {"new": PAIRS[:2]}, cfg, styles=[own])
    assert set(out["new"]) == {"default", "guard", "no_guard"}
    assert [Path(r.seq2seq.model.name_or_path) for r in seen] == [own]


def test_a_dictionary_style_needs_the_judge(judged_model: Path, package: Path) -> None:
    from restorer import Restorer

    with pytest.raises(ValueError, match="judge"):
        Restorer.from_pretrained(judged_model, device="cpu", backend="torch", judge="none", styles=[package])


def test_restore_cli_takes_styles(judged_model: Path, package: Path, tmp_path: Path) -> None:
    from restorer.cli import main

    src = tmp_path / "in.txt"
    src.write_text("The showcase development slowed.\n")
    out = tmp_path / "out.txt"
    assert main(["restore", str(src), "-o", str(out), "--model", str(judged_model), "--device", "cpu",
                 "--backend", "torch", "--style", str(package)]) == 0  # fmt: skip
    assert "showcase" not in out.read_text()
    assert main(["restore", str(src), "-o", str(out), "--model", str(judged_model), "--style", "nope"]) == 2


def test_tables_mine_adds_the_base_spinners_rows_and_evidence(judged_model: Path, tmp_path: Path) -> None:
    from restorer import Restorer
    from restorer.cli import main

    d = tmp_path / "m"
    shutil.copytree(judged_model, d)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(p) + "\n" for p in PAIRS * 3))
    assert main(["tables", "mine", "--pairs", str(pairs), "--model", str(d), "--min-count", "2"]) == 0
    spec = json.loads((d / "restorer.json").read_text())["judge"]
    assert spec["tables"] == "mined" and spec["evidence"] == "mined/evidence.tsv"
    assert spec["lm"] == json.loads((judged_model / "restorer.json").read_text())["judge"]["lm"]
    r = Restorer.from_pretrained(d, device="cpu", backend="torch")
    cands = r.judge.proposer.propose("The showcase development slowed.")
    mined = {(c.original, c.replacement): c for c in cands}
    assert mined[("showcase", "market")].source == "table"  # a mined row joins the base tables
    assert mined[("showcase", "market")].evidence > 0
    from restorer.infer.styles import read_evidence_counts

    kept = read_evidence_counts(d / "mined" / "evidence.tsv")
    assert kept and all(r > 0 or n >= 10 for r, n in kept.values())  # rows never right and rarely seen are left out
    # a model that names no judge: a clear error, nothing written
    plain = tmp_path / "plain"
    shutil.copytree(judged_model, plain)
    (plain / "restorer.json").unlink()
    assert main(["tables", "mine", "--pairs", str(pairs), "--model", str(plain)]) == 2
    assert not (plain / "mined").exists()
