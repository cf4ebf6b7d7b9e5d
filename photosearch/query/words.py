"""`--words`: photos by the text read in them (OCR), case- and accent-insensitive, by sub-string,
with typos forgiven, and "quoted phrases" matched whole.

Every term must be found: as a sub-string of the photo's normalized text, or (terms of 4 letters
or more) as a word within 1 edit, 2 from 8 letters (Damerau-Levenshtein: a swap is one edit).
Photos with more terms found exactly rank first. The result carries the lines that matched, with
their words' boxes (fractions of the upright photo)."""

from __future__ import annotations

import re
from typing import Any

from photosearch.errors import UsageError
from photosearch.models.edits import edit_distance
from photosearch.models.ocr import normalize_text
from photosearch.store.catalog import Catalog
from photosearch.store.records import Filters


def parse(query: str) -> tuple[list[str], list[str]]:
    """(terms, phrases) of a query: "quoted" parts are phrases, the rest words."""
    phrases = [normalize_text(p) for p in re.findall(r'"([^"]+)"', query)]
    rest = re.sub(r'"[^"]*"?', " ", query)
    terms = [t for t in normalize_text(rest).split() if t]
    return terms, [p for p in phrases if p]


def typo_distance(term: str) -> int:
    """Edits forgiven in a term: none under 4 letters, 1 from 4, 2 from 8."""
    return 0 if len(term) < 4 else 1 if len(term) < 8 else 2


def search_words(cat: Catalog, query: str, filters: Filters | None, limit: int) -> list[tuple[int, float, list[dict[str, Any]]]]:
    """(photo id, score, matching lines) best first; the score is the share of terms found exactly."""
    terms, phrases = parse(query)
    if not terms and not phrases:
        raise UsageError("--words needs a word to look for")
    if limit <= 0:
        raise UsageError("--limit must be at least 1")
    allowed = cat.filtered_ids(filters).tolist() if filters is not None and filters.active() else None
    fuzzy = [(t, typo_distance(t)) for t in terms if typo_distance(t)]
    exact = [t for t in terms if not typo_distance(t)]
    # Photos holding every term exactly rank above any with a typo: when there are enough of
    # them, the typo search (the costly part with a common word) is not needed. A term no text
    # holds (a typo, mostly) cannot be found exactly: no first pass, nor a scan for it.
    unread = cat.unread_words([t for t, _ in fuzzy])
    found = [] if unread else cat.words_matching(terms, phrases, [], allowed, limit)
    if len(found) < limit and fuzzy:
        found = cat.words_matching(exact, phrases, fuzzy, allowed, limit, unread)
    n = len(terms) + len(phrases)
    texts = cat.text_of([pid for pid, _, _ in found])
    out = []
    for pid, n_exact, n_near in found:
        lines = [ln for ln in texts.get(pid, []) if _matches(normalize_text(ln["text"]), terms, phrases)]
        out.append((pid, (n_exact + 0.5 * n_near) / n, lines))
    return out


def _matches(norm: str, terms: list[str], phrases: list[str]) -> bool:
    # The line's words as the vocabulary cuts them (runs of letters and digits): "lyon," is "lyon".
    words = re.findall(r"[^\W_]+", norm)
    for p in phrases:
        if p in norm:
            return True
    for t in terms:
        if t in norm:
            return True
        d = typo_distance(t)
        if d and any(abs(len(w) - len(t)) <= d and edit_distance(w, t) <= d for w in words):
            return True
    return False


__all__ = ["parse", "search_words", "typo_distance"]
