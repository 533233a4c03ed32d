"""Drafting for copy-speculative decoding: guess the next output tokens from the source.

A restored sentence mostly copies its source, so the next tokens of the output are usually the
source's tokens after the ones just written. :func:`draft` proposes them; the decoder
(:class:`restorer.infer.lean.LeanT5`) checks the whole draft in one pass and keeps the
longest prefix the model agrees with.
"""

from __future__ import annotations


def _lookup(hay: list[int], out: list[int], ptr: int, end: int, max_ctx: int = 6) -> tuple[int, int]:
    """Where in ``hay[:end]`` the output continues: the position ``j`` after the occurrence
    of the output's last token that matches the longest run of preceding output tokens
    (up to ``max_ctx``), nearest to ``ptr`` among equals. Returns ``(context, j)``; context 0
    means the last token does not occur."""
    last = out[-1]
    best_ctx, best_j = 0, -1
    for j in range(end):
        if hay[j] != last:
            continue
        c = 1
        while c < max_ctx and c < len(out) and j - c >= 0 and hay[j - c] == out[-1 - c]:
            c += 1
        if c > best_ctx or (c == best_ctx and abs(j + 1 - ptr) < abs(best_j + 1 - ptr)):
            best_ctx, best_j = c, j
    return best_ctx, best_j + 1


def draft(src: list[int], out: list[int], ptr: int, k: int) -> tuple[list[int], int]:
    """Propose the next ``k`` output tokens.

    A restored sentence mostly copies its source, so the draft is the source's continuation
    after the output's last tokens, aligned by ``ptr`` (where the output is expected to be in
    the source). When the output's own history matches a longer run of its last tokens (a
    model repeating itself), the draft continues the repetition instead.
    """
    if k <= 0:
        return [], ptr
    if not out:
        return src[:k], 0
    ctx_s, at_s = _lookup(src, out, ptr, len(src))
    ctx_o, at_o = _lookup(out, out, len(out), len(out) - 1)
    if ctx_o > ctx_s:
        return out[at_o : at_o + k], ptr
    if ctx_s:
        return src[at_s : at_s + k], at_s
    return [], ptr
