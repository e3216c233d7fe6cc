"""The listener's counters, as it prints them on shutdown."""

from __future__ import annotations

import dataclasses
import json

from irflow.intake.listener_stats import ListenerStats


def test_the_shutdown_snapshot_has_every_counter_and_is_json():
    stats = ListenerStats(received=3, dead_lettered=1, log_files=2)
    stats.suppressed_by_reason["archived"] += 2
    stats.rejected_by_code["not-a-finding"] += 1
    snapshot = json.loads(json.dumps(stats.snapshot()))
    assert set(snapshot) == {f.name for f in dataclasses.fields(ListenerStats)}, "a new counter must be printed too"
    assert snapshot["received"] == 3 and snapshot["dead_lettered"] == 1 and snapshot["log_files"] == 2
    assert snapshot["suppressed_by_reason"] == {"archived": 2}
    assert snapshot["rejected_by_code"] == {"not-a-finding": 1}
