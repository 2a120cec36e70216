"""A gunicorn worker's memory stays flat while a 64 MiB artifact goes up and comes back.

Runs bench/artifacts_memory.py's measurement (the 1 GiB figure is in docs/performance.md)
against the fixture database, SQLite and PostgreSQL.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "artifacts_memory.py"


@pytest.fixture
def storage_kind():
    return "local"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("artifacts_memory", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_worker_peak_rss_grows_less_than_32_mib_for_64_mib_up_and_down(bench, database_url,
                                                                      db_engine, tmp_path):
    result = bench.measure(64 << 20, database_url, workdir=str(tmp_path))
    growth_mib = result["growth_kib"] / 1024
    assert growth_mib < 32, result
