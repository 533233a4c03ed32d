"""Make the data of a new tortured-phrase style: 2,000 training and 500 test pairs of short
academic phrases, with no phrase shared between the two (issue 15, docs/finetuning.md).

The style is ours, written for this benchmark, and is not the built-in ``tortured`` table: a
word-by-word paraphraser of technical terms in seven fields (ecology, chemistry, physics,
economics, psychology, agriculture, linguistics) that swaps each word it knows for a
sense-blind synonym ("soil erosion" -> "earth disintegration", "market share" -> "showcase
offer") and a few multi-word terms for a stock paraphrase ("climate change" -> "environmental
change"). Phrases are noun compounds built from one field's words (modifier + head, two
modifiers + head, head "of" head), with plural heads. Every training phrase and every test
phrase is different, but they are made of the same words, so a dictionary mined from the
training pairs can apply to test phrases it never saw; some test words are never spun in
training, as with any real sample.

    python benchmarks/make_tortured_style.py --out benchmarks/data/tortured_style

writes ``train.jsonl`` and ``test.jsonl`` (``{"spun", "original"}``), ``truth.tsv`` (the
style's own dictionary, ``original<TAB>spun``, for reference only: nothing trains on it) and
prints how many of the spun words the shipped tables already undo.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

# One line per word: "original = favourite; other" ("=" alone: the spinner does not know it).
# "+" after a noun: countable (plural heads). Adjectives are only modifiers.
FIELDS: dict[str, dict[str, str]] = {
    "ecology": {
        "nouns": """
            soil = earth; ground | erosion = disintegration | habitat+ = natural surroundings |
            species+ = = | forest+ = woodland | biodiversity = = | wetland+ = marshland |
            population+ = populace | predator+ = hunter | prey = quarry | ecosystem+ = environment |
            river+ = stream | pollution = contamination | decline+ = downfall | restoration = rebuilding |
            conservation = preservation | coverage = inclusion | loss = misfortune; forfeit |
            diversity = variety | density = thickness | migration = relocation | fish = = |
            climate change = environmental change | bird+ = fowl | plant+ = = """,
        "adjectives": """
            native = local; indigenous | invasive = intrusive | aquatic = oceanic | coastal = seaside |
            urban = metropolitan | endangered = jeopardized | tropical = = | marine = = """,
    },
    "chemistry": {
        "nouns": """
            reaction+ = response | rate+ = pace | acid+ = corrosive | solution+ = arrangement |
            bond+ = security | compound+ = compound | catalyst+ = impetus | surface+ = = |
            metal+ = = | oxide+ = = | yield+ = return | mixture+ = blend | concentration+ = fixation |
            crystal+ = gem | sample+ = test | analysis = investigation | structure+ = = |
            temperature+ = = | pressure = weight; strain | water = = | stability = steadiness |
            solvent+ = dissolvable | molecule+ = particle""",
        "adjectives": """
            organic = natural | chemical = synthetic | aqueous = watery | thermal = warm |
            electrochemical = = | porous = permeable | hydrogen = = | covalent = = """,
    },
    "physics": {
        "nouns": """
            field+ = region | force+ = power | wave+ = wave | particle+ = molecule | energy = vitality |
            light = = | beam+ = shaft | mass = mass | charge+ = accuse | magnet+ = = |
            velocity = speed | motion = movement | spin = turn | laser+ = = | lens+ = = |
            measurement+ = estimation | density = thickness | radiation = = | dark matter = dim matter |
            black hole+ = dark gap | quantum = = | scattering = dissipating | resolution = goal """,
        "adjectives": """
            magnetic = attractive | electric = electrical | optical = visual | nuclear = atomic |
            angular = precise | kinetic = active | solar = sunlight based | gravitational = = """,
    },
    "economics": {
        "nouns": """
            market+ = showcase | share+ = offer | growth = development | price+ = cost |
            demand = request | supply = stock | trade = exchange | income = pay | tax+ = charge |
            policy+ = strategy | inflation = expansion | labour = work | firm+ = company |
            investment+ = venture | debt = obligation | bank+ = = | interest = intrigue |
            unemployment = joblessness | welfare = government assistance | wage+ = compensation |
            risk+ = hazard | supply chain+ = inventory network | exchange rate+ = conversion scale """,
        "adjectives": """
            fiscal = monetary | economic = financial | public = open | foreign = outside |
            domestic = local; homegrown | monetary = money related | rural = provincial | social = = """,
    },
    "psychology": {
        "nouns": """
            memory = = | behaviour+ = conduct | attention = consideration | anxiety = tension |
            emotion+ = feeling | perception = discernment | learning = = | self = = | stress = = |
            motivation = inspiration | disorder+ = turmoil | child+ = kid | adolescent+ = youngster |
            parent+ = = | personality = character | trait+ = quality | test+ = = | task+ = errand |
            reward+ = prize | skill+ = expertise | decision making = dynamic | well being = prosperity |
            depression = sorrow """,
        "adjectives": """
            cognitive = intellectual | emotional = enthusiastic | social = = | mental = psychological |
            working = functioning | visual = = | early = = | chronic = ceaseless """,
    },
    "agriculture": {
        "nouns": """
            crop+ = harvest | yield+ = return | farm+ = ranch | seed+ = = | grain+ = = |
            irrigation = water system | fertilizer+ = compost | pest+ = bug | weed+ = = |
            wheat = = | rice = = | livestock = domesticated animals | cattle = = | milk = = |
            nutrient+ = supplement | production = creation | land = = | harvest+ = gather |
            food security = sanitation | greenhouse+ = nursery | farmer+ = rancher""",
        "adjectives": """
            agricultural = farming | sustainable = practical | organic = natural | dairy = = |
            dry = = | arable = = | fresh = = | small = little""",
    },
    "linguistics": {
        "nouns": """
            language+ = = | word+ = = | speaker+ = orator | grammar = language structure |
            sentence+ = sentence | meaning+ = significance | vocabulary = jargon | sound+ = = |
            speech = discourse | reading = perusing | writing = composing | text+ = = |
            acquisition = obtaining | translation+ = interpretation | dialect+ = vernacular |
            corpus = = | structure+ = = | verb+ = action word | noun+ = thing | tense+ = strained |
            knowledge = information """,
        "adjectives": """
            native = local | foreign = outside | spoken = expressed | written = composed |
            lexical = = | syntactic = = | second = = | bilingual = = """,
    },
}


def parse(block: str, countable_ok: bool) -> list[tuple[str, bool, list[str]]]:
    """``[(original, countable, alternatives)]`` from one field's block."""
    out = []
    for item in block.replace("\n", " ").split("|"):
        item = item.strip()
        if not item:
            continue
        left, _, right = item.partition("=")
        left = left.strip()
        countable = countable_ok and left.endswith("+")
        word = left.rstrip("+").strip()
        alts = [a.strip() for a in right.split(";") if a.strip() and a.strip() != "="]
        alts = [a for a in alts if a != word]
        out.append((word, countable, alts))
    return out


