"""Faces: detected and embedded by the face model, each named by the file's face region over it
(MWG / Microsoft people tags); named regions with no detected face become faces of their own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from photosearch.ingest.analyzers.base import Analyzer, Photo
from photosearch.store.records import FaceRow

if TYPE_CHECKING:
    from photosearch.models.faces import Face, FaceEngine
    from photosearch.store.catalog import Catalog

#: Shorter side JPEGs are DCT-decoded to when faces are detected (a 4:3 photo then has a long
#: side >= 640 px, the detector's working size).
FACE_DECODE_MIN_SIDE = 480
#: Below this overlap a file's region is about another face.
REGION_MIN_IOU = 0.3
#: Cosine similarity at which two faces of one video are taken for the same person (SFace's
#: same-identity threshold is 0.363; within one clip, lighting and pose change little).
SAME_PERSON_IN_VIDEO = 0.45


def _quality(row: FaceRow) -> float:
    return (row.score or 0.0) * row.box[2] * row.box[3]


class FacesAnalyzer(Analyzer):
    """Output: a list of :class:`FaceRow` (columns ``faces``, ``face_model``; tables ``faces``,
    ``face_scans``). A photo without faces has an empty list: it was scanned."""

    name = "faces"
    min_side = FACE_DECODE_MIN_SIDE

    def __init__(self, engine: FaceEngine) -> None:
        self.engine = engine
        self.model = engine.name
        self.check = ("face_scans", engine.name)

    def warm(self) -> None:
        self._warm(self.engine)

    def analyze(self, photo: Photo) -> Any:
        if photo.frames:
            return self._video_faces(photo.frames)
        found = self.engine.analyze(photo.image)
        return match_regions(found, photo.metadata.regions, self.model)

    def _video_faces(self, frames: list[tuple[float, Any]]) -> list[FaceRow]:
        """The faces of a video, one per person: a face seen in many frames (the same person
        in one clip) is kept once, at the moment it is seen best (the largest, surest view)."""
        kept: list[FaceRow] = []
        for t, image in frames:
            for f in self.engine.analyze(image):
                row = FaceRow(box=f.box, score=f.score, vector=f.vector, model=self.model, t=t)
                if row.vector is None:
                    continue
                v = np.asarray(row.vector, np.float32)
                v = v / (np.linalg.norm(v) + 1e-9)
                sims = [float(v @ (np.asarray(k.vector, np.float32) / (np.linalg.norm(k.vector) + 1e-9))) for k in kept]
                best = int(np.argmax(sims)) if sims else -1
                if best < 0 or sims[best] < SAME_PERSON_IN_VIDEO:
                    kept.append(row)
                elif _quality(row) > _quality(kept[best]):   # the same person, seen better here
                    kept[best] = row
        return kept

    def columns(self, outputs: list[Any]) -> dict[str, Any]:
        import pyarrow as pa

        face_type = pa.struct([("x", pa.float64()), ("y", pa.float64()), ("w", pa.float64()), ("h", pa.float64()),
                               ("score", pa.float64()), ("vector", pa.list_(pa.float32())), ("source", pa.string()),
                               ("region_name", pa.string()), ("t", pa.float64())])
        return {
            "faces": pa.array([
                None if faces is None else [
                    {"x": f.box[0], "y": f.box[1], "w": f.box[2], "h": f.box[3], "score": f.score,
                     "vector": None if f.vector is None else np.asarray(f.vector, np.float32).tolist(),
                     "source": f.source, "region_name": f.region_name, "t": f.t} for f in faces]
                for faces in outputs], pa.list_(face_type)),
            "face_model": pa.array([self.model if faces is not None else None for faces in outputs], pa.string()),
        }

    def from_row(self, row: dict[str, Any]) -> Any:
        if row.get("faces") is None or row.get("face_model") != self.model:
            return None
        return [FaceRow(box=(f["x"], f["y"], f["w"], f["h"]), score=f["score"],
                        vector=None if f["vector"] is None else np.asarray(f["vector"], np.float32),
                        model=self.model if f["source"] == "detected" else None, source=f["source"],
                        region_name=f["region_name"], t=f.get("t")) for f in row["faces"]]

    def store(self, cat: Catalog, rows: list[tuple[int, Any]]) -> int:
        for _, faces in rows:
            for face in faces:
                if face.region_name:  # named by a region in the file: that person (created if new)
                    person = cat.person_by_name(face.region_name)
                    face.person_id = person["id"] if person else cat.create_person(face.region_name)
                    face.assigned = "file"
        cat.add_face_scans(self.model, rows)
        return sum(1 for _, faces in rows for f in faces if f.vector is not None)


def match_regions(found: list[Face], regions: list[Any], model: str | None) -> list[FaceRow]:
    """Detected faces as rows, each named by the file's region over it; unmatched named regions
    become faces of their own (no vector)."""
    rows = [FaceRow(box=f.box, score=f.score, vector=f.vector, model=model) for f in found]
    for region in regions:
        if not region.name:
            continue
        best, best_iou = None, REGION_MIN_IOU
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
