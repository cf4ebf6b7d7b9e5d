"""Organizing photos into folders by a pattern and tag rules: planned (a dry run), then applied
through a journal so that `photosearch undo` puts every file back.

Pattern fields: ``{year}``, ``{month}``, ``{day}`` (numbers: ``{month:02}``), ``{event}`` (the
event's name), ``{camera}``, ``{place}``. A photo without a date goes to ``Undated/``.
Rules (``TAG -> PATTERN``) send photos carrying a tag elsewhere; the first matching rule wins.
File names are kept; a name already taken at the destination gets `` (1)``, `` (2)``...:
nothing is ever overwritten. Sidecars (``.xmp``, Takeout ``.json``) travel with their photo.
Moved photos keep their catalog rows and vectors; copies reuse them.
"""

from __future__ import annotations

import os
import re
import shutil
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from photosearch.errors import InputError, UsageError
from photosearch.files import os_path, unwritable_reason
from photosearch.store.catalog import Catalog

DEFAULT_PATTERN = "{year}/{month:02}/{event}"
FIELDS = {"year", "month", "day", "event", "camera", "place"}
UNDATED = "Undated"
_BAD = re.compile(r'[\x00-\x1f/\\:*?"<>|]+')


@dataclass
class Rule:
    """A tag-specific folder rule: photos with ``tag`` go to ``pattern`` (see ``parse_rule``)."""

    tag: str
    pattern: str


@dataclass
class PlannedMove:
    """One planned move or copy, with its sidecars and the rule that chose the folder (None: the default pattern)."""

    photo_id: int
    src: str
    dst: str
    sidecars: list[tuple[str, str]] = field(default_factory=list)
    rule: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The move's fields as a plain dict."""
        return dict(self.__dict__)


@dataclass
class OrganizePlan:
    """A dry-run organize plan: the destination, pattern, mode and the moves it would make."""

    dest: str
    pattern: str
    mode: str                                   # "move" or "copy"
    moves: list[PlannedMove] = field(default_factory=list)
    in_place: int = 0                           # photos already where the pattern puts them

    def as_dict(self) -> dict[str, Any]:
        """The plan as a plain dict, moves included."""
        return {"dest": self.dest, "pattern": self.pattern, "mode": self.mode, "in_place": self.in_place,
                "moves": [m.as_dict() for m in self.moves]}


@dataclass
class OrganizeReport:
    """What applying an organize plan did: counts moved and copied, failures, and the journal file."""

    moved: int = 0
    copied: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    journal: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The report's fields as a plain dict."""
        return dict(self.__dict__)


def check_pattern(pattern: str) -> str:
    """Validate a folder pattern (known fields, relative, no '..')."""
    if not pattern or pattern.startswith("/") or ".." in Path(pattern).parts:
        raise UsageError(f"invalid pattern {pattern!r}: give a relative folder pattern like {DEFAULT_PATTERN!r}")
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None}
    except ValueError as exc:
        raise UsageError(f"invalid pattern {pattern!r}: {exc}") from None
    unknown = names - FIELDS
    if unknown:
        raise UsageError(f"unknown field(s) in pattern: {', '.join(sorted(unknown))} (known: {', '.join(sorted(FIELDS))})")
    return pattern


def parse_rule(text: str) -> Rule:
    """``"birthday -> {year}/Birthday"``."""
    if "->" not in text:
        raise UsageError(f"invalid rule {text!r}: write it as 'TAG -> PATTERN'")
    tag, pattern = (x.strip() for x in text.split("->", 1))
    if not tag:
        raise UsageError(f"invalid rule {text!r}: no tag")
    return Rule(tag, check_pattern(pattern))


def load_config(path: Path | None) -> dict[str, Any]:
    """The [organize] table of a config TOML (``into``, ``pattern``, ``rules``), or {}."""
    import tomllib

    if path is None or not path.is_file():
        return {}
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}") from None
    return doc


def _clean(text: str, limit: int = 80) -> str:
    text = _BAD.sub("-", text).strip(" .-")
    return text[:limit].rstrip(" .") or "-"


