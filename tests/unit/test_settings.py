"""Settings: environment over config file over defaults; derived defaults."""
from __future__ import annotations

from pathlib import Path

import pytest

from paddles.settings import bind_problem, load_settings, redact_url


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


def test_pool_is_sized_to_the_worker_threads_and_the_notify_thread():
    assert load_settings(environ={}).db_pool_size == 2
    assert load_settings(environ={"PADDLES_THREADS": "8"}).db_pool_size == 9
    assert load_settings(environ={"PADDLES_THREADS": "8",
                                  "PADDLES_DB_POOL_SIZE": "3"}).db_pool_size == 3


def test_bind_is_one_setting_env_over_file_over_default(tmp_path):
    cfg = tmp_path / "config.py"
    assert load_settings(environ={}).bind == "127.0.0.1:8080"
    cfg.write_text('server = {"host": "0.0.0.0", "port": "8380"}\n')  # upstream's shape
    assert load_settings(cfg, environ={}).bind == "0.0.0.0:8380"
    cfg.write_text('server = {"port": 9000}\n')
    assert load_settings(cfg, environ={}).bind == "127.0.0.1:9000"
    cfg.write_text('server = {"host": "0.0.0.0", "port": "8380"}\n'
                   'paddles = {"bind": "unix:/run/paddles.sock"}\n')
    assert load_settings(cfg, environ={}).bind == "unix:/run/paddles.sock"
    assert load_settings(cfg, environ={"PADDLES_BIND": "[::1]:8081"}).bind == "[::1]:8081"


def test_the_replaced_server_variables_are_refused():
    for var in ("PADDLES_SERVER_HOST", "PADDLES_SERVER_PORT"):
        with pytest.raises(ValueError, match=f"{var} is no longer read: set PADDLES_BIND"):
            load_settings(environ={var: "8380"})


@pytest.mark.parametrize("bind, ok", [
    ("127.0.0.1:8080", True), ("0.0.0.0:0", True), ("[::1]:8080", True),
    ("unix:/run/paddles.sock", True), ("fd://3", True), ("localhost", False),
    ("127.0.0.1:http", False), (":8080", False), ("127.0.0.1:70000", False), ("unix:", False),
])
def test_bind_problem(bind, ok):
    assert (bind_problem(bind) is None) is ok


def test_redacted_database_url_hides_the_password():
    assert redact_url("postgresql+psycopg2://u:s3cret@db/paddles") == \
        "postgresql+psycopg2://u:***@db/paddles"


def test_the_config_template_loads_with_the_defaults(tmp_path, monkeypatch):
    template = Path(__file__).resolve().parents[2] / "config.py.in"
    monkeypatch.chdir(tmp_path)  # no ./config.py behind the defaults
    loaded, default = load_settings(template, environ={}), load_settings(environ={})
    assert loaded.bind == default.bind == "127.0.0.1:8080"
    assert loaded == default
