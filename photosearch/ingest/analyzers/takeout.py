"""Google Takeout: the JSON an export puts beside each photo (date, place, description, people)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from photosearch.ingest.analyzers.base import Analyzer, Photo

if TYPE_CHECKING:
    from photosearch.store.catalog import Catalog


class TakeoutAnalyzer(Analyzer):
    """Output: a :class:`~photosearch.media.takeout.TakeoutInfo` or None (column ``takeout``)."""

    name = "takeout"
    needs_pixels = False

    def __init__(self) -> None:
        from photosearch.media.takeout import TakeoutIndex

        self._index = TakeoutIndex()  # caches each folder's JSON files for the run

    def wanted(self, item: Any) -> bool:
        return item.full

    def analyze(self, photo: Photo) -> Any:
        return self._index.lookup(photo.item.path)

    def columns(self, outputs: list[Any]) -> dict[str, Any]:
        import pyarrow as pa

        return {"takeout": pa.array([
            None if t is None else json.dumps({
                "json_path": t.json_path, "gps_lat": t.gps_lat, "gps_lon": t.gps_lon,
                "taken_at": t.taken_at.isoformat() if t.taken_at else None,
                "description": t.description, "people": list(t.people)})
            for t in outputs], pa.string())}

    def from_row(self, row: dict[str, Any]) -> Any:
        if row.get("takeout") is None:
            return None
        from photosearch.media.takeout import TakeoutInfo

        d = json.loads(row["takeout"])
        taken = datetime.fromisoformat(d["taken_at"]) if d.get("taken_at") else None
        return TakeoutInfo(json_path=d["json_path"], taken_at=taken, gps_lat=d.get("gps_lat"),
                           gps_lon=d.get("gps_lon"), description=d.get("description"),
                           people=list(d.get("people") or []))

    def store(self, cat: Catalog, rows: list[tuple[int, Any]]) -> int:
        for photo_id, info in rows:
            cat.set_takeout(photo_id, info)
        return 0