_IRREGULAR = {"child": "children", "species": "species", "analysis": "analyses", "self": "selves",
              "fish": "fish", "cattle": "cattle", "livestock": "livestock"}


def plural(phrase: str) -> str:
    words = phrase.split()
    w = words[-1]
    if w in _IRREGULAR:
        p = _IRREGULAR[w]
    elif w.endswith(("s", "x", "ch", "sh")):
        p = w + "es"
    elif w.endswith("y") and w[-2:-1] not in "aeiou":
        p = w[:-1] + "ies"
    else:
        p = w + "s"
    return " ".join([*words[:-1], p])


class Field:
    def __init__(self, spec: dict[str, str]) -> None:
        self.nouns = parse(spec["nouns"], True)
        self.adjectives = parse(spec["adjectives"], False)

    def phrase(self, rng: random.Random) -> list[tuple[str, list[str], bool]]:
        """One phrase as [(word, its alternatives, pluralise)]; only the head may be plural."""
        t = rng.random()
        noun = lambda: rng.choice(self.nouns)  # noqa: E731
        mod = lambda: rng.choice(self.adjectives) if rng.random() < 0.5 else noun()  # noqa: E731
        if t < 0.45:
            parts = [mod(), noun()]
        elif t < 0.8:
            parts = [mod(), mod(), noun()]
        else:
            parts = [noun(), ("of", False, []), noun()]
        words = [p[0] for p in parts]
        if len(set(words)) < len(words):
            return []
        head = parts[-1]
        pl = head[1] and rng.random() < 0.35
        return [(w, alts, pl and k == len(parts) - 1) for k, (w, _c, alts) in enumerate(parts)]


