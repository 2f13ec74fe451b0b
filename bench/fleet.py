"""MQTT fleet bench (issue 18): many gateways into one broker that restarts mid-run; does any sample get lost?

    .venv/bin/python -m bench.fleet [--gateways 50] [--workers 5] [--seconds 60] [--outage 10]
                                    [--mode json|sparkplug] [--poll-ms 2000] [--json]

One Mosquitto (the Debian package, persistence on) on 127.0.0.1; ``--workers`` processes each run their share of
``--gateways`` Gateway objects on one event loop. Each gateway has its own state directory, its own simulated
site on its own pseudo-terminals (board/sim.py: a U-30, every other gateway an I-35 too: the sites are scaled
down, not the fleet, for the machine's 2 cores), its own client id and site name, and the MQTT publisher
(outbound/mqtt) in ``--mode`` at QoS 1 with its store-and-forward spool. An independent subscriber (another
process, paho, QoS 1, a persistent session opened before any gateway) records every message.

The measured window is ``--seconds`` long; in its middle the broker is stopped (SIGTERM: it saves its database)
for ``--outage`` seconds and started again on the same port. At the window's end the gateways stop taking
samples and their spools are left to drain; then, per gateway (a table, then the figures as one JSON line):

* published: the samples the publisher took into its spool (the bench's tee on the service's sink; its own
  counter ``status()["published"]``, the samples the broker acknowledged, must reach the same figure);
* delivered: those the subscriber received at least once (matched by topic and timestamp);
* lost: published, never delivered (must be 0); duplicated: deliveries beyond the first; out of order:
  deliveries of a sample taken before one already delivered (the spool's order is the reference);
* peak spool: its size on disk (``status()["spool_bytes"]``: whole segment files, so sent samples of the segment
  being written count until it is done) and the samples waiting in it, each at its own peak (looked at every
  0.25 s);
* CPU: the worker process's CPU time (every thread: the loop, the simulated meters, the executor) over the window
  divided by the gateways it runs, and the part of it that the simulated meters' threads took (read from
  /proc/self/task: the site's cost, which a real gateway does not pay). Reference, same run: the broker's CPU
  time over the same window (both of its runs).
"""

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import REPO, free_port  # noqa: E402
from tools import mosquitto  # noqa: E402

SITE = "fleet%03d"                      # a gateway's site name and client id: unique in the fleet
SPOOL_LOOK_S = 0.25
DRAIN_GUARD_S = 240.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- the broker

class Broker(mosquitto.Broker):
    """Mosquitto on 127.0.0.1:``port`` with persistence in ``directory``; ``cpu()``: CPU seconds of every run."""

    def __init__(self, directory, port):
        super().__init__(directory, port, [
            "persistence true", "persistence_location %s/" % directory, "autosave_interval 0",
            "allow_anonymous true", "log_dest stderr", "log_type error", "log_type warning",
            "max_queued_messages 0", "max_inflight_messages 100"])
        self.cpu_before = 0.0               # CPU seconds of the runs already ended

    def stop(self):
        usage = super().stop()
        if usage is not None:
            self.cpu_before += usage.ru_utime + usage.ru_stime
        return usage

    def cpu(self):
        """CPU seconds of every run so far (the running one read from /proc)."""
        running = 0.0
        if self.proc is not None:
            with open("/proc/%d/stat" % self.proc.pid) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            running = (int(fields[11]) + int(fields[12])) / CLK_TCK       # utime, stime
        return self.cpu_before + running


# ---------------------------------------------------------------- what identifies a sample on the wire

def _json_topic_site(topic):
    return topic.split("/", 1)[0]


class JsonWire:
    """JSON mode: a sample is its topic and its timestamp; the site name (first level) names the gateway."""
    subscription = "#"

    @staticmethod
    def published(service, samples):
        """[(gateway's site, wire identity)] of spooled samples, in spool order (the mode's own topics)."""
        messages = service.mode.encode(samples, 0)
        return [(m.topic, json.loads(m.payload)["timestamp"]) for m in messages]

    @staticmethod
    def received(topic, payload):
        """[(site, identity)] of the samples in one message ([] for a status message)."""
        if topic.endswith("/status"):
            return []
        return [(_json_topic_site(topic), (topic, json.loads(payload)["timestamp"]))]


