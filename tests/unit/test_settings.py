"""Settings: environment over config file over defaults; derived defaults."""
from __future__ import annotations

from paddles.settings import load_settings


def test_env_overrides_config_file(tmp_path):
    cfg = tmp_path / "config.py"
    cfg.write_text('sqlalchemy = {"url": "sqlite:///from-file.db"}\naddress = "http://file"\n'
                   'paddles = {"timezone": "Europe/Paris"}\n')
    s = load_settings(cfg, environ={"PADDLES_ADDRESS": "http://env"})
    assert (s.database_url, s.address, s.timezone) == ("sqlite:///from-file.db", "http://env",
                                                       "Europe/Paris")


def test_default_database_is_sqlite_under_the_data_dir(tmp_path):
    s = load_settings(environ={"PADDLES_DATA_DIR": str(tmp_path)})
    assert s.database_url == f"sqlite:///{tmp_path}/paddles.db"


def test_pool_is_sized_to_the_worker_threads():
    assert load_settings(environ={}).db_pool_size == 1
    assert load_settings(environ={"PADDLES_THREADS": "8"}).db_pool_size == 8
    assert load_settings(environ={"PADDLES_THREADS": "8",
                                  "PADDLES_DB_POOL_SIZE": "3"}).db_pool_size == 3
