"""Tags: the user's taxonomy, scoring every photo from its stored CLIP vector, and learning from
the user's accept/reject decisions.

Scores are probabilities in 0..1:

- **zero-shot** (no decisions yet): CLIP's own two-way choice between the tag's prompts and a
  neutral caption ("a photo"), at CLIP's trained temperature (logit scale 100):
  ``p = sigmoid(100 * (cos(photo, tag) - cos(photo, neutral)))``. 0.5 means undecided, 0.6 that
  the tag's prompts fit somewhat better than "a photo", 0.9 clearly better.
- **probe** (once a tag has at least PROBE_MIN accepted and PROBE_MIN rejected photos): a
  logistic regression on the CLIP vectors trained on those decisions, started from and
  regularized towards the zero-shot direction, so a handful of corrections already helps. Its
  probabilities are fitted to the decided photos, which are not a random sample of the library
  (review shows borderline ones), so for a rare tag they run high: benchmarks/RESULTS.md.

Scoring reads stored vectors only (no image is decoded again): a matrix product per chunk.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from photosearch.errors import InputError, UsageError

ENV_TAXONOMY = "PHOTOSEARCH_TAXONOMY"
DEFAULT_THRESHOLD = 0.6
#: CLIP's trained temperature (open_clip clamps logit_scale at 100; pretrained models sit there).
LOGIT_SCALE = 100.0
NEUTRAL_PROMPTS = ("a photo", "a picture", "an image")
#: Accepted and rejected photos a tag needs before its probe replaces zero-shot scoring.
PROBE_MIN = 2
#: Pull of the probe's weights towards the zero-shot direction (L2), per decision.
PROBE_PRIOR = 1.0
USER_GROUP = "user"


@dataclass
class Tag:
    """One tag: its group, the text prompts that define it, aliases, parent, score threshold and origin."""

    name: str
    group: str
    prompts: list[str]
    aliases: list[str] = field(default_factory=list)
    parent: str | None = None
    threshold: float = DEFAULT_THRESHOLD
    source: str = "taxonomy"

    def as_row(self) -> dict[str, Any]:
        """The tag as a catalog row dict."""
        return {"name": self.name, "group": self.group, "parent": self.parent, "threshold": self.threshold,
                "aliases": self.aliases, "prompts": self.prompts, "source": self.source}


@dataclass
class Taxonomy:
    """The tags and group descriptions read from a taxonomy file, and where it came from."""

    tags: list[Tag]
    groups: dict[str, str]
    path: str

    def by_name(self) -> dict[str, Tag]:
        """Tags keyed by lower-cased name."""
        return {t.name.lower(): t for t in self.tags}


def default_taxonomy_text() -> str:
    """The text of the built-in taxonomy.toml."""
    return (resources.files("photosearch") / "data" / "taxonomy.toml").read_text(encoding="utf-8")


def taxonomy_path(library_root: Path, explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The taxonomy file in force: ``explicit``, else $PHOTOSEARCH_TAXONOMY, else <library>/taxonomy.toml
    if it exists; None means the default taxonomy shipped with photosearch."""
    given = explicit or os.environ.get(ENV_TAXONOMY)
    if given:
        return Path(given).expanduser()
    own = library_root / "taxonomy.toml"
    return own if own.is_file() else None


