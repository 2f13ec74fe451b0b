"""``python -m tools.simbus`` serves the simulated meters on serial devices, so
the daemon can run with ``--board rpi`` on real-style ports against them."""

import signal
import subprocess
import sys

from conftest import DEMO_TOPOLOGY, REPO, http_json, start_daemon, wait_until


def test_rpi_board_daemon_polls_meters_served_by_the_simbus_tool(tmp_path):
    sim = subprocess.Popen([sys.executable, "-m", "tools.simbus", "--topology", DEMO_TOPOLOGY, "--pty"],
                           cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    daemon = None
    try:
        ports = {}
        for _ in range(2):
            line = sim.stdout.readline()          # "digiware: 6 meters on /dev/pts/N"
            bus, _, rest = line.partition(":")
            ports[bus] = rest.split(" on ")[1].strip()
        assert set(ports) == {"digiware", "rs485"}
        daemon = start_daemon(tmp_path / "state", "--board", "rpi", "--port", "digiware=" + ports["digiware"],
                              "--port", "rs485=" + ports["rs485"], "--set", "discovery.last_address=22",
                              "--discover", "fast")
        base = daemon.base

        def detected():
            doc = http_json(base + "/api/status")[1]
            return doc["discovery"]["state"] == "done" and doc
        doc = wait_until(detected, guard=60)
        assert doc["gateway"]["board"] == "rpi"
        assert [d["address"] for d in doc["devices"]] == [4, 5, 11, 13, 14, 15, 20]
        wait_until(lambda: all(d["values"] and d["counters"]["answers"] > 0
                               for d in http_json(base + "/api/status")[1]["devices"]), guard=30)
        assert http_json(base + "/api/sim/button", {"held_s": 3})[0] == 404   # no simulated hardware on rpi
        daemon.send_signal(signal.SIGINT)
        assert daemon.wait(timeout=10) == 0
    finally:
        for proc in (daemon, sim):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)
    assert sim.returncode == 0


def test_a_missing_serial_port_leaves_the_rest_of_the_gateway_running(tmp_path):
    daemon = start_daemon(tmp_path / "state", "--board", "rpi", "--port", "digiware=/dev/does-not-exist",
                          "--port", "rs485=/dev/neither", log_level="error")
    try:
        doc = wait_until(lambda: http_json(daemon.base + "/api/status")[1], guard=30)
        assert "does-not-exist" in doc["buses"]["digiware"]["error"]
        assert doc["buses"]["rs485"]["error"]
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=10) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