class SparkplugWire:
    """Sparkplug B: a sample is its edge node, device, metric name and timestamp; the edge node names the gateway.
    NDATA/DDATA only (births carry the current values, not samples of the spool); aliases resolved through the
    births."""
    subscription = "spBv1.0/#"

    def __init__(self):
        from outbound.mqtt import sparkplug_pb
        self.decode = sparkplug_pb.decode_payload
        self.aliases = {}                       # (edge, device) -> {alias: name}

    @staticmethod
    def published(service, samples):
        from outbound.mqtt import sparkplug
        mode = service.mode
        ids = mode._device_ids()
        edge = mode.edge_node_id()
        return [(edge, ids.get(s.address, ""), sparkplug.metric_name(s.load, s.key), s.t) for s in samples]

    def received(self, topic, payload):
        levels = topic.split("/")
        if len(levels) < 4 or levels[2] not in ("NBIRTH", "DBIRTH", "NDATA", "DDATA"):
            return []
        edge, device = levels[3], (levels[4] if len(levels) > 4 else "")
        decoded = self.decode(payload)
        names = self.aliases.setdefault((edge, device), {})
        if levels[2].endswith("BIRTH"):
            for metric in decoded.metrics:
                if metric.alias is not None and metric.name:
                    names[metric.alias] = metric.name
            return []
        out = []
        for metric in decoded.metrics:
            name = metric.name or names.get(metric.alias, "alias %s" % metric.alias)
            stamp = metric.timestamp if metric.timestamp is not None else decoded.timestamp
            out.append((edge, (edge, device, name, stamp)))
        return out


WIRES = {"json": JsonWire, "sparkplug": SparkplugWire}


# ---------------------------------------------------------------- the subscriber (its own process)

def subscriber_main(port, mode):
    """Every message from before the gateways start to the end, at QoS 1 in a persistent session: on each line
    of stdin, ``count`` answers the samples received so far; ``dump PATH`` writes them, per gateway in arrival
    order, to PATH; end of input stops."""
    import paho.mqtt.client as paho
    wire = WIRES[mode]()
    received, lock, connected = {}, threading.Lock(), threading.Event()
    total = [0, 0]                                       # samples, messages

    def on_connect(client, _userdata, flags, reason, _properties):
        if not reason.is_failure:
            if not flags.session_present:
                client.subscribe(wire.subscription, qos=1)
            connected.set()

    def on_message(_client, _userdata, message):
        samples = wire.received(message.topic, bytes(message.payload))
        with lock:
            total[1] += 1
            for site, identity in samples:
                received.setdefault(site, []).append(identity)
                total[0] += 1

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="fleet-subscriber", clean_session=False)
    client.on_connect, client.on_message = on_connect, on_message
    client.max_inflight_messages_set(100)
    client.reconnect_delay_set(0.1, 0.5)
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    if not connected.wait(20):
        raise SystemExit("the subscriber could not connect")
    start = time.process_time()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        words = line.split()
        with lock:
            if words and words[0] == "dump":
                with open(words[1], "w") as handle:
                    json.dump(received, handle)
            print(json.dumps({"samples": total[0], "messages": total[1], "cpu_s": time.process_time() - start}),
                  flush=True)
    client.loop_stop()
    client.disconnect()


# ---------------------------------------------------------------- a worker process: several gateways, one loop

def topology(index):
    """A small site: a U-30 on the Digiware bus, every other gateway an I-35 (3 circuits) too."""
    meters = [{"reference": "U-30", "address": 11, "netid": "%06X" % (0xD50000 + index)}]
    if index % 2:
        meters.append({"reference": "I-35", "address": 4, "netid": "%06X" % (0xDC0000 + index), "loads": 3,
                       "nominal_w": 30000})
    return {"buses": {"digiware": {"baud": 38400, "turnaround_ms": 2, "meters": meters},
                      "rs485": {"baud": 38400, "turnaround_ms": 2, "meters": []}}}


def tee_service():
    """MqttService that also keeps every sample it spools, in order (the bench's record of what was published)."""
    from outbound.mqtt.service import MqttService

    class TeeService(MqttService):
        def __init__(self, door):
            MqttService.__init__(self, door)
            self.taken = []

        def _sink(self, sample):
            if self.spool is not None:
                self.taken.append(sample)
            MqttService._sink(self, sample)

    return TeeService


