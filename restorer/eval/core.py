"""Pure metric functions of ``restorer eval`` (DESIGN.md section 5).

Everything here is a plain function of lists of strings: no model, no ``evaluate``, no I/O.
The three parallel inputs are

* ``sources``: the spun text the model was given,
* ``predictions``: what the model produced for them,
* ``references``: the original text.

All corpus scores are *corpus-level*: counts are summed over the sentences first and divided
once at the end (never a mean of per-sentence ratios).

Words
-----
A "word" is a token of :data:`WORD_RE`: a run of word characters, with apostrophes inside a
word kept (``don't``, ``O'Neill``, ``it’s``), or a single punctuation character. Punctuation is
therefore split off (``said,`` is two tokens, so ``said,`` vs ``says,`` is one word edit) and
hyphens are separate tokens, which matches the spinner's own notion of a word
(``restorer.spin.spinner.TOKEN_RE``). Comparison is case-sensitive; whitespace is ignored.
"""

from __future__ import annotations

from collections.abc import Sequence

import sacrebleu

from restorer.common import WORD_RE

__all__ = [
    "WORD_RE",
    "WordEdit",
    "bleu_score",
    "chrf_score",
    "clean_changed_score",
    "compute_metrics",
    "edit_counts",
    "edit_scores",
    "exact_score",
    "extract_edits",
    "precision_recall_f",
    "repaired_score",
    "restoration_scores",
    "token_edit_distance",
    "tokenize_words",
    "word_edit_distance",
]

WordEdit = tuple[int, int, tuple[str, ...]]
"""A word-level edit ``(src_start, src_end, replacement_tokens)``: source tokens
``[src_start:src_end]`` are replaced by ``replacement_tokens`` (an insertion has
``src_start == src_end``, a deletion an empty replacement)."""


# --------------------------------------------------------------------------- tokens and distance


def tokenize_words(s: str) -> list[str]:
    """Split ``s`` into word and punctuation tokens (see the module docstring)."""
    return WORD_RE.findall(s)


def _common_affixes(a: Sequence[str], b: Sequence[str]) -> tuple[int, int]:
    """Lengths of the common prefix and (non-overlapping) common suffix of two token lists."""
    n = min(len(a), len(b))
    p = 0
    while p < n and a[p] == b[p]:
        p += 1
    n -= p
    s = 0
    while s < n and a[-1 - s] == b[-1 - s]:
        s += 1
    return p, s


def token_edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance between two token sequences (unit cost insert/delete/substitute).

    Common prefix and suffix are stripped, then Hyyrö's bit-parallel algorithm runs with one
    Python int as the bit vector over the longer sequence: O(len(shorter)) big-int operations, so
    10k sentence pairs take a fraction of a second.
    """
    p, s = _common_affixes(a, b)
    if p or s:
        a = a[p : len(a) - s]
        b = b[p : len(b) - s]
    if len(a) < len(b):
        a, b = b, a
    m = len(a)
    if not b:
        return m
    peq: dict[str, int] = {}
    bit = 1
    for tok in a:
        peq[tok] = peq.get(tok, 0) | bit
        bit <<= 1
    full = bit - 1
    top = bit >> 1
    vp = full
    vn = 0
    dist = m
    get = peq.get
    for tok in b:
        x = get(tok, 0) | vn
        d0 = (((x & vp) + vp) ^ vp) | x
        hp = vn | ~(d0 | vp)
        hn = vp & d0
        if hp & top:
            dist += 1
        elif hn & top:
            dist -= 1
        hp = (hp << 1) | 1
        hn <<= 1
        vp = (hn | ~(d0 | hp)) & full
        vn = hp & d0 & full
    return dist


def word_edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between the word tokens (:func:`tokenize_words`) of two strings."""
    return token_edit_distance(WORD_RE.findall(a), WORD_RE.findall(b))


# --------------------------------------------------------------------------- alignment and edits

_SUB, _DEL, _INS, _KEEP = 0, 1, 2, 3


