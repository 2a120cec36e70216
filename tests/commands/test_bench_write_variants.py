"""bench/write_variants.py: each --env and --sql goes to the variant it names, and a label
that names no variant is refused before anything runs."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import write_variants


def test_settings_go_to_their_variant_in_order():
    got = write_variants._settings(
        ["nostatus:DROP INDEX ix_jobs_status", "nostatus:DROP INDEX ix_jobs_flavor",
         "t1:SELECT 1"], ["base", "nostatus", "t1"], "--sql")
    assert got == {"base": [], "nostatus": ["DROP INDEX ix_jobs_status",
                                            "DROP INDEX ix_jobs_flavor"],
                   "t1": ["SELECT 1"]}


@pytest.mark.parametrize("item", ["other:PADDLES_THREADS=1", "PADDLES_THREADS=1"])
def test_a_setting_for_no_variant_is_refused(item):
    with pytest.raises(SystemExit, match="LABEL:VALUE"):
        write_variants._settings([item], ["base", "t1"], "--env")


def test_labels_must_differ_before_anything_runs():
    with pytest.raises(SystemExit, match="distinct labels"):
        write_variants.main(["base", "base"])
