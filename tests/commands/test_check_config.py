"""`paddles check-config`: every setting with its source, then database, schema and storage."""
from __future__ import annotations

from paddles.commands import main
from tests.deploy.conftest import free_port


def test_all_checks_pass_on_a_migrated_database(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("PADDLES_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PADDLES_S3_SECRET_ACCESS_KEY", "hunter2")
    result = cli("check-config", expect=0)
    lines = result.lines
    assert any(line.startswith("database_url") and "[env PADDLES_DATABASE_URL]" in line
               for line in lines)
    assert any(line.startswith("data_dir ") and "[env PADDLES_DATA_DIR]" in line
               for line in lines)
    assert any(line.startswith("address ") and "[default]" in line for line in lines)
    assert "hunter2" not in result.out
    for name in ("settings", "database", "migrations", "storage"):
        assert any(line.startswith(f"ok   {name}: ") for line in lines), result.out
    assert "4 of 4 checks passed" in result.err
    blobs = tmp_path / "var" / "blobs"
    assert blobs.is_dir() and not [p for p in blobs.rglob("*") if p.name != ".tmp"]  # no trace


def test_config_file_values_name_the_file(cli, monkeypatch, tmp_path):
    conf = tmp_path / "config.py"
    conf.write_text('address = "http://paddles.example.com"\n'
                    'paddles = {"data_dir": "%s", "log_format": "json"}\n' % (tmp_path / "v"))
    result = cli("-c", str(conf), "check-config", expect=0)
    assert any(line.startswith("address ") and f"[file {conf}]" in line
               for line in result.lines)
    assert any(line.startswith("log_format ") and "'json'" in line for line in result.lines)


def test_an_empty_database_fails_the_migrations_check(monkeypatch, tmp_path, capsys):
    url = "sqlite:///" + str(tmp_path / "empty.db")
    (tmp_path / "empty.db").touch()
    monkeypatch.setenv("PADDLES_DATABASE_URL", url)
    monkeypatch.setenv("PADDLES_DATA_DIR", str(tmp_path))
    assert main(["check-config", "--no-settings"]) == 1
    out = capsys.readouterr().out
    assert "ok   database:" in out
    assert "FAIL migrations: schema at none (empty database)" in out
    assert "run `paddles migrate`" in out


def test_a_missing_sqlite_file_is_not_created(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PADDLES_DATABASE_URL", "sqlite:///" + str(tmp_path / "nope.db"))
    monkeypatch.setenv("PADDLES_DATA_DIR", str(tmp_path))
    assert main(["check-config", "--no-settings"]) == 1
    assert "FAIL database:" in capsys.readouterr().out
    assert not (tmp_path / "nope.db").exists()


def test_unreachable_database_and_bad_values_fail(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PADDLES_DATABASE_URL",
                       f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/x")
    monkeypatch.setenv("PADDLES_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PADDLES_TIMEZONE", "Mars/Olympus")
    assert main(["check-config", "--no-settings"]) == 1
    out = capsys.readouterr().out
    assert "FAIL settings: timezone 'Mars/Olympus' is unknown" in out
    assert "FAIL database: postgresql+psycopg2://postgres@127.0.0.1:" in out
    assert "unreachable" in out


def test_unwritable_storage_fails(monkeypatch, tmp_path, capsys, database_url):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("PADDLES_DATABASE_URL", database_url)
    monkeypatch.setenv("PADDLES_ARTIFACTS_DIR", str(blocker / "blobs"))
    assert main(["check-config", "--no-settings"]) == 1
    assert "FAIL storage: local" in capsys.readouterr().out


def test_a_bad_variable_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setenv("PADDLES_DB_POOL_SIZE", "eighty")
    assert main(["check-config"]) == 1
    err = capsys.readouterr().err
    assert "configuration error" in err and "PADDLES_DB_POOL_SIZE='eighty'" in err


def test_a_replaced_server_variable_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setenv("PADDLES_SERVER_PORT", "8380")
    assert main(["check-config"]) == 1
    err = capsys.readouterr().err
    assert "PADDLES_SERVER_PORT is no longer read: set PADDLES_BIND=HOST:PORT" in err


def test_a_bad_bind_fails(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PADDLES_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PADDLES_BIND", "127.0.0.1:http")
    assert main(["check-config", "--no-settings"]) == 1
    assert "bind '127.0.0.1:http' is not HOST:PORT" in capsys.readouterr().out


def test_a_configured_replica_is_checked_too(cli, monkeypatch, tmp_path, database_url):
    monkeypatch.setenv("PADDLES_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PADDLES_DATABASE_READ_URL", database_url)
    result = cli("check-config", "--no-settings", expect=0)
    assert "ok   replica database: " in result.out
    assert "ok   replica migrations: current" in result.out
    assert "6 of 6 checks passed" in result.err


def test_a_negative_response_cache_size_fails(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PADDLES_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PADDLES_RESPONSE_CACHE_SIZE", "-1")
    assert main(["check-config", "--no-settings"]) == 1
    assert "response_cache_size must be 0 (off) or more" in capsys.readouterr().out