def folder_for(photo: dict[str, Any], pattern: str, event: str | None, place: str | None) -> str:
    """Relative folder for a photo under ``pattern`` (``Undated`` without a date); UsageError on a bad pattern."""
    taken = photo.get("taken_at")
    if taken is None:
        return UNDATED
    values = {"year": taken.year, "month": taken.month, "day": taken.day,
              "event": _clean(event or taken.strftime("%Y-%m-%d")),
              "camera": _clean(" ".join(x for x in (photo.get("camera_make"), photo.get("camera_model")) if x)
                               or "Unknown camera"),
              "place": _clean(place or "Unknown place")}
    try:
        rel = pattern.format(**values)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"pattern {pattern!r}: {exc}") from None
    return str(Path(*[_clean(p, 120) for p in Path(rel).parts]))


def _free_name(folder: Path, name: str, taken: set[str]) -> Path:
    stem, ext = os.path.splitext(name)
    candidate = folder / name
    n = 1
    while candidate.exists() or str(candidate) in taken:
        candidate = folder / f"{stem} ({n}){ext}"
        n += 1
    return candidate


def _sidecars(photo_path: str, takeout_json: str | None) -> list[str]:
    from photosearch.media.scan import find_sidecar

    out = []
    side = find_sidecar(photo_path)
    if side:
        out.append(side)
    if takeout_json and os.path.dirname(takeout_json) == os.path.dirname(photo_path) and os.path.isfile(takeout_json):
        out.append(takeout_json)
    return out


def _sidecar_dst(side: str, photo_src: str, photo_dst: Path) -> Path:
    src_name, side_name = os.path.basename(photo_src), os.path.basename(side)
    if side_name.startswith(src_name):  # photo.jpg.xmp, photo.jpg.json, photo.jpg.supplemental-metadata.json
        return photo_dst.with_name(photo_dst.name + side_name[len(src_name):])
    src_stem = os.path.splitext(src_name)[0]
    if side_name.startswith(src_stem):  # photo.xmp
        return photo_dst.with_name(os.path.splitext(photo_dst.name)[0] + side_name[len(src_stem):])
    return photo_dst.with_name(side_name)


def make_plan(cat: Catalog, photos: list[dict[str, Any]], dest: str | os.PathLike[str], pattern: str,
              rules: list[Rule], mode: str = "move") -> OrganizePlan:
    """Where each photo would go. Nothing is touched."""
    if mode not in ("move", "copy"):
        raise UsageError("mode is move or copy")
    check_pattern(pattern)
    root = Path(os.path.abspath(Path(dest).expanduser()))
    plan = OrganizePlan(str(root), pattern, mode)
    ids = [p["id"] for p in photos]
    events = cat.photo_event_names(ids)
    places = {e["id"]: e["place"] for e in cat.events()}
    event_of = cat.photo_event_ids()
    tags = cat.tags_of_photos(ids) if rules else {}
    takeout = cat.takeout_rows()
    resolved = []
    for r in rules:
        canonical = cat.canonical_tag(r.tag)
        if canonical is None:
            raise UsageError(f"rule {r.tag} -> {r.pattern}: unknown tag {r.tag!r} (see `photosearch tags`)")
        resolved.append(Rule(canonical, r.pattern))
    taken: set[str] = set()
    live = cat.live_movies_of(ids)
    for photo in photos:
        if photo.get("live_of") is not None:
            continue  # the movie of a Live Photo: it moves with its still
        on = {t["tag"] for t in tags.get(photo["id"], []) if t["on"]}
        rule = next((r for r in resolved if r.tag in on), None)
        rel = folder_for(photo, rule.pattern if rule else pattern, events.get(photo["id"]),
                         places.get(event_of.get(photo["id"])))
        folder = root / rel
        src = Path(os_path(photo["path"]))  # plans and journals hold names as the OS gives them
        if src.parent == folder and mode == "move":
            plan.in_place += 1
            continue
        dst = _free_name(folder, src.name, taken)
        if photo["id"] in live:  # the still and its movie keep one name (IMG_1.HEIC, IMG_1.MOV)
            while (dst.with_suffix(Path(live[photo["id"]]["path"]).suffix).exists()
                   or str(dst.with_suffix(Path(live[photo["id"]]["path"]).suffix)) in taken):
                taken.add(str(dst))
                dst = _free_name(folder, src.name, taken)
        rule_text = f"{rule.tag} -> {rule.pattern}" if rule else None
        plan.moves.append(_planned(photo["id"], src, dst, takeout, rule_text, taken))
        movie = live.get(photo["id"])
        if movie is not None:
            msrc = Path(os_path(movie["path"]))
            plan.moves.append(_planned(movie["id"], msrc, dst.with_suffix(msrc.suffix), takeout, rule_text, taken))
    return plan


