"""Broadcast traps (snmp.trap.broadcast), in a network namespace the test creates.

Broadcasting to 255.255.255.255 from the host would leave on its real
interfaces, so the daemon runs as ``python -m daemon`` inside ``unshare -n``:
a fresh namespace with loopback and a veth pair whose address carries the
default route (a limited broadcast needs a route out). Linux loops an
outgoing broadcast back to local sockets, so net-snmp's snmptrapd, bound to
0.0.0.0 in the same namespace, receives it — and logs the destination
address, which must be 255.255.255.255. No host to send to is configured:
the broadcast is the only way a trap can arrive.

The site has one I-35 that never answers: alarm 3 is raised at the first
poll, and broadcast as gwAlarmRaised — or as gwAlarmActive when it was
raised before the agent opened (the agent announces active alarms when it
opens). The namespace needs root (CI runs as root); when it cannot be made,
the test fails.
"""

import asyncio
import json
import os
import shlex
import signal
import subprocess
import sys
import time

from conftest import REPO
from daemon.state.topology import Topology, devices_from_simulation
from snmp_support import ACTIVE, OF_5, RAISED, TrapReceiver, need

LINK_ADDRESS = "169.254.45.55/16"      # link-local, on a veth pair that exists only in the namespace
# The trap receiver's port: the daemon must know it before it starts, and nothing else binds ports in the
# namespace the test creates, so a fixed number is free there. The daemon's own servers bind port 0.
TRAP_PORT = 10162
SITE = {"buses": {"digiware": {"baud": 38400, "turnaround_ms": 2, "meters": [
    {"reference": "I-35", "address": 5, "netid": "DC85EA", "loads": 3, "silent": True}]}}}

SCRIPT = """
set -e
ip link set lo up
ip link add gwtest0 type veth peer name gwtest1
ip addr add {address} dev gwtest0
ip link set gwtest0 up
ip link set gwtest1 up
ip route add default dev gwtest0
snmptrapd -f -Lf {log} -On -C -c {conf} udp:0.0.0.0:{trap_port} &
tries=0
until grep -q 'NET-SNMP version' {log} 2>/dev/null; do
    tries=$((tries + 1)); [ $tries -lt 400 ] || {{ echo 'snmptrapd did not start' >&2; exit 3; }}
    sleep 0.05
done
exec {python} -m daemon --board sim --topology {topology} --state-dir {state} --log-level warning \\
    --http-port 0 --set http.bind=127.0.0.1 --modbus-port 0 --set modbus.bind=127.0.0.1 \\
    --set policy.bacnet=false --set snmp.enabled=true --set snmp.bind=0.0.0.0 --snmp-port 0 \\
    --set snmp.trap.broadcast=true --set snmp.trap.port1={trap_port} --set poll.backoff_max_s=1
"""


def _preset_topology(state_dir):
    """The state dir's topology = the simulated site, so polling starts at once (no detection)."""
    os.makedirs(state_dir)
    asyncio.run(Topology(os.path.join(state_dir, "topology.json")).replace(devices_from_simulation(SITE)))


def test_broadcast_trap_arrives_in_a_network_namespace(tmp_path):
    for tool in ("unshare", "ip", "snmptrapd"):
        need(tool)
    rx = TrapReceiver(tmp_path)          # its config (community trap) and log parser; started below
    rx.port = TRAP_PORT
    topology = tmp_path / "site.json"
    topology.write_text(json.dumps(SITE))
    state = str(tmp_path / "state")
    _preset_topology(state)
    script = SCRIPT.format(address=LINK_ADDRESS, log=shlex.quote(str(rx.log)),
                           conf=shlex.quote(str(rx.dir / "snmptrapd.conf")), trap_port=rx.port,
                           python=shlex.quote(sys.executable), topology=shlex.quote(str(topology)),
                           state=shlex.quote(state))
    env = dict(os.environ, MIBS="", SNMP_PERSISTENT_DIR=str(rx.dir))
    proc = subprocess.Popen(["unshare", "-n", "sh", "-c", script], cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 60
        while rx.count(RAISED, **OF_5) + rx.count(ACTIVE, **OF_5) < 1:
            if proc.poll() is not None:
                raise AssertionError("the namespace or the daemon failed (exit %s): %s"
                                     % (proc.returncode, proc.stderr.read()))
            assert time.monotonic() < end, "no broadcast trap within 60 s: %s" % rx.log.read_text()
            time.sleep(0.1)
        text = rx.log.read_text()
        address = LINK_ADDRESS.split("/")[0]
        assert "[UDP: [%s]:" % address in text and "->[255.255.255.255]:%d]" % rx.port in text, text
        assert "127.0.0.1" not in text                 # nothing came by loopback
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        proc.stderr.close()