async def worker_main(first, count, port, mode, poll_ms, out):
    from board.sim import SimBoard
    from daemon.gateway import Gateway
    from daemon.security.rights import Caller
    from daemon.state.topology import devices_from_simulation

    service_class = tee_service()
    loop = asyncio.get_running_loop()
    fleet = []
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as root:
        try:
            for index in range(first, first + count):
                site = topology(index)
                state = os.path.join(root, SITE % index)
                gateway = Gateway(SimBoard(topology=site), state, {
                    "firewall.enabled": False, "storage.points_per_series": 1464, "poll.min_cycle_ms": poll_ms})
                service = service_class(gateway.door(Caller("mqtt")))
                gateway.services.append(service)
                await gateway.start()
                await gateway.topology.replace(devices_from_simulation(site))
                await gateway.door(Caller("web", "cyber")).set_settings({
                    "policy.cloud": True, "mqtt.enabled": True, "mqtt.host": "127.0.0.1", "mqtt.port": port,
                    "mqtt.tls": False, "mqtt.qos": 1, "mqtt.mode": mode, "mqtt.client_id": SITE % index,
                    "push.site_name": SITE % index, "mqtt.edge_node_id": SITE % index, "mqtt.group_id": "fleet"})
                fleet.append((index, gateway, service, {"bytes": 0, "samples": 0}))
            while not all(s.status()["connected"] for _i, _g, s, _p in fleet):
                await asyncio.sleep(0.1)
            looker = loop.create_task(_look_at_spools(fleet))
            print(json.dumps({"ready": True}), flush=True)
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                command = line.strip()
                if command == "mark":
                    print(json.dumps({"cpu_s": _cpu(fleet)}), flush=True)
                elif command == "stop":                     # the window's end: no more samples
                    for _i, _g, service, _p in fleet:
                        service.collector.stop()
                    print(json.dumps({"cpu_s": _cpu(fleet)}), flush=True)
                elif command == "drained":
                    print(json.dumps({"pending": sum(s.status().get("spool_samples", 0)
                                                     for _i, _g, s, _p in fleet)}), flush=True)
                else:                                       # end of input or "report"
                    looker.cancel()
                    report = {}
                    for index, _gateway, service, peak in fleet:
                        status = service.status()
                        report[SITE % index] = {
                            "published": WIRES[mode].published(service, service.taken),
                            "acknowledged": status["published"], "dropped": status.get("dropped", 0),
                            "sessions": status["sessions"], "peak_spool_bytes": peak["bytes"],
                            "peak_spool_samples": peak["samples"]}
                    with open(out, "w") as handle:
                        json.dump(report, handle)
                    print(json.dumps({"written": out}), flush=True)
                    break
        finally:
            for _index, gateway, _service, _peak in fleet:
                await gateway.stop()