def _planned(photo_id: int, src: Path, dst: Path, takeout: dict[int, Any], rule: str | None,
             taken: set[str]) -> PlannedMove:
    """The move of one file to ``dst``, with its sidecars beside it (names kept in step)."""
    taken.add(str(dst))
    move = PlannedMove(photo_id, str(src), str(dst), rule=rule)
    for side in _sidecars(str(src), (takeout.get(photo_id) or {}).get("json_path")):
        sdst = _sidecar_dst(side, str(src), dst)
        if sdst.exists() or str(sdst) in taken:
            sdst = _free_name(sdst.parent, sdst.name, taken)
        taken.add(str(sdst))
        move.sidecars.append((side, str(sdst)))
    return move


def apply_plan(library_root: Path, cat: Catalog, plan: OrganizePlan) -> OrganizeReport:
    """Carry out a plan through a journal; one file's failure is reported and the rest go on."""
    from photosearch.actions.journal import Journal, journaled_move
    from photosearch.media.scan import file_sha256

    report = OrganizeReport()
    dest = Path(plan.dest)
    why = unwritable_reason(dest)
    if why is not None:
        raise InputError(f"--into: {why}")
    with cat.transaction():
        cat.add_root(str(dest))
    with Journal(library_root).begin(f"organize-{plan.mode}", {"dest": plan.dest, "pattern": plan.pattern}) as j:
        report.journal = str(j.path)
        for m in plan.moves:
            src, dst = Path(m.src), Path(m.dst)
            try:
                if plan.mode == "move":
                    journaled_move(j, src, dst, m.sidecars, photo_id=m.photo_id)
                    st = dst.stat()
                    with cat.transaction():
                        cat.move_photo(m.photo_id, str(dst), st.st_size, st.st_mtime_ns)
                    report.moved += 1
                else:
                    row = cat.photos_by_ids([m.photo_id]).get(m.photo_id)
                    if row is None:
                        raise FileNotFoundError(2, "no longer in the catalog", m.src)
                    with cat.transaction():
                        new_id = cat.copy_photo(m.photo_id, str(dst), row["size"], row["mtime_ns"])
                        n = j.intent("copy", src=m.src, dst=m.dst, sha256=file_sha256(src), photo_id=new_id)
                        _copy_new(src, dst)
                        st = dst.stat()
                        cat.touch_photo(new_id, st.st_size, st.st_mtime_ns)
                    j.done(n)
                    for s_src, s_dst in m.sidecars:
                        if Path(s_src).exists():
                            sn = j.intent("copy", src=s_src, dst=s_dst, sha256=file_sha256(Path(s_src)))
                            _copy_new(Path(s_src), Path(s_dst))
                            j.done(sn)
                    report.copied += 1
            except OSError as exc:
                report.failures.append({"path": m.src, "reason": f"not {plan.mode}d: {exc.strerror or exc}"})
    return report


def _copy_new(src: Path, dst: Path) -> None:
    """Copy to a new name, never over an existing file (temp copy, then a no-replace link)."""
    import errno

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.photosearch-tmp")
    shutil.copy2(src, tmp)
    try:
        os.link(tmp, dst)  # fails if dst exists: never overwrite
    except FileExistsError:
        tmp.unlink(missing_ok=True)
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV):
            tmp.unlink(missing_ok=True)
            raise
        if dst.exists():
            tmp.unlink(missing_ok=True)
            raise FileExistsError(errno.EEXIST, "destination exists", str(dst)) from None
        os.rename(tmp, dst)
        return
    tmp.unlink()


__all__ = ["make_plan", "apply_plan", "parse_rule", "check_pattern", "load_config", "OrganizePlan", "Rule",
           "DEFAULT_PATTERN"]
