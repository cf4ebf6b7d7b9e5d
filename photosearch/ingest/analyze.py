"""One photo in, everything the index stores about it out.

The per-photo work shared by the pipeline indexer (``indexer.py``, streaming into the catalog)
and the shard embedder (``shards.py``, writing Parquet shards in this process or on Ray), so
both produce the same rows, vectors, hashes and faces from the same code:

    read -> content hash -> decode (JPEG DCT-scaled) -> CLIP pixels, perceptual hashes,
    web thumbnail, faces -> metadata (file, XMP sidecar, Google Takeout JSON) -> PhotoRecord

CLIP inference itself is batched by the caller (:meth:`PhotoAnalyzer.encode`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from photosearch.media import hashes
from photosearch.store.catalog import FaceRow, PhotoRecord
from photosearch.errors import DecodeError
from photosearch.media.hashes import PerceptualHashes
from photosearch.media.decode import decode, read_metadata
from photosearch.models.base import ImageEncoder
from photosearch.models.faces import Face, FaceEngine
from photosearch.media.scan import find_sidecar
from photosearch.media.takeout import TakeoutIndex, TakeoutInfo

#: Shorter side JPEGs are DCT-decoded to when faces are detected (a 4:3 photo then has a long
#: side >= 640 px, the detector's working size).
FACE_DECODE_MIN_SIDE = 480
#: The shorter side the other inputs (CLIP, hashes, thumbnail) keep at least when a decode made
#: for faces is reduced for them: what a CLIP-only decode would give a 224-256 px model.
REDUCED_MIN_SIDE = 256


@dataclass
class Analysis:
    """What one file yielded; ``skip`` says why it could not be used (nothing else is set then)."""

    hash: str = ""
    pixels: np.ndarray | None = None          # preprocessed for the CLIP model, not yet encoded
    hashes: PerceptualHashes | None = None
    size: tuple[int, int] | None = None       # full-size width, height as displayed
    record: PhotoRecord | None = None
    skip: str | None = None
    faces: list[FaceRow] | None = None        # None: not scanned for faces
    takeout: TakeoutInfo | None = None        # a Google Takeout JSON beside the photo


def read_file(path: str) -> tuple[bytes | None, str | None]:
    """The file's bytes, or why they cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read(), None
    except FileNotFoundError:
        return None, "file vanished during indexing"
    except IsADirectoryError:
        return None, "is a folder"
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"


class PhotoAnalyzer:
    """Decodes a photo once and derives every per-photo index input from those pixels."""

    def __init__(self, model: ImageEncoder, faces: FaceEngine | None = None, *,
                 thumbs_root: Path | None = None, takeout: bool = True) -> None:
        self.model = model
        self.faces = faces
        self.face_model = faces.name if faces is not None else None
        self.thumbs_root = thumbs_root
        self._takeout = TakeoutIndex() if takeout else None

    def analyze(self, out: Analysis, data: bytes, *, path: str, size: int, mtime_ns: int,
                need_vector: bool = True, scan_faces: bool = True, need_record: bool = True) -> Analysis:
        """Fill ``out`` (whose ``hash`` is set) from the file's bytes. ``need_record`` False: the
        photo is cataloged already and only its vector, hashes or faces are missing."""
        scan_faces = scan_faces and self.faces is not None
        found: list[Face] = []
        try:
            # Faces are detected at <= 640 px on the long side: decode at least that.
            min_side = max(self.model.image_size, FACE_DECODE_MIN_SIDE if scan_faces else 0)
            decoded = decode(data, ext=os.path.splitext(path)[1].lower(), min_side=min_side)
            # CLIP, hashes and the thumbnail need only the model's size: when faces made the
            # decode larger, box-reduce it first (as JPEG DCT scaling would have; ~12 ms less CPU
            # a photo at 1000x750, measured).
            small = decoded.image
            k = min(small.size) // max(self.model.image_size, REDUCED_MIN_SIDE)
            if k >= 2 and scan_faces:
                small = small.reduce(k)
            if need_vector:
                out.pixels = self.model.preprocess(small)
            out.hashes = hashes.compute(small)
            out.size = (decoded.width, decoded.height)
            self._thumbnail(out.hash, small)
            if scan_faces:
                found = self.faces.analyze(decoded.image)  # type: ignore[union-attr]
        except DecodeError as exc:
            out.skip = exc.reason
            return out
        except MemoryError:
            out.skip = "too large to decode in memory"
            return out
        if not need_record and not scan_faces:
            return out
        md = read_metadata(data, _sidecar_bytes(path))
        if need_record and self._takeout is not None:
            out.takeout = self._takeout.lookup(path)
            if out.takeout is not None:
                # The file's own metadata wins; Takeout fills what the export stripped.
                tk = out.takeout
                md.taken_at = md.taken_at or tk.taken_at
                if md.gps_lat is None and tk.gps_lat is not None:
                    md.gps_lat, md.gps_lon = tk.gps_lat, tk.gps_lon
                md.description = md.description or tk.description
        if scan_faces:
            out.faces = match_regions(found, md.regions, self.face_model)
        if not need_record:
            return out
        fields = asdict(md)
        fields.pop("regions")
        out.record = PhotoRecord(
            path=path, content_hash=out.hash, size=size, mtime_ns=mtime_ns,
            width=decoded.width, height=decoded.height, format=decoded.format,
            **{**fields, "orientation": decoded.orientation or md.orientation},
        )
        return out

    def encode(self, pixels: list[np.ndarray]) -> np.ndarray:
        """CLIP vectors of preprocessed images (one batch)."""
        return self.model.encode_pixels(np.stack(pixels))

    def _thumbnail(self, content_hash: str, image: Any) -> None:
        """The web UI's 320 px thumbnail, from the pixels decoded anyway (~6 ms a photo): cold
        result pages then load from the cache instead of decoding 40 photos on demand."""
        if self.thumbs_root is None:
            return
        from photosearch.media.thumbs import save_from_image

        try:
            save_from_image(self.thumbs_root, content_hash, image)
        except (OSError, ValueError):
            pass  # a thumbnail is a convenience: the UI makes it on demand if it is missing


def _sidecar_bytes(path: str) -> bytes | None:
    sidecar = find_sidecar(path)
    if not sidecar:
        return None
    try:
        with open(sidecar, "rb") as f:
            return f.read()
    except OSError:
        return None


def match_regions(found: list[Face], regions: list[Any], model: str | None) -> list[FaceRow]:
    """Detected faces as rows, each named by the file's region over it; unmatched named regions
    become faces of their own (no vector)."""
    rows = [FaceRow(box=f.box, score=f.score, vector=f.vector, model=model) for f in found]
    for region in regions:
        if not region.name:
            continue
        best, best_iou = None, 0.3  # below this overlap a region is about another face
        for row in rows:
            if row.vector is None or row.region_name is not None:
                continue
            iou = _iou(row.box, region.box)
            if iou > best_iou:
                best, best_iou = row, iou
        if best is not None:
            best.region_name = region.name
        else:
            rows.append(FaceRow(box=region.box, score=None, vector=None, model=None, source="file",
                                region_name=region.name))
    return rows


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


__all__ = ["Analysis", "PhotoAnalyzer", "read_file", "match_regions", "FACE_DECODE_MIN_SIDE"]
