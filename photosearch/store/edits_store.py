"""Hand edits of the catalog as row differences, so that an edit can be journaled and undone.

A part of :class:`photosearch.store.catalog.Catalog`. ``begin_edit`` copies the tracked
tables into temporary ones; ``edit_diff`` compares them with the tables after the edit and
returns the rows that went away or changed (``before``) and the rows that came or changed
(``after``), as JSON-ready lists; ``revert_edit`` puts ``before`` back for every key whose row
is still as the edit left it, and names the others.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

#: Per tracked table: its key columns, its value columns, and which of its rows count.
TRACKED: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "people": (("id",), ("name", "created_at"), "TRUE"),
    "faces": (("id",), ("person_id", "assigned"), "TRUE"),
    "face_rejections": (("face_id", "person_id"), ("rejected_at",), "TRUE"),
    "not_duplicates": (("photo_a", "photo_b"), ("decided_at",), "TRUE"),
    # The data version is bumped by every transaction, so it is never part of an edit.
    "settings": (("key",), ("value",), "key <> 'data_version'"),
}

Row = list[Any]


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, (_dt.datetime, _dt.date)) else value


class EditsStore:
    """Row differences of hand edits (people, duplicate decisions, settings)."""

    con: Any
    _dirty: bool

    def begin_edit(self, tables: list[str]) -> None:
        """Keep a copy of the tracked ``tables`` as they are now (call inside the edit's transaction)."""
        for table in tables:
            keys, values, where = TRACKED[table]
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE _edit_{table} AS "
                             f"SELECT {', '.join(keys + values)} FROM {table} WHERE {where}")

    def edit_diff(self, tables: list[str]) -> dict[str, dict[str, list[Row]]]:
        """{table: {"before": rows gone or changed, "after": rows new or changed}} since
        :meth:`begin_edit`, tables without a change left out; the copies are dropped."""
        diff = {}
        for table in tables:
            keys, values, where = TRACKED[table]
            cols = ", ".join(keys + values)
            now = f"SELECT {cols} FROM {table} WHERE {where}"
            before = self.con.execute(f"SELECT {cols} FROM _edit_{table} EXCEPT {now}").fetchall()
            after = self.con.execute(f"{now} EXCEPT SELECT {cols} FROM _edit_{table}").fetchall()
            self.con.execute(f"DROP TABLE _edit_{table}")
            if before or after:
                diff[table] = {"before": [[_plain(v) for v in r] for r in before],
                               "after": [[_plain(v) for v in r] for r in after]}
        return diff

    def revert_edit(self, diff: dict[str, dict[str, list[Row]]]) -> tuple[int, list[str]]:
        """Put the rows of ``diff`` back as they were before the edit, key by key, where the row is
        still as the edit left it. Returns (rows put back, "table key" of each row changed since)."""
        put_back, changed = 0, []
        for table, rows in diff.items():
            if table not in TRACKED:
                continue
            keys, values, where = TRACKED[table]
            cols = keys + values
            nk = len(keys)
            before = {tuple(r[:nk]): r for r in rows.get("before", [])}
            after = {tuple(r[:nk]): r for r in rows.get("after", [])}
            wanted = set(before) | set(after)
            current = {}
            # The tables are small (people, decisions), except faces, read by id.
            if keys == ("id",):
                cur = self.con.execute(f"SELECT {', '.join(cols)} FROM {table} WHERE {where} "
                                       "AND id IN (SELECT unnest(?::BIGINT[]))", [[k[0] for k in wanted]])
            else:
                cur = self.con.execute(f"SELECT {', '.join(cols)} FROM {table} WHERE {where}")
            for r in cur.fetchall():
                k = tuple(r[:nk])
                if k in wanted:
                    current[k] = [_plain(v) for v in r]
            for k in sorted(wanted, key=str):
                if current.get(k) != after.get(k):
                    changed.append(f"{table} {', '.join(map(str, k))}")
                    continue
                match = " AND ".join(f"{c} = ?" for c in keys)
                if k in before and k in after:  # changed: only the tracked columns (faces have more)
                    sets = ", ".join(f"{c} = ?" for c in values)
                    self.con.execute(f"UPDATE {table} SET {sets} WHERE {match}", before[k][nk:] + list(k))
                elif k in after:                # made by the edit
                    self.con.execute(f"DELETE FROM {table} WHERE {match}", list(k))
                else:                           # removed by the edit (a whole row: people, decisions)
                    self.con.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                                     before[k])
                put_back += 1
        if put_back:
            self._dirty = True
        return put_back, changed