def load_taxonomy(path: Path | None) -> Taxonomy:
    """Parse and validate a taxonomy TOML file (None: the default one)."""
    if path is None:
        text, where = default_taxonomy_text(), "default taxonomy"
    else:
        if not path.is_file():
            raise InputError(f"taxonomy file not found: {path}")
        try:
            text, where = path.read_text(encoding="utf-8"), str(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read the taxonomy {path}: {exc}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{where}: invalid TOML: {exc}") from None
    groups = doc.get("groups", {})
    if not isinstance(groups, dict):
        raise UsageError(f"{where}: [groups] must be a table of group = \"description\"")
    raw = doc.get("tags", {})
    if not isinstance(raw, dict) or not raw:
        raise UsageError(f"{where}: no tags: add [tags.NAME] tables (see `photosearch tags init`)")
    tags: list[Tag] = []
    seen: dict[str, str] = {}
    for name, spec in raw.items():
        if not isinstance(spec, dict):
            raise UsageError(f"{where}: [tags.{name}] must be a table")
        prompts = spec.get("prompts") or [f"a photo of {name.lower()}"]
        aliases = spec.get("aliases") or []
        if not (isinstance(prompts, list) and all(isinstance(p, str) and p.strip() for p in prompts)):
            raise UsageError(f"{where}: tags.{name}.prompts must be a list of non-empty strings")
        if not (isinstance(aliases, list) and all(isinstance(a, str) for a in aliases)):
            raise UsageError(f"{where}: tags.{name}.aliases must be a list of strings")
        threshold = spec.get("threshold", DEFAULT_THRESHOLD)
        if not isinstance(threshold, (int, float)) or not 0 < float(threshold) < 1:
            raise UsageError(f"{where}: tags.{name}.threshold must be a number between 0 and 1")
        _check_name(name, where)
        tag = Tag(name, str(spec.get("group", "other")), [p.strip() for p in prompts],
                  [a.strip() for a in aliases if a.strip()], spec.get("parent"), float(threshold))
        for key in (tag.name, *tag.aliases):
            k = key.lower()
            if k in seen:
                raise UsageError(f"{where}: {key!r} names both {seen[k]} and {tag.name}")
            seen[k] = tag.name
        tags.append(tag)
    names = {t.name.lower() for t in tags}
    for t in tags:
        if t.parent is not None and (not isinstance(t.parent, str) or t.parent.lower() not in names):
            raise UsageError(f"{where}: tags.{t.name}.parent {t.parent!r} is not a tag of this taxonomy")
    by = {t.name.lower(): t for t in tags}
    for t in tags:  # no cycles
        seen_chain, cur = set(), t
        while cur.parent:
            if cur.name.lower() in seen_chain:
                raise UsageError(f"{where}: the parents of {t.name} form a cycle")
            seen_chain.add(cur.name.lower())
            cur = by[cur.parent.lower()]
    return Taxonomy(tags, {str(k): str(v) for k, v in groups.items()}, where)


def _check_name(name: str, where: str = "tag") -> None:
    if not name.strip() or any(ch in name for ch in "|/\n\r\t,") or len(name) > 100:
        raise UsageError(f"{where}: invalid tag name {name!r} (no '|', '/', ',' or line breaks; at most 100 characters)")


def init_taxonomy(dest: Path, force: bool = False) -> Path:
    """Write the default taxonomy to ``dest`` for editing."""
    if dest.exists() and not force:
        raise UsageError(f"{dest} exists: edit it, or pass --force to overwrite it with the default")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        from photosearch.files import write_atomic

        write_atomic(dest, default_taxonomy_text())
    except OSError as exc:
        raise InputError(f"cannot write {dest}: {exc.strerror}") from None
    return dest


# -- the catalog's view of the tags ---------------------------------------------------------------


def sync_taxonomy(cat: Any, taxonomy: Taxonomy) -> None:
    """Make the catalog's tags match the taxonomy (user-created tags stay; tags removed from the
    file are forgotten with their scores and decisions)."""
    current = {t["name"]: t for t in cat.tags()}
    wanted = {t.name: t for t in taxonomy.tags}
    gone = [n for n, t in current.items() if t["source"] == "taxonomy" and n not in wanted]
    if gone:
        cat.drop_tags(gone)
    cat.upsert_tags([t.as_row() for t in taxonomy.tags])


def resolve_tag(cat: Any, name: str, *, create: bool = False) -> str:
    """The canonical tag name for a name or alias (case-insensitive); ``create`` makes unknown
    names user tags."""
    key = " ".join(name.split()).lower()
    if not key:
        raise UsageError("the tag name is empty")
    found = cat.canonical_tag(key)
    if found is not None:
        return found
    if not create:
        raise UsageError(f"unknown tag {name!r} (see `photosearch tags`)")
    canonical = " ".join(name.split())
    _check_name(canonical)
    cat.upsert_tags([Tag(canonical, USER_GROUP, [f"a photo of {canonical.lower()}"], source="user").as_row()])
    return canonical


def ancestors(tag: str, parents: dict[str, str | None]) -> list[str]:
    """The tag's parent chain, root first, ending with the tag."""
    chain = [tag]
    while parents.get(chain[0]) and parents[chain[0]] not in chain:
        chain.insert(0, parents[chain[0]])  # type: ignore[arg-type]
    return chain


# -- scoring -------------------------------------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


def text_directions(clip: Any, tags: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """(tag embeddings (T, D), neutral embedding (D,)), each the normalized mean of its prompts."""
    prompts = [p for t in tags for p in t["prompts"]]
    emb = clip.encode_text(prompts + list(NEUTRAL_PROMPTS))
    out, i = [], 0
    for t in tags:
        v = emb[i:i + len(t["prompts"])].mean(axis=0)
        out.append(v / max(float(np.linalg.norm(v)), 1e-12))
        i += len(t["prompts"])
    neutral = emb[i:].mean(axis=0)
    neutral /= max(float(np.linalg.norm(neutral)), 1e-12)
    return np.asarray(out, dtype=np.float32), neutral.astype(np.float32)


def zero_shot_weights(direction: np.ndarray, neutral: np.ndarray) -> tuple[np.ndarray, float]:
    """The zero-shot scorer as a linear model: logit = w.x + b."""
    return (LOGIT_SCALE * (direction - neutral)).astype(np.float32), 0.0


def train_probe(x: np.ndarray, y: np.ndarray, w0: np.ndarray, b0: float) -> tuple[np.ndarray, float]:
    """Logistic regression on CLIP vectors ``x`` with labels ``y`` (1 accepted, 0 rejected), pulled
    towards the zero-shot weights ``w0`` so that few examples refine rather than replace it."""
    from scipy.optimize import minimize

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w0 = np.asarray(w0, dtype=np.float64)
    scale = float(np.linalg.norm(w0)) or 1.0
    # No class re-weighting: a balanced fit scores as if half the library carried the tag, which
    # over-tags rare tags. Plain logistic regression keeps the decided examples' own proportions.
    weight = np.ones_like(y)
    lam = PROBE_PRIOR / scale ** 2

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:-1], theta[-1]
        z = x @ w + b
        p = _sigmoid(z)
        eps = 1e-12
        ll = -np.sum(weight * (y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)))
        d = w - w0
        value = ll + lam * len(y) * float(d @ d)
        g = weight * (p - y)
        grad_w = x.T @ g + 2 * lam * len(y) * d
        return value, np.concatenate([grad_w, [g.sum()]])

    res = minimize(loss, np.concatenate([w0, [b0]]), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return res.x[:-1].astype(np.float32), float(res.x[-1])


@dataclass
class TagRun:
    """What one `photosearch tag` run did."""

    photos: int = 0
    tags: int = 0
    probes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)   # tagged photos per tag
    model: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The run's fields as a plain dict, ``seconds`` rounded to milliseconds."""
        d = dict(self.__dict__)
        d["seconds"] = round(self.seconds, 3)
        return d


