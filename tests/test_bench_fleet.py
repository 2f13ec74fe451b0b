"""The MQTT fleet bench's small version (bench/fleet.py: 3 gateways in one worker process, a few seconds, the
broker stopped for 2 s in the middle) runs in every payload mode the publisher has, and its counts hold against
the independent subscriber (paho, QoS 1, persistent session): every sample a gateway spooled was delivered at
least once, none lost, none dropped, the broker acknowledged each one, every gateway connected again after the
restart. Its timings and CPU figures are the bench's to print, not asserted here."""

import json
import os
import subprocess
import sys

import pytest

from outbound.mqtt.modes import MODES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GATEWAYS = 3


@pytest.mark.parametrize("mode", sorted(MODES))
def test_three_gateways_through_a_broker_restart_lose_nothing(mode):
    env = dict(os.environ, PYTHONPATH=REPO)
    done = subprocess.run([sys.executable, "-m", "bench.fleet", "--gateways", str(GATEWAYS), "--workers", "1",
                           "--seconds", "8", "--outage", "2", "--mode", mode, "--json"],
                          cwd=REPO, env=env, check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout)
    rows = figures["per_gateway"]
    assert sorted(row["gateway"] for row in rows) == ["fleet000", "fleet001", "fleet002"]
    for row in rows:
        assert row["published"] > 0, row
        assert row["lost"] == 0 and row["delivered"] == row["published"], row
        assert row["acknowledged"] == row["published"] and row["dropped"] == 0, row
        assert row["sessions"] >= 2, row                 # the broker went away and each gateway came back
        assert row["peak_spool_samples"] > 0, row        # the outage's samples waited in the spool
    totals = figures["totals"]
    assert totals["lost"] == 0
    assert totals["delivered"] == totals["published"] == sum(row["published"] for row in rows)
