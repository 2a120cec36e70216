"""Artifact kinds and event-related value lists are defined once, on their models."""
from __future__ import annotations

from paddles import parsers
from paddles.models import artifacts, events
from paddles.schemas import artifacts as artifact_schemas
from paddles.schemas import events as event_schemas


def test_artifact_kinds_and_event_types_have_one_source():
    assert parsers.KINDS is artifacts.ARTIFACT_KINDS is artifact_schemas.ARTIFACT_KINDS
    assert artifacts.ARTIFACT_KINDS == tuple(k.value for k in artifacts.ArtifactKind)
    assert set(parsers.PARSED_KINDS) <= set(artifacts.ARTIFACT_KINDS)
    assert event_schemas.EVENT_TYPES is events.EVENT_TYPES
    assert event_schemas.VERBOSITIES is events.VERBOSITY_VALUES
    assert event_schemas.DELIVERY_STATUSES is events.DELIVERY_STATUS_VALUES


def test_an_event_type_not_in_the_list_is_refused():
    import pytest

    from paddles.services.events import record_event
    with pytest.raises(ValueError):
        record_event(None, "job.exploded", {}, subject="x")


def test_string_limits_are_the_model_columns_lengths():
    """A body's string limit is the length of the column that stores it, read off the model:
    a longer value is a 400 from validation, never a database error."""
    from paddles.models import Job, Node, Queue
    from paddles.schemas.nodes import NODE_FIELDS
    from paddles.schemas.queue import QUEUE_FIELDS, QUEUE_NAME
    from paddles.schemas.runs import JOB_FIELDS

    for model, fields in ((Job, JOB_FIELDS), (Node, NODE_FIELDS), (Queue, QUEUE_FIELDS)):
        for key, field in fields.items():
            column = model.__table__.c.get("name" if key == "vm_host" else key)
            if field.kind == "str":
                assert field.max_length == column.type.length, (model, key)
            elif field.kind == "text" and getattr(column.type, "length", None):
                raise AssertionError(f"{model.__name__}.{key} is a String(n) without a limit")
    assert QUEUE_NAME.max_length == Queue.__table__.c.name.type.length


def test_every_setting_has_its_environment_variable():
    """Settings fields are declared once: each is PADDLES_<NAME>, parsed by its type."""
    import dataclasses

    from paddles import settings

    fields = dataclasses.fields(settings.Settings)
    assert [f.name for f in fields] == list(settings._ENV)
    loaded = settings.load_settings(environ={
        "PADDLES_DATABASE_URL": "sqlite://", "PADDLES_EVENTS_KEEPALIVE": "2.5",
        "PADDLES_DB_POOL_SIZE": "7", "PADDLES_AUTH_ENABLED": "yes"})
    assert (loaded.events_keepalive, loaded.db_pool_size, loaded.auth_enabled) == (2.5, 7, True)
