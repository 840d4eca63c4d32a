"""One archived table or column, as RollbackLog.archive["items"] stores it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..models import RollbackLog


@dataclass(frozen=True)
class ArchiveItem:
    """`column` None: the whole table was kept. `archive_schema` None: the archive table is
    in the default schema (SQLite, MySQL). The stored JSON keeps these keys."""

    table: str
    column: str | None
    pk: str | None
    archive_schema: str | None
    archive_table: str
    types: dict[str, str] = field(default_factory=dict)  # column → type, as archived
    rows: int = 0
    bytes: int | None = None
    step: str = ""

    @property
    def is_table(self) -> bool:
        return self.column is None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArchiveItem:
        return cls(
            table=data["table"],
            column=data["column"],
            pk=data.get("pk"),
            archive_schema=data.get("archive_schema"),
            archive_table=data["archive_table"],
            types=dict(data.get("types") or {}),
            rows=data.get("rows") or 0,
            bytes=data.get("bytes"),
            step=data.get("step", ""),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "column": self.column,
            "pk": self.pk,
            "archive_schema": self.archive_schema,
            "archive_table": self.archive_table,
            "types": self.types,
            "rows": self.rows,
            "bytes": self.bytes,
            "step": self.step,
        }


def archive_of(log: RollbackLog) -> dict[str, Any]:
    """The archive document of a log entry ({} when it has none)."""
    return log.archive if isinstance(log.archive, dict) else {}


def archive_items(log: RollbackLog) -> list[ArchiveItem]:
    return [ArchiveItem.from_dict(item) for item in archive_of(log).get("items", [])]
