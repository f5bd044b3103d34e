"""Schema versions: a database made by schema v1 upgrades in place, its data intact, to what the models say."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect, text

from indexer.store.db import Catalog, migrations
from indexer.store.db.models import Base


def _columns(engine) -> dict[str, set[str]]:
    inspector = inspect(engine)
    return {table: {c["name"] for c in inspector.get_columns(table)} for table in inspector.get_table_names()}


def test_a_v1_database_upgrades_with_its_data(db_url: str) -> None:
    engine = create_engine(db_url)
    assert migrations.upgrade(engine, target=1) == 1
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO media (path, root, size, mtime, status, updated_at, kind, duration) "
                "VALUES ('/a/old.mp4', '/a', 5, 1.0, 'indexed', '2024-01-01 00:00:00', 'video', 12.0)"
            )
        )
        connection.execute(text("INSERT INTO clips (media_id, start, \"end\", status) VALUES (1, 0, 12, 'ready')"))
    assert "creation_time" not in _columns(engine)["media"]
    engine.dispose()

    catalog = Catalog(db_url)  # opening upgrades
    with catalog.engine.connect() as connection:
        assert migrations.current_version(connection) == migrations.LATEST_VERSION
    record = catalog.media_by_path("/a/old.mp4")
    assert (record.duration, record.creation_time) == (12.0, None)
    assert [clip.end for clip in catalog.clips(catalog.ready_clip_ids())] == [12.0]
    assert "ix_clips_status" in {index["name"] for index in inspect(catalog.engine).get_indexes("clips")}
    assert "ix_media_content_hash" in {index["name"] for index in inspect(catalog.engine).get_indexes("media")}


def test_migrated_schema_equals_the_models(db_url: str) -> None:
    catalog = Catalog(db_url)
    migrated = _columns(catalog.engine)
    for table in Base.metadata.sorted_tables:
        assert migrated[table.name] == {column.name for column in table.columns}, table.name


def test_a_newer_database_is_refused_with_advice(db_url: str) -> None:
    catalog = Catalog(db_url)
    with catalog.engine.begin() as connection:
        connection.execute(text("INSERT INTO schema_version (version) VALUES (99)"))
    import pytest

    with pytest.raises(RuntimeError, match="upgrade mplug2-search"):
        Catalog(db_url)