def _diff_blocks(a: Sequence[str], b: Sequence[str]) -> list[tuple[int, int, int, int]]:
    """Maximal non-matching blocks ``(a0, a1, b0, b1)`` of one optimal Levenshtein alignment.

    Landau-Vishkin diagonal transition: for each cost ``e`` and diagonal ``k = j - i`` keep the
    furthest row reachable with ``e`` edits, sliding along matches for free. Time
    O(len + d**2) for distance ``d``, which is tiny for spun text where few words differ. Ties
    prefer substitution, then deletion, then insertion; matches are taken as early as possible.
    """
    m, n = len(a), len(b)
    i = 0
    while i < m and i < n and a[i] == b[i]:
        i += 1
    target = n - m
    # fronts[e][k] = (row after sliding, row before sliding, operation that entered it)
    fronts: list[dict[int, tuple[int, int, int]]] = [{0: (i, 0, _KEEP)}]
    if target == 0 and i == m:
        return []
    e = 0
    while True:
        e += 1
        prev = fronts[-1]
        cur: dict[int, tuple[int, int, int]] = {}
        for k in range(max(-e, -m), min(e, n) + 1):
            best = -1
            op = _KEEP
            hit = prev.get(k)
            if hit is not None:
                r = hit[0]
                if r < m and r + k < n:
                    best, op = r + 1, _SUB
                else:
                    best = r
            hit = prev.get(k + 1)
            if hit is not None and hit[0] < m and hit[0] + 1 > best:
                best, op = hit[0] + 1, _DEL
            hit = prev.get(k - 1)
            if hit is not None and hit[0] + k <= n and hit[0] > best:
                best, op = hit[0], _INS
            if best < 0:
                continue
            row = best
            while row < m and row + k < n and a[row] == b[row + k]:
                row += 1
            cur[k] = (row, best, op)
        fronts.append(cur)
        done = cur.get(target)
        if done is not None and done[0] == m:
            break
    # backtrace: one (a0, b0, a1, b1) step per edit operation, last to first
    steps: list[tuple[int, int, int, int]] = []
    k = target
    while e > 0:
        _, start, op = fronts[e][k]
        if op == _SUB:
            steps.append((start - 1, start - 1 + k, start, start + k))
        elif op == _DEL:
            steps.append((start - 1, start + k, start, start + k))
            k += 1
        elif op == _INS:
            steps.append((start, start + k - 1, start, start + k))
            k -= 1
        e -= 1
    steps.reverse()
    blocks: list[tuple[int, int, int, int]] = []
    for a0, b0, a1, b1 in steps:
        if blocks and blocks[-1][1] == a0 and blocks[-1][3] == b0:
            blocks[-1] = (blocks[-1][0], a1, blocks[-1][2], b1)
        else:
            blocks.append((a0, a1, b0, b1))
    return blocks


def _edits_of_tokens(src: Sequence[str], tgt: Sequence[str]) -> set[WordEdit]:
    edits: set[WordEdit] = set()
    for s0, s1, t0, t1 in _diff_blocks(src, tgt):
        if s1 - s0 == t1 - t0:
            # In an optimal alignment an equal-length block is pure substitutions (a delete plus
            # an insert would cost more than a substitution): one edit per swapped word.
            for off in range(s1 - s0):
                edits.add((s0 + off, s0 + off + 1, (tgt[t0 + off],)))
        else:
            edits.add((s0, s1, tuple(tgt[t0:t1])))
    return edits


def extract_edits(source: str, target: str) -> list[WordEdit]:
    """Word-level edits turning ``source`` into ``target``, sorted by position.

    The tokens are aligned with a minimum-cost Levenshtein alignment. Each maximal run of
    adjacent non-matching tokens is one edit, so a phrase replacement such as
    ``in accordance with`` -> ``according to`` (or any insertion/deletion together with its
    neighbouring substitutions) is a single edit ``(start, end, replacement)``. A run that
    replaces as many words as it removes is pure word-for-word substitution (the spinner's usual
    move) and is split into one edit per word, so restoring one of two adjacent swapped words
    still earns credit.
    """
    return sorted(_edits_of_tokens(WORD_RE.findall(source), WORD_RE.findall(target)))


# --------------------------------------------------------------------------- validation