def spin(parts: list[tuple[str, list[str], bool]], rng: random.Random, rate: float) -> tuple[str, str]:
    orig, spun = [], []
    for word, alts, pl in parts:
        o = plural(word) if pl else word
        s = o
        if alts and rng.random() < rate:
            alt = alts[0] if len(alts) == 1 or rng.random() < 0.75 else rng.choice(alts[1:])
            s = plural(alt) if pl else alt
        orig.append(o)
        spun.append(s)
    return " ".join(spun), " ".join(orig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/data/tortured_style"))
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-test", type=int, default=500)
    ap.add_argument("--rate", type=float, default=0.9, help="share of known words the spinner swaps")
    ap.add_argument("--seed", type=int, default=15)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    fields = [Field(spec) for spec in FIELDS.values()]
    pairs: dict[str, str] = {}  # original phrase -> spun: every phrase once
    want = args.n_train + args.n_test
    tries = 0
    while len(pairs) < want:
        tries += 1
        if tries > 200 * want:
            raise SystemExit(f"only {len(pairs)} distinct phrases after {tries} tries")
        parts = rng.choice(fields).phrase(rng)
        if not parts:
            continue
        spun, orig = spin(parts, rng, args.rate)
        if spun != orig and orig not in pairs:
            pairs[orig] = spun
    items = list(pairs.items())
    rng.shuffle(items)
    test, train = items[: args.n_test], items[args.n_test :]
    args.out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train), ("test", test)):
        with open(args.out / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            for orig, spun in rows:
                fh.write(json.dumps({"spun": spun, "original": orig}) + "\n")
    truth: dict[str, list[str]] = {}
    for f in fields:
        for word, _c, alts in f.nouns + f.adjectives:
            if alts:
                truth.setdefault(word, [])
                truth[word] += [a for a in alts if a not in truth[word]]
    with open(args.out / "truth.tsv", "w", encoding="utf-8") as fh:
        fh.write("# the tortured_style benchmark's own dictionary (benchmarks/make_tortured_style.py)\n"
                 "# for reference only: restorer finetune mines its dictionary from train.jsonl\n")
        for word, alts in sorted(truth.items()):
            fh.write(f"{word}\t" + "\t".join(alts) + "\n")
    print(f"{len(train)} train, {len(test)} test pairs; {len(truth)} words in the style; -> {args.out}")
    _report_overlap(train, test)


def _report_overlap(train: list[tuple[str, str]], test: list[tuple[str, str]]) -> None:
    """How much the base restorer's tables already know, and how new the test is."""
    from restorer.spin.lexicon import default_lexicon
    from restorer.train.finetune.mining import mine_style

    assert not {o for o, _ in train} & {o for o, _ in test}, "a phrase in both splits"
    mined = mine_style([{"spun": s, "original": o} for o, s in train], lexicon=default_lexicon())
    print(f"mined from train: {mined.summary()}")
    seen = {o for o, _ in train}
    words_train = {w for o in seen for w in o.split()}
    new = sum(any(w not in words_train for w in o.split()) for o, _ in test)
    print(f"test phrases with a word never in train: {new}/{len(test)}")


if __name__ == "__main__":
    main()