def _cpu(fleet):
    """(this process's CPU seconds, those of its simulated meters' threads: the sites, not the gateways)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    meters = 0.0
    for _index, gateway, _service, _peak in fleet:
        for simbus in gateway.board.buses.values():
            try:
                with open("/proc/self/task/%d/stat" % simbus._thread.native_id) as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except (OSError, AttributeError):
                continue
            meters += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return usage.ru_utime + usage.ru_stime, meters


async def _look_at_spools(fleet):
    while True:
        for _index, _gateway, service, peak in fleet:
            status = service.status()
            peak["bytes"] = max(peak["bytes"], status.get("spool_bytes", 0))
            peak["samples"] = max(peak["samples"], status.get("spool_samples", 0))
        await asyncio.sleep(SPOOL_LOOK_S)


# ---------------------------------------------------------------- the run

class Child:
    """A child process of this bench spoken to by lines: ``ask(line)`` -> its JSON answer."""

    def __init__(self, args, log):
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.fleet"] + args, cwd=REPO, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)

    def answer(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("a child of the bench stopped: see its log")
        return json.loads(line)

    def ask(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.answer()

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def shares(gateways, workers):
    """[(first index, count)] of each worker."""
    workers = max(1, min(workers, gateways))
    base, extra = divmod(gateways, workers)
    out, first = [], 0
    for n in range(workers):
        count = base + (1 if n < extra else 0)
        out.append((first, count))
        first += count
    return out


def run(gateways=50, workers=5, seconds=60.0, outage=10.0, mode="json", poll_ms=2000, keep=None):
    if mode == "sparkplug":
        from outbound.mqtt.modes import MODES
        if "sparkplug" not in MODES:
            raise SystemExit("--mode sparkplug: outbound/mqtt/sparkplug.py is not there yet")
    directory = keep or tempfile.mkdtemp(prefix="bench-fleet-run-")
    os.makedirs(directory, exist_ok=True)
    log = open(os.path.join(directory, "children.log"), "a")
    broker = Broker(directory, free_port()).start()
    subscriber, fleet = None, []
    try:
        subscriber = Child(["--subscriber", str(broker.port), mode], log)
        subscriber.answer()
        started = time.monotonic()
        for n, (first, count) in enumerate(shares(gateways, workers)):
            fleet.append(Child(["--worker", str(first), str(count), str(broker.port), mode, str(poll_ms),
                                os.path.join(directory, "worker-%d.json" % n)], log))
        for worker in fleet:
            worker.answer()
        setup_s = time.monotonic() - started
        cpu0 = [worker.ask("mark")["cpu_s"] for worker in fleet]
        broker0, sub0 = broker.cpu(), subscriber.ask("count")
        window_start = time.monotonic()
        time.sleep(max(0.0, (seconds - outage) / 2))
        broker.stop()
        stopped_at = time.monotonic() - window_start
        time.sleep(outage)
        broker.start()
        time.sleep(max(0.0, window_start + seconds - time.monotonic()))
        cpu1 = [worker.ask("stop")["cpu_s"] for worker in fleet]
        broker1, sub1 = broker.cpu(), subscriber.ask("count")
        window = time.monotonic() - window_start
        drain_start = time.monotonic()
        while sum(worker.ask("drained")["pending"] for worker in fleet) > 0:
            if time.monotonic() - drain_start > DRAIN_GUARD_S:
                break
            time.sleep(0.5)
        reports = {}
        for worker in fleet:
            path = worker.ask("report")["written"]
            with open(path) as handle:
                reports.update(json.load(handle))
        expected = sum(len(r["published"]) for r in reports.values())
        settle = time.monotonic()                    # the subscriber's queue comes in after the spools' acks
        last = -1
        while True:
            now = subscriber.ask("count")["samples"]
            if now >= expected and now == last or time.monotonic() - settle > 60:
                break
            last = now
            time.sleep(1.0)
        drain_s = time.monotonic() - drain_start
        path = os.path.join(directory, "received.json")
        sub2 = subscriber.ask("dump %s" % path)
        with open(path) as handle:
            received = json.load(handle)
    finally:
        for child in fleet + ([subscriber] if subscriber else []):
            child.close()
        broker.close()
        log.close()
    per = {}
    for (first, count), c0, c1 in zip(shares(gateways, workers), cpu0, cpu1, strict=True):
        for index in range(first, first + count):
            per[SITE % index] = ((c1[0] - c0[0]) / count, (c1[1] - c0[1]) / count)
    table = []
    for site in sorted(reports):
        report = reports[site]
        table.append(dict(_compare([tuple(p) for p in report["published"]],
                                   [tuple(r) for r in received.get(site, [])]),
                          gateway=site, acknowledged=report["acknowledged"], dropped=report["dropped"],
                          sessions=report["sessions"], peak_spool_bytes=report["peak_spool_bytes"],
                          peak_spool_samples=report["peak_spool_samples"], cpu_s=round(per[site][0], 3),
                          meters_cpu_s=round(per[site][1], 3)))
    broker_cpu = broker1 - broker0
    totals = dict((key, sum(row[key] for row in table)) for key in (
        "published", "acknowledged", "delivered", "lost", "duplicated", "out_of_order", "dropped", "unknown"))
    gateway_cpu = sum(row["cpu_s"] for row in table) / len(table)
    meters_cpu = sum(row["meters_cpu_s"] for row in table) / len(table)
    own_cpu = gateway_cpu - meters_cpu
    if not keep:
        shutil.rmtree(directory, ignore_errors=True)
    return {"gateways": gateways, "workers": len(fleet), "mode": mode, "seconds": round(window, 1),
            "outage_s": outage, "broker_stopped_at_s": round(stopped_at, 1), "poll_ms": poll_ms,
            "setup_s": round(setup_s, 1), "drain_s": round(drain_s, 1), "totals": totals,
            "samples_per_s": round(totals["published"] / window, 1),
            "peak_spool_bytes_max": max(row["peak_spool_bytes"] for row in table),
            "peak_spool_samples_max": max(row["peak_spool_samples"] for row in table),
            "cpu_per_gateway_s": round(gateway_cpu, 3), "meters_cpu_per_gateway_s": round(meters_cpu, 3),
            "broker_cpu_s": round(broker_cpu, 3),
            "cpu_per_gateway_vs_broker": round(gateway_cpu / broker_cpu, 3) if broker_cpu else None,
            "own_cpu_per_gateway_vs_broker": round(own_cpu / broker_cpu, 3) if broker_cpu else None,
            "fleet_cpu_vs_broker": round(gateway_cpu * len(table) / broker_cpu, 2) if broker_cpu else None,
            "subscriber_cpu_s": round(sub1["cpu_s"] - sub0["cpu_s"], 3), "subscriber_messages": sub2["messages"],
            "per_gateway": table}


def _compare(published, received):
    """Counts of one gateway: published (in spool order) against received (in arrival order)."""
    order = {}
    for n, identity in enumerate(published):
        order.setdefault(identity, n)
    seen, duplicated, out_of_order, newest, unknown = set(), 0, 0, -1, 0
    for identity in received:
        if identity in seen:
            duplicated += 1
            continue
        seen.add(identity)
        n = order.get(identity)
        if n is None:
            unknown += 1                     # not a sample this run took (a retained value of another run)
            continue
        if n < newest:
            out_of_order += 1
        newest = max(newest, n)
    delivered = len(seen & set(order))
    return {"published": len(published), "delivered": delivered, "lost": len(set(order) - seen),
            "duplicated": duplicated, "out_of_order": out_of_order, "unknown": unknown}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=50)
    parser.add_argument("--workers", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--outage", type=float, default=10.0)
    parser.add_argument("--mode", choices=sorted(WIRES), default="json")
    parser.add_argument("--poll-ms", type=int, default=2000, help="poll.min_cycle_ms of every gateway")
    parser.add_argument("--keep", help="a directory for the broker's files and the raw records (kept)")
    parser.add_argument("--json", action="store_true", help="one JSON line only, with the per-gateway rows")
    parser.add_argument("--subscriber", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.subscriber:
        subscriber_main(int(args.subscriber[0]), args.subscriber[1])
        return
    if args.worker:
        first, count, port, mode, poll_ms, out = args.worker
        asyncio.run(worker_main(int(first), int(count), int(port), mode, int(poll_ms), out))
        return
    result = run(args.gateways, args.workers, args.seconds, args.outage, args.mode, args.poll_ms, args.keep)
    if args.json:
        print(json.dumps(result, sort_keys=True))
        return
    _print_table(result)
    print(json.dumps(dict((k, v) for k, v in result.items() if k != "per_gateway"), sort_keys=True))


def _print_table(result):
    print("MQTT fleet: %d gateways in %d processes, %s mode, QoS 1, polls every %d ms; %.0f s window, broker "
          "stopped at %.0f s for %.0f s; setup %.0f s, drain %.0f s" % (
              result["gateways"], result["workers"], result["mode"], result["poll_ms"], result["seconds"],
              result["broker_stopped_at_s"], result["outage_s"], result["setup_s"], result["drain_s"]))
    head = ("gateway", "published", "acked", "delivered", "lost", "dup", "order", "dropped", "sessions",
            "peak KiB", "peak smp", "CPU s")
    print("%-10s" % head[0] + "".join("%10s" % h for h in head[1:]))
    for row in result["per_gateway"]:
        print("%-10s" % row["gateway"] + "".join("%10s" % v for v in (
            row["published"], row["acknowledged"], row["delivered"], row["lost"], row["duplicated"],
            row["out_of_order"], row["dropped"], row["sessions"], "%.1f" % (row["peak_spool_bytes"] / 1024.0),
            row["peak_spool_samples"], "%.2f" % row["cpu_s"])))
    t = result["totals"]
    print("total: published %d (%.0f/s), acknowledged %d, delivered %d, lost %d, duplicated %d, out of order %d, "
          "dropped %d" % (t["published"], result["samples_per_s"], t["acknowledged"], t["delivered"], t["lost"],
                          t["duplicated"], t["out_of_order"], t["dropped"]))
    print("peak spool of one gateway: %.1f KiB, %d samples" % (result["peak_spool_bytes_max"] / 1024.0,
                                                                result["peak_spool_samples_max"]))
    print("CPU per gateway %.2f s over the window = %.3f x the broker's %.2f s (reference); without its simulated "
          "meters' threads (%.2f s) %.3f x; the whole fleet %.1f x the broker; subscriber %.2f s" % (
              result["cpu_per_gateway_s"], result["cpu_per_gateway_vs_broker"] or 0, result["broker_cpu_s"],
              result["meters_cpu_per_gateway_s"], result["own_cpu_per_gateway_vs_broker"] or 0,
              result["fleet_cpu_vs_broker"] or 0, result["subscriber_cpu_s"]))


if __name__ == "__main__":
    main()
