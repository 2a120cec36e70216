"""bench/ab.py: a side's own settings (--a-env/--b-env) win over the options for both."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import ab


def test_workers_applies_to_a_side_that_sets_none():
    env = ab.server_env({"PADDLES_LOG_LEVEL": "warning"}, {}, "2")
    assert env == {"PADDLES_LOG_LEVEL": "warning", "PADDLES_WORKERS": "2"}


def test_a_sides_own_workers_win_over_the_option():
    own = {"PADDLES_WORKERS": "9", "PADDLES_THREADS": "1"}
    env = ab.server_env({"PADDLES_LOG_LEVEL": "warning", **own}, own, "2")
    assert env["PADDLES_WORKERS"] == "9" and env["PADDLES_THREADS"] == "1"


def test_no_option_leaves_the_environment_as_it_is():
    base = {"PADDLES_WORKERS": "4"}
    assert ab.server_env(base, {}, "") == base
