"""Text in photos: the lines an OCR model reads (models/ocr.py), with their boxes in the upright
photo, for `--words` searches. Which photos are read is the run's choice: every one (``index
--ocr``), or by default only those that are not camera shots (screenshots, scans, saved images:
no camera make or model in their metadata), where text is likely and reading it pays."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from photosearch.ingest.analyzers.base import Analyzer, Photo

if TYPE_CHECKING:
    from photosearch.models.ocr import TextReader
    from photosearch.store.catalog import Catalog

#: Shorter side JPEGs are DCT-decoded to when photos are read (text needs more pixels than CLIP).
OCR_DECODE_MIN_SIDE = 720
#: Which photos are read: every one, or those without a camera in their metadata.
MODES = ("all", "auto")


class OcrAnalyzer(Analyzer):
    """Output: a list of line dicts (text, norm, score, quad, words), empty for a photo read and
    found without text, or None for a photo this run does not read (table ``photo_text``,
    ``ocr_scans``; column ``ocr_lines`` as JSON in output shards)."""

    name = "ocr"
    min_side = OCR_DECODE_MIN_SIDE

    def __init__(self, reader: TextReader, mode: str = "auto") -> None:
        self.reader = reader
        self.model = reader.name
        self.mode = mode
        # Every photo must have been read only when all are read (`--ocr`); by default a camera
        # shot is left unread, and asking again at every run would decode it again for nothing.
        self.check = ("ocr_scans", reader.name) if mode == "all" else None

    def warm(self) -> None:
        self._warm(self.reader)

    def analyze(self, photo: Photo) -> Any:
        from photosearch.models.ocr import normalize_text

        if photo.video is not None:
            return None  # videos: text in frames is not read yet
        if self.mode == "auto":
            md = photo.metadata
            if md.camera_make or md.camera_model:
                return None
        lines = self.reader.read(photo.image)
        return [{"text": ln.text, "norm": normalize_text(ln.text), "score": round(ln.score, 4),
                 "quad": [round(v, 5) for xy in ln.quad for v in xy],
                 "words": [[w, [round(v, 5) for v in box]] for w, box in ln.words]} for ln in lines]

    def columns(self, outputs: list[Any]) -> dict[str, Any]:
        import json

        import pyarrow as pa

        return {"ocr_lines": pa.array([json.dumps(o) if o is not None else None for o in outputs], pa.string()),
                "ocr_model": pa.array([self.model if o is not None else None for o in outputs], pa.string())}

    def from_row(self, row: dict[str, Any]) -> Any:
        import json

        if row.get("ocr_lines") is None or row.get("ocr_model") != self.model:
            return None
        return json.loads(row["ocr_lines"])

    def store(self, cat: Catalog, rows: list[tuple[int, Any]]) -> int:
        rows = [(pid, lines) for pid, lines in rows if lines is not None]
        return cat.add_text(self.model, rows)