def score_all(cat: Any, clip: Any, model_name: str, *, only: list[str] | None = None) -> TagRun:
    """Score every photo's stored vector against every tag (or ``only`` these), training probes
    where decisions allow. Replaces the tags' previous scores."""
    import time

    started = time.monotonic()
    # Tags read from the files have no prompts: they are what the files say, not something to guess.
    tags = [t for t in cat.tags() if t["prompts"] and (only is None or t["name"] in only)]
    run = TagRun(tags=len(tags), model=model_name)
    if not tags:
        return run
    directions, neutral = text_directions(clip, tags)
    weights, biases, scorers = [], [], []
    for t, d in zip(tags, directions):
        w, b = zero_shot_weights(d, neutral)
        decisions = cat.decisions(t["name"])
        pos = [p for p, s in decisions.items() if s == "accepted"]
        neg = [p for p, s in decisions.items() if s == "rejected"]
        if len(pos) >= PROBE_MIN and len(neg) >= PROBE_MIN:
            ids, vecs = cat.vectors(model_name, pos + neg)
            label = {p: 1.0 for p in pos} | {p: 0.0 for p in neg}
            if len(ids):
                w, b = train_probe(vecs, np.array([label[int(i)] for i in ids]), w, b)
                cat.save_probe(t["name"], model_name, w, b, len(pos), len(neg))
                run.probes.append(t["name"])
                scorers.append("probe")
            else:
                scorers.append("zero-shot")
        else:
            cat.drop_probe(t["name"])
            scorers.append("zero-shot")
        weights.append(w)
        biases.append(b)
    W = np.stack(weights, axis=1)
    B = np.asarray(biases, dtype=np.float32)
    first = True
    for ids, vecs in cat.iter_vectors(model_name, searchable=True):
        probs = _sigmoid(vecs @ W + B)
        for j, t in enumerate(tags):
            cat.replace_tag_scores(t["name"], model_name, scorers[j], ids, probs[:, j], first)
        first = False
        run.photos += len(ids)
    if first:  # no vectors at all: still drop stale scores
        for t in tags:
            cat.replace_tag_scores(t["name"], model_name, "zero-shot", np.zeros(0, np.int64), np.zeros(0), True)
    run.counts = {t["name"]: int(t["auto"] + t["accepted"]) for t in cat.tags() if only is None or t["name"] in only}
    run.seconds = time.monotonic() - started
    return run


__all__ = ["Tag", "Taxonomy", "load_taxonomy", "taxonomy_path", "init_taxonomy", "sync_taxonomy", "resolve_tag",
           "score_all", "train_probe", "TagRun", "ancestors", "DEFAULT_THRESHOLD"]
