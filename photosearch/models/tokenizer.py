"""CLIP's byte-level BPE tokenizer without torch or open_clip.

A port of open_clip's ``SimpleTokenizer`` (MIT, from OpenAI CLIP) that reads the
merges from the model folder's ``tokenizer.json``; it yields the same token ids.
"""

from __future__ import annotations

import html
import json
from functools import lru_cache
from pathlib import Path

import regex


@lru_cache
def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def _clean(text: str) -> str:
    # ftfy repairs mojibake, curly quotes and control characters; printable ASCII has none of
    # those, and skipping the import saves ~50 ms on a cold query.
    if not (text.isascii() and text.isprintable()):
        try:
            import ftfy

            text = ftfy.fix_text(text)
        except ImportError:
            pass
    text = html.unescape(html.unescape(text)).strip()
    return " ".join(text.split()).strip().lower()


class ClipTokenizer:
    """Tokenize text to CLIP token ids: ``[SOT] + bpe(text) + [EOT]``, truncated to the context length."""

    def __init__(self, path: Path, context_length: int = 77) -> None:
        # Merges stay "a b" strings (ranks looked up as such): building tuples for all 48,894
        # of them would cost a cold query ~20 ms for the handful of words it tokenizes.
        merges: list[str] = json.loads(Path(path).read_text(encoding="utf-8"))["merges"]
        byte_encoder = _bytes_to_unicode()
        vocab = list(byte_encoder.values())
        vocab = vocab + [v + "</w>" for v in vocab]
        vocab.extend(m.replace(" ", "") for m in merges)
        special = ["<start_of_text>", "<end_of_text>"]
        vocab.extend(special)
        self.byte_encoder = byte_encoder
        self.encoder = {tok: i for i, tok in enumerate(vocab)}
        self.bpe_ranks = dict(zip(merges, range(len(merges))))
        self.cache = {t: t for t in special}
        self.pat = regex.compile(
            "|".join(special) + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            regex.IGNORECASE,
        )
        self.sot = self.encoder["<start_of_text>"]
        self.eot = self.encoder["<end_of_text>"]
        self.context_length = context_length

    def _bpe(self, token: str) -> str:
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
        if not pairs:
            return token + "</w>"
        while True:
            bigram = min(pairs, key=lambda p: self.bpe_ranks.get(f"{p[0]} {p[1]}", float("inf")))
            if f"{bigram[0]} {bigram[1]}" not in self.bpe_ranks:
                break
            first, second = bigram
            new_word: list[str] = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new_word.extend(word[i:])
                    break
                new_word.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
        out = " ".join(word)
        self.cache[token] = out
        return out

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for token in self.pat.findall(_clean(text)):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self._bpe(token).split(" "))
        return ids

    def __call__(self, texts: list[str]) -> list[list[int]]:
        """Token ids per text, with SOT/EOT, truncated (EOT kept) but not padded."""
        out = []
        for text in texts:
            ids = [self.sot] + self.encode(text) + [self.eot]
            if len(ids) > self.context_length:
                ids = ids[: self.context_length]
                ids[-1] = self.eot
            out.append(ids)
        return out
