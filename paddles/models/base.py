"""Declarative base, naming convention and the column types every model shares."""
from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Self

from sqlalchemy import (JSON, DateTime, Dialect, Enum, MetaData, String, TypeDecorator,
                        inspect)
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import TypeCompiler
from sqlalchemy.orm import DeclarativeBase, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC in Python on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None,
                           dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None,
                             dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class SQLiteJSONText(sqlite.JSON):
    """SQLite's JSON, declared TEXT in the schema.

    A column declared `JSON` has NUMERIC affinity on SQLite: the JSON text `7`, `1.0` or
    `1e5` is stored as a number (`1.0` as the integer 1), and reads back as an int or float
    instead of the text the column was given. TEXT affinity stores every JSON text as it was
    written, so a number reads back as the same bytes (migration 0008 converted the tables).
    """


@compiles(SQLiteJSONText, "sqlite")
def _json_declared_text(type_: SQLiteJSONText, compiler: TypeCompiler, **kw: Any) -> str:
    return "TEXT"


# PostgreSQL: JSONB; SQLite: JSON text with TEXT affinity (see SQLiteJSONText)
JSONType = JSON().with_variant(JSONB(), "postgresql").with_variant(SQLiteJSONText(), "sqlite")


def str_enum(cls: type[enum.Enum], name: str) -> Enum:
    """VARCHAR plus CHECK holding the enum's wire values."""
    return Enum(cls, name=name, native_enum=False, create_constraint=True, length=16,
                values_callable=lambda members: [m.value for m in members])


UTCTime = Annotated[dt.datetime, mapped_column(UTCDateTime())]
JSONValue = Annotated[Any, mapped_column(JSONType)]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RowValues:
    """A row's values as attributes, standing in for an entity where the ORM is not needed:
    a Run or Job a write is worked out on before the lock (the session never sees it:
    loading entities and expunging them cost a third of a report's Python), a run a
    document is rendered from."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)

    @classmethod
    def from_row(cls, keys: Sequence[str], row: Iterable[Any]) -> Self:
        """The values of `row`, whose columns are named `keys` (mapped_columns)."""
        return cls(dict(zip(keys, row)))

    if TYPE_CHECKING:  # every column is an attribute
        def __getattr__(self, name: str) -> Any: ...

        def __setattr__(self, name: str, value: Any) -> None: ...


def mapped_columns(entity: type) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """The attribute names and the columns `entity` maps. Not a column added to its table
    for the database alone (runs.has_queued, migration 0010), so that a row of them reads
    on a schema from before that column, as the entity does."""
    keys, columns = zip(*inspect(entity).columns.items())
    return keys, columns


def sortable_job_id(job_id: str) -> str:
    """Key that orders all-digit ids numerically, before any other id (ordered as text)."""
    if job_id.isdigit() and len(job_id.lstrip("0") or "0") <= 20:
        return "0" + (job_id.lstrip("0") or "0").rjust(20, "0") + job_id
    return "1" + job_id


def key_string(length: int) -> String:
    """A string compared byte by byte on PostgreSQL too, so ordering matches Python's."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")
