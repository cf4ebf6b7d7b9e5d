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
        """BPE token ids of a text, without SOT/EOT and untruncated."""
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


# -- HuggingFace `tokenizers` (Immich's model folders) ---------------------------------------

#: CLIP's pre-tokenizer split: the same alternatives as ClipTokenizer.pat (text is lowercased first).
_CLIP_SPLIT = r"""<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""

#: What open_clip pads with (token id 0, the byte-level character "!"). Argmax/EOT pooling towers
#: ignore whatever follows the end-of-text token, but other pooling does not, so an exported
#: CLIP-BPE tokenizer pads exactly as open_clip does.
CLIP_PAD_TOKEN = "!"


#: ftfy's fix_latin_ligatures table.
_LIGATURES = {"\u0132": "IJ", "\u0133": "ij", "\u0149": "\u02bcn", "\u01f1": "DZ", "\u01f2": "Dz", "\u01f3": "dz",
              "\u01c4": "D\u017d", "\u01c5": "D\u017e", "\u01c6": "d\u017e", "\u01c7": "LJ", "\u01c8": "Lj",
              "\u01c9": "lj", "\u01ca": "NJ", "\u01cb": "Nj", "\u01cc": "nj", "\ufb00": "ff", "\ufb01": "fi",
              "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl", "\ufb05": "\u017ft", "\ufb06": "st"}


def _ftfy_replacements() -> list[tuple[str, str]]:
    """ftfy's ligature and character-width fixes as (from, to) pairs (its WIDTH_MAP is NFKC of
    U+FF01..U+FFEF, and the ideographic space)."""
    import unicodedata

    pairs = list(_LIGATURES.items()) + [("\u3000", " ")]
    for code in range(0xFF01, 0xFFF0):
        char = chr(code)
        alt = unicodedata.normalize("NFKC", char)
        if alt != char:
            pairs.append((char, alt))
    return pairs


def clip_vocab(merges: list[str]) -> list[str]:
    """CLIP's vocabulary in id order: 256 byte characters, the same with ``</w>``, merges, specials."""
    chars = list(_bytes_to_unicode().values())
    return chars + [c + "</w>" for c in chars] + [m.replace(" ", "") for m in merges] + [
        "<start_of_text>", "<end_of_text>"]


def build_hf_clip_tokenizer(merges: list[str]) -> object:
    """A ``tokenizers.Tokenizer`` giving the same ids as :class:`ClipTokenizer` for the same merges.

    BPE with ``</w>`` word ends over CLIP's byte-level vocabulary; the normalizer does what
    ClipTokenizer's cleaning does for ordinary text (NFC, whitespace collapsed, lowercase; ftfy's
    quote uncurling too), the pre-tokenizer splits with CLIP's regex before mapping bytes to
    characters, and the post-processor adds start/end of text. Needs the ``tokenizers`` package.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = clip_vocab(merges)
    bpe = models.BPE(
        vocab={tok: i for i, tok in enumerate(vocab)},
        merges=[(a, b) for a, b in (m.split(" ", 1) for m in merges)],
        end_of_word_suffix="</w>",
        continuing_subword_prefix="",
        fuse_unk=False,
    )
    tok = Tokenizer(bpe)
    tok.normalizer = normalizers.Sequence([
        normalizers.NFC(),
        # What ftfy (run by ClipTokenizer on non-ASCII text) changes in ordinary text: Latin
        # ligatures and full-width forms spelled out, curly quotes straightened.
        *(normalizers.Replace(src, dst) for src, dst in _ftfy_replacements()),
        normalizers.Replace(Regex("[\u02bc\u2018-\u201b]"), "'"),
        normalizers.Replace(Regex("[\u201c-\u201f]"), '"'),
        normalizers.Replace(Regex(r"\s+"), " "),
        normalizers.Strip(),
        normalizers.Lowercase(),
    ])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_CLIP_SPLIT), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    sot, eot = len(vocab) - 2, len(vocab) - 1
    tok.post_processor = processors.TemplateProcessing(
        single="<start_of_text> $A <end_of_text>",
        pair="<start_of_text> $A <end_of_text> $B:1 <end_of_text>:1",
        special_tokens=[("<start_of_text>", sot), ("<end_of_text>", eot)],
    )
    tok.decoder = decoders.BPEDecoder(suffix="</w>")
    # Typed literally, the special tokens map to their ids, as ClipTokenizer's regex does.
    tok.add_special_tokens(["<start_of_text>", "<end_of_text>"])
    return tok


def clean_text(text: str, canonicalize: bool = False) -> str:
    """Immich's text cleaning: whitespace collapsed; ``canonicalize`` (SigLIP) also drops ASCII
    punctuation and lowercases, as open_clip's ``clean="canonicalize"`` tokenizers do."""
    text = " ".join(text.split())
    if canonicalize:
        import string

        text = text.translate(str.maketrans("", "", string.punctuation)).lower()
    return text


class HFTokenizer:
    """A HuggingFace ``tokenizer.json`` (Immich's model folders), padded with the pad token and
    truncated to the context length as Immich does."""

    def __init__(self, path: Path, context_length: int, pad_token: str, canonicalize: bool = False) -> None:
        from tokenizers import Tokenizer

        from photosearch.errors import ModelError

        try:
            self._tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises plain Exceptions for unreadable JSON
            raise ModelError(f"cannot read tokenizer {path}: {str(exc).splitlines()[0][:200]}") from None
        pad_id = self._tok.token_to_id(pad_token)
        if pad_id is None:
            raise ModelError(f"tokenizer {path} has no pad token {pad_token!r} (from tokenizer_config.json)")
        self.pad_id: int = pad_id
        self.context_length = context_length
        self.canonicalize = canonicalize
        self._tok.enable_padding(length=context_length, pad_id=pad_id, pad_token=pad_token)
        self._tok.enable_truncation(max_length=context_length)

    def encode_batch(self, texts: list[str]) -> tuple[list[list[int]], list[list[int]]]:
        """Token ids and attention masks per text, each padded to the context length."""
        encodings = self._tok.encode_batch([clean_text(t, self.canonicalize) for t in texts])
        return [e.ids for e in encodings], [e.attention_mask for e in encodings]

    def __call__(self, texts: list[str]) -> list[list[int]]:
        """Token ids per text, padded to the context length."""
        return self.encode_batch(texts)[0]
