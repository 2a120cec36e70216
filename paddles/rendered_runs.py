"""Run summaries rendered for run lists, each kept by its run's state.

A run list (`GET /runs/`, pulpito's front page, and every filter route) shows each run's
summary (spec 6.1), which depends on the run's row alone (and the process's settings,
which do not change while it runs). The row's `(id, posted, version)` names its state, as
it names the run document's (paddles/cache.py): `version` moves with every change to the
run or its jobs, `posted` tells apart a run re-created under a reused id (SQLite). Between
two reads of a list, most of its runs have not changed, so each summary's JSON is kept in
the response cache under that key, within the same bound, and a list is assembled from
the kept and the new ones as orjson Fragments.

A list cut down to some `fields`, or with the cache off, renders every summary.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import orjson

from . import serializers
from .cache import ResponseCache
from .models.runs import RunValues
from .settings import Settings


def summaries(runs: Sequence[RunValues], settings: Settings, cache: ResponseCache | None,
              fields: Sequence[str] | None = None) -> list[Any]:
    """The wire summaries of `runs`, in their order: dicts, or Fragments of kept ones."""
    if fields is not None or cache is None or not cache.max_bytes:
        return [serializers.sliced(serializers.run_summary(run, settings), fields)
                for run in runs]
    keys: list[Hashable] = [("run summary", run.id, run.posted, run.version) for run in runs]
    out: list[Any] = []
    new: list[tuple[Hashable, bytes]] = []
    for run, key, body in zip(runs, keys, cache.get_many(keys)):
        if body is None:
            body = orjson.dumps(serializers.run_summary(run, settings))
            new.append((key, body))
        out.append(orjson.Fragment(body))
    cache.put_many(new)
    return out
