"""Monitor page bench (issue 17): what the live values cost the daemon's loop per update with 10 pages open.

    .venv/bin/python -m bench.monitor [--seconds S] [--subscribers N] [--json]

A gateway on the simulated reference site (32 meters, 192 circuits, both buses polled) with its web server on
loopback, in this process. The loop's cost is the CPU time of the loop's own thread (``time.thread_time()``
read on the loop: the simulated meters and the bench's clients run in other threads, so their work is not
counted; the loop's idle time in its selector costs no CPU). Three windows of ``--seconds`` each:

* baseline: the gateway polling its site, nobody watching;
* live: ``--subscribers`` clients (threads of another process, as browsers are, one keep-alive HTTP connection
  each) long-poll ``GET /api/monitor/<address>?load=1&since=V``, each on another meter, as the page does;
* baseline again (the mean of the two baselines is the reference: the site's own load drifts a little).

Per update = (loop CPU in the live window - the baseline's) / answers the clients received in that window.
Target (issue 17): at most 1 ms of loop time per update. The loop's lag (p99 of a 50 ms timer's lateness,
daemon/looplag.py) of each window is printed too.
"""

import argparse
import asyncio
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import load_reference  # noqa: E402
from board.sim import SimBoard  # noqa: E402
from daemon.gateway import Gateway  # noqa: E402
from daemon.security.rights import Caller  # noqa: E402
from daemon.state.topology import devices_from_simulation  # noqa: E402

TARGET_MS = 1.0


def web_service(door):
    from webconfig.app import make_app
    from webconfig.server import HttpServer
    web_service.server = HttpServer(make_app(door), host="127.0.0.1", port=0)
    return web_service.server


web_service.name = "web"


class Subscriber(threading.Thread):
    """One open Monitor page: the long-poll loop of static/monitor.js, on one keep-alive connection."""

    def __init__(self, port, address, stop):
        threading.Thread.__init__(self, daemon=True)
        self.port, self.address, self.stop = port, address, stop
        self.answers, self.bytes, self.errors = 0, 0, 0

    def run(self):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        since = None
        while not self.stop.is_set():
            path = "/api/monitor/%d?load=1%s" % (self.address, "" if since is None else "&since=%d" % since)
            try:
                connection.request("GET", path, headers={"Accept-Encoding": "gzip"})
                response = connection.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException):
                self.errors += 1
                connection.close()
                time.sleep(0.5)
                continue
            if response.status != 200:
                self.errors += 1
                time.sleep(2)
                continue
            self.bytes += len(body)
            if response.getheader("Content-Encoding") == "gzip":
                import gzip
                body = gzip.decompress(body)
            since = json.loads(body)["version"]
            self.answers += 1
        connection.close()


async def window(gateway, seconds):
    """(loop-thread CPU seconds, loop lag summary) over ``seconds``."""
    gateway.looplag.reset()
    start = time.thread_time()
    await asyncio.sleep(seconds)
    return time.thread_time() - start, gateway.looplag.summary()


def clients_main(port, addresses):
    """The subscribers' process: one thread per address; each line read on stdin is answered with the answers,
    bytes and errors counted so far (JSON); end of input stops them."""
    stop = threading.Event()
    clients = [Subscriber(port, address, stop) for address in addresses]
    for client in clients:
        client.start()
    for _line in sys.stdin:
        print(json.dumps({"answers": sum(c.answers for c in clients), "bytes": sum(c.bytes for c in clients),
                          "errors": sum(c.errors for c in clients)}), flush=True)
    stop.set()


async def _mark(process):
    process.stdin.write(b"\n")
    await process.stdin.drain()
    return json.loads(await process.stdout.readline())


async def run(seconds, count):
    topology = load_reference()
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as state:
        gateway = Gateway(SimBoard(topology=topology), state, {"firewall.enabled": False})
        gateway.services.append(web_service(gateway.door(Caller("web", "user"))))
        await gateway.start()
        try:
            await gateway.topology.replace(devices_from_simulation(topology))
            while min(p.cycles for p in gateway.pollers.values()) < 2:
                await asyncio.sleep(0.05)
            metered = [d.address for d in gateway.topology.devices if d.loads][:count]
            metered = (metered * count)[:count]
            before = await window(gateway, seconds)
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.monitor", "--clients", str(web_service.server.port),
                ",".join(map(str, metered)), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            await asyncio.sleep(2)                   # every page has its first document
            first = await _mark(process)
            live = await window(gateway, seconds)
            last = await _mark(process)
            process.stdin.close()
            await process.wait()
            await asyncio.sleep(6)                   # the last long-polls end (monitor_live.WAIT_S)
            after = await window(gateway, seconds)
        finally:
            await gateway.stop()
    answers = last["answers"] - first["answers"]
    baseline = (before[0] + after[0]) / 2
    per_update_ms = 1000.0 * (live[0] - baseline) / answers if answers else float("nan")
    return {"seconds": seconds, "subscribers": count, "devices": len(set(metered)),
            "loop_cpu_s": {"baseline_before": round(before[0], 3), "live": round(live[0], 3),
                           "baseline_after": round(after[0], 3)},
            "loop_share": {"baseline": round(baseline / seconds, 4), "live": round(live[0] / seconds, 4)},
            "updates": answers, "updates_per_s": round(answers / seconds, 1),
            "per_update_ms": round(per_update_ms, 3), "target_ms": TARGET_MS,
            "bytes_per_update": round(last["bytes"] / max(1, last["answers"])), "errors": last["errors"],
            "loop_lag": {"baseline": before[1], "live": live[1], "after": after[1]}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--subscribers", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--clients", nargs=2, metavar=("PORT", "ADDRESSES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.clients:
        clients_main(int(args.clients[0]), [int(a) for a in args.clients[1].split(",")])
        return
    result = asyncio.run(run(args.seconds, args.subscribers))
    if args.json:
        print(json.dumps(result, indent=1, default=str))
        return
    cpu = result["loop_cpu_s"]
    print("reference site, %d Monitor subscribers on %d meters, %.0f s windows" % (
        result["subscribers"], result["devices"], result["seconds"]))
    print("loop CPU: baseline %.3f s, live %.3f s, baseline again %.3f s" % (
        cpu["baseline_before"], cpu["live"], cpu["baseline_after"]))
    print("updates delivered: %d (%.1f/s), %d bytes each as sent, %d errors" % (
        result["updates"], result["updates_per_s"], result["bytes_per_update"], result["errors"]))
    print("loop time per update: %.3f ms (target <= %.1f ms)" % (result["per_update_ms"], TARGET_MS))
    for name, lag in result["loop_lag"].items():
        print("loop lag %-8s %s" % (name, lag))


if __name__ == "__main__":
    main()
