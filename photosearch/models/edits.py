"""How far apart two strings are, in edits: for the typo search of photo text (query/words.py)
and for checking a recognizer against another (models/ocr_int8.py)."""

from __future__ import annotations


def edit_distance(a: str, b: str) -> int:
    """Damerau-Levenshtein distance, optimal string alignment (as DuckDB's ``damerau_levenshtein``):
    an insertion, a deletion, a substitution or a swap of two neighbours is one edit."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[len(b)]


__all__ = ["edit_distance"]
