"""Writes cross the Ray boundary as plain tuples (``shard_types``): every field survives."""

from __future__ import annotations

import pickle

from leaderboard.actors.shard_types import (
    WriteCommand,
    WriteResult,
    command_rows,
    commands_of,
    result_rows,
    results_of,
)


def test_commands_and_results_survive_rows_and_pickling() -> None:
    cmds = [WriteCommand("u1", "Ann", "EU", "add", -7, "key-1", "weekly", '{"car":"red"}'),
            WriteCommand("u2", "Bob", "NA", "create", 3)]
    rows = pickle.loads(pickle.dumps(command_rows(cmds)))
    assert all(type(r) is tuple for r in rows)
    assert commands_of(rows) == cmds
    done = [WriteResult("rate_limited", 5, 2, 9, 0, "region", 1_500, True, 4, False, "Ann",
                        '{"car":"red"}'), WriteResult("ok")]
    assert results_of(pickle.loads(pickle.dumps(result_rows(done)))) == done