def _check_corpus(**columns: Sequence[str]) -> int:
    """Validate parallel inputs; return their common length."""
    lengths: dict[str, int] = {}
    for name, col in columns.items():
        if isinstance(col, str):
            raise TypeError(f"{name} must be a sequence of strings, not a single string")
        lengths[name] = len(col)
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{name}={size}" for name, size in lengths.items())
        raise ValueError(f"inputs must have the same number of sentences, got {detail}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise ValueError("no sentences to score: all inputs are empty")
    return n


# --------------------------------------------------------------------------- scores


def precision_recall_f(tp: int, fp: int, fn: int, beta: float = 0.5) -> tuple[float, float, float]:
    """Precision, recall and F-beta from edit counts, with the ERRANT / M2 conventions.

    Precision is 1.0 when there are no false positives (in particular when the system proposed
    no edit at all), recall is 1.0 when there are no false negatives (no gold edit), and F is
    0.0 when precision + recall is 0.
    """
    p = tp / (tp + fp) if fp else 1.0
    r = tp / (tp + fn) if fn else 1.0
    b2 = beta * beta
    f = (1 + b2) * p * r / (b2 * p + r) if p + r else 0.0
    return p, r, f


def _repaired_from_sums(spun: int, left: int) -> float:
    # (spun - left) / spun == 1 - left / spun, with max(1, spun) when nothing was spun:
    # then 0.0 if every output is right and -(words damaged) otherwise.
    return (spun - left) / max(1, spun)


def repaired_score(sources: Sequence[str], predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of the spinning undone, the headline number.

    ``1 - sum(d(prediction, reference)) / sum(d(source, reference))`` with ``d`` the word edit
    distance, both sums over the whole corpus. Identity scores 0, a perfect restoration 1, and
    a system that damages the text goes negative.

    If nothing was spun (the denominator is 0) the denominator is taken as 1, i.e. the score is
    ``(sum d(src, ref) - sum d(pred, ref)) / max(1, sum d(src, ref))``: 0.0 when every
    prediction matches its reference word for word, otherwise minus the number of words the
    system got wrong (always < 0).
    """
    _check_corpus(sources=sources, predictions=predictions, references=references)
    spun = left = 0
    for src, pred, ref in zip(sources, predictions, references, strict=True):
        ref_t = WORD_RE.findall(ref)
        spun += token_edit_distance(WORD_RE.findall(src), ref_t)
        left += token_edit_distance(WORD_RE.findall(pred), ref_t)
    return _repaired_from_sums(spun, left)


def exact_score(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of predictions equal to their reference after stripping surrounding whitespace."""
    n = _check_corpus(predictions=predictions, references=references)
    hits = sum(p.strip() == r.strip() for p, r in zip(predictions, references, strict=True))
    return hits / n


def edit_counts(
    sources: Sequence[str], predictions: Sequence[str], references: Sequence[str]
) -> tuple[int, int, int]:
    """Corpus ``(tp, fp, fn)`` of predicted edits (source->prediction) against gold edits
    (source->reference), edits as in :func:`extract_edits`, matched exactly (span and
    replacement)."""
    _check_corpus(sources=sources, predictions=predictions, references=references)
    tp = fp = fn = 0
    for src, pred, ref in zip(sources, predictions, references, strict=True):
        src_t = WORD_RE.findall(src)
        gold = _edits_of_tokens(src_t, WORD_RE.findall(ref))
        hyp = _edits_of_tokens(src_t, WORD_RE.findall(pred))
        hit = len(gold & hyp)
        tp += hit
        fp += len(hyp) - hit
        fn += len(gold) - hit
    return tp, fp, fn


def edit_scores(
    sources: Sequence[str], predictions: Sequence[str], references: Sequence[str], beta: float = 0.5
) -> dict[str, float]:
    """ERRANT-style word-level edit precision, recall and F0.5, corpus level.

    Returns ``edit_precision``, ``edit_recall`` and ``edit_f05``. Precision is 1.0 when the
    system made no edit (the usual GEC convention; identity then scores P = 1, R = 0, F0.5 = 0),
    recall is 1.0 when there was nothing to fix. See :func:`precision_recall_f`.
    """
    p, r, f = precision_recall_f(*edit_counts(sources, predictions, references), beta=beta)
    return {"edit_precision": p, "edit_recall": r, "edit_f05": f}


def chrf_score(predictions: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu corpus chrF (default settings), 0-100."""
    _check_corpus(predictions=predictions, references=references)
    return float(sacrebleu.corpus_chrf(list(predictions), [list(references)]).score)


def bleu_score(predictions: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu corpus BLEU (default settings: 13a tokenizer, exp smoothing), 0-100."""
    _check_corpus(predictions=predictions, references=references)
    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


def clean_changed_score(predictions_on_clean: Sequence[str], references: Sequence[str]) -> float:
    """Over-correction: share of words changed when the *original* text is fed in.

    ``references`` are the clean originals given to the model and ``predictions_on_clean`` its
    outputs for them: ``sum d(output, original) / sum len(original words)`` (denominator at
    least 1). Lower is better, the target is about 0; it can exceed 1 for a runaway model.
    """
    _check_corpus(predictions_on_clean=predictions_on_clean, references=references)
    changed = words = 0
    for pred, ref in zip(predictions_on_clean, references, strict=True):
        ref_t = WORD_RE.findall(ref)
        words += len(ref_t)
        changed += token_edit_distance(WORD_RE.findall(pred), ref_t)
    return changed / max(1, words)


def restoration_scores(
    sources: Sequence[str], predictions: Sequence[str], references: Sequence[str]
) -> dict[str, float]:
    """The token-based scores in one pass over the corpus (each string tokenized once).

    Keys: ``repaired``, ``exact``, ``edit_precision``, ``edit_recall``, ``edit_f05``, ``n``;
    values identical to :func:`repaired_score`, :func:`exact_score` and :func:`edit_scores`.
    """
    n = _check_corpus(sources=sources, predictions=predictions, references=references)
    spun = left = hits = tp = fp = fn = 0
    for src, pred, ref in zip(sources, predictions, references, strict=True):
        src_t = WORD_RE.findall(src)
        pred_t = WORD_RE.findall(pred)
        ref_t = WORD_RE.findall(ref)
        spun += token_edit_distance(src_t, ref_t)
        left += token_edit_distance(pred_t, ref_t)
        hits += pred.strip() == ref.strip()
        gold = _edits_of_tokens(src_t, ref_t)
        hyp = _edits_of_tokens(src_t, pred_t)
        hit = len(gold & hyp)
        tp += hit
        fp += len(hyp) - hit
        fn += len(gold) - hit
    p, r, f = precision_recall_f(tp, fp, fn)
    return {
        "repaired": _repaired_from_sums(spun, left),
        "exact": hits / n,
        "edit_precision": p,
        "edit_recall": r,
        "edit_f05": f,
        "n": n,
    }


def compute_metrics(
    sources: Sequence[str],
    predictions: Sequence[str],
    references: Sequence[str],
    predictions_on_clean: Sequence[str] | None = None,
) -> dict[str, float]:
    """All metrics of ``restorer eval`` for one corpus.

    Returns ``repaired``, ``exact``, ``chrf``, ``bleu``, ``edit_precision``, ``edit_recall``,
    ``edit_f05`` and ``n`` (sentence count, an int), plus ``clean_changed`` when
    ``predictions_on_clean`` (the model's outputs for ``references`` fed in as input) is given.

    Raises ``ValueError`` if the inputs differ in length or are empty.
    """
    if predictions_on_clean is None:
        _check_corpus(sources=sources, predictions=predictions, references=references)
    else:
        _check_corpus(
            sources=sources,
            predictions=predictions,
            references=references,
            predictions_on_clean=predictions_on_clean,
        )
    scores = restoration_scores(sources, predictions, references)
    out: dict[str, float] = {key: scores[key] for key in ("repaired", "exact")}
    out["chrf"] = chrf_score(predictions, references)
    out["bleu"] = bleu_score(predictions, references)
    for key in ("edit_precision", "edit_recall", "edit_f05"):
        out[key] = scores[key]
    if predictions_on_clean is not None:
        out["clean_changed"] = clean_changed_score(predictions_on_clean, references)
    out["n"] = scores["n"]
    return out
