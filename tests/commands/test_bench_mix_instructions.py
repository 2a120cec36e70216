"""bench/mix_instructions.py: callgrind's dumps are read in the order they were written (one
per counted request), and the working tree is counted where it is."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import mix_instructions


def test_dumps_are_read_in_the_order_written(tmp_path):
    out = tmp_path / "cg.out"
    for number, total in ((10, 300), (2, 200), (1, 100)):
        (tmp_path / f"cg.out.{number}").write_text(f"events: Ir\nsummary: {total}\n")
    (tmp_path / "cg.out.2.tmp").write_text("summary: 999\n")  # not a dump
    assert mix_instructions._dump_totals(str(out)) == [100, 200, 300]


def test_the_working_tree_is_counted_in_place():
    with mix_instructions.checked_out(None) as tree:
        assert tree == mix_instructions.REPO
        assert (tree / "paddles" / "app.py").exists()


def test_every_kind_of_the_mix_is_counted():
    kinds = [kind for kind, _ in mix_instructions.KINDS]
    assert kinds == ["create", "running", "finish", "heartbeat", "run_document", "run_list",
                     "node_list"]
