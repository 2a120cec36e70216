"""The schema alembic builds is exactly the one the models describe."""
import warnings

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from paddles import migrations
from paddles.models import Base


def test_migrated_schema_matches_models(db_engine):
    with db_engine.connect() as conn, warnings.catch_warnings():
        warnings.simplefilter("error")  # alembic only warns of what it cannot compare
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_database_is_at_head(db_engine, database_url):
    assert migrations.current_revision(db_engine) == migrations.head_revision(database_url)


def test_migrate_is_a_noop_when_current(db_engine, database_url):
    migrations.upgrade(database_url)
    assert migrations.current_revision(db_engine) == migrations.head_revision(database_url)
