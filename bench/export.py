"""Export bench (issue 16): a year of 15-minute data of the reference site exported as EMS files over FTP.

    PYTHONPATH=. .venv/bin/python -m bench.export [--short] [--days N] [--json] [--switch-interval S]

The 32-meter reference site (board/topologies/reference32.json) with every series the gateway would store for
it, named as daemon/runtime/curves.py names them (kind/uid/load/key): the consumption counters of each circuit
(the keys the poll plan reads, daemon/runtime/poller.py), the load curves of the meters that keep them, the
trend items each simulated meter records (688 series). A year of 15-minute points of each is written straight
into a TimeSeriesStore in a child process (no bus polling for a year); then a Gateway on the simulated
reference site opens that store (its buses polling as usual, curve downloads not started so that the store
holds exactly the year written) and its ExportService (caller "push") runs the real path for each data type:
Collector.render (EMS) of every device, Spool.put, and the Sender delivering through the FTP transport to a
pyftpdlib server in a CHILD process on loopback (so the server does not compete for this interpreter's lock).

Printed, with the reference measured in the same run (the same files stored again with a bare ftplib session
from a thread of this process, to the same server, while the gateway keeps polling), per stage: render+spool
(ExportService.export of each data type, the sender's background task stopped), deliver (one Sender.deliver
round), the whole path and the raw upload:

* seconds, files/s and MB/s, and the ratio "our stage / raw FTP upload of the same bytes" (time: > 1 is slower);
* event-loop lag p50/p99/max (daemon/looplag.py on a 20 ms timer), with polling alone before as the reference;
* bus errors (timeouts, bad CRCs, bad frames) counted during the stage: the simulated meters cause none;
* bytes per sample: file bytes / data rows (a row is one point of one series);
* memory: RSS high-water (getrusage; the store was filled by another process) before and after the export, and
  tracemalloc's peak over the whole path run again for the device with the most rows (apart: tracemalloc makes
  the render about 10x slower).

``--short``: a month of 4 meters (one I-35, U-30, A-40, E23: both buses, every data type), as
tests/test_bench_export.py runs it. ``--json``: the figures as one JSON object. Every check that could fail
(every file delivered, every point exported once, nothing dropped from the spool, no failed delivery round)
is printed as PASS/FAIL and makes the exit status 1.
"""

import argparse
import asyncio
import collections
import ftplib
import json
import logging
import math
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import REPO, load_reference, percentile
from board.sim import SimBoard
from core import catalogue, registry
from core.curve_windows import LC_WINDOW, POWER_TYPES
from daemon.gateway import Gateway
from daemon.looplag import LoopLagMonitor
from daemon.runtime.curves import series_name
from daemon.runtime.poller import DeviceState
from daemon.security.rights import Caller
from daemon.state.topology import devices_from_simulation
from daemon.storage.format import Geometry
from daemon.storage.store import CONSUMPTION_KEYS, Series, TimeSeriesStore
from outbound.export.collect import DATA_TYPES
from outbound.export.service import ExportService

PERIOD_S = 900                                  # 15-minute points
DAY = 86400
FULL_DAYS, SHORT_DAYS = 365, 31
SHORT_METERS = ("I-35", "U-30", "A-40", "E23")  # the first of each: both buses, every data type
USER, PASSWORD = "bench", "bench-export"
FOLDER, REFERENCE_FOLDER = "exports", "reference"
BLOCK = 64 * 1024                               # what our transport sends per write (transports.BLOCK)
LAG_INTERVAL_S = 0.02
DELIVERY_GUARD_S = 900.0
SETTINGS = {"firewall.enabled": False, "storage.consumption_period_min": 15,
            "push.protocol": "ftp", "push.host": "127.0.0.1", "push.user": USER, "push.password": PASSWORD,
            "push.folder": FOLDER, "push.format": "ems", "push.site_name": "BenchSite", "push.server_name": "GW32",
            "push.spool_mb": 1024}
MB = 1e6


# ---------------------------------------------------------------- the site and its series

def site_topology(short):
    """The reference topology, or (short) its first meter of each of SHORT_METERS."""
    topology = load_reference()
    if not short:
        return topology
    seen = set()
    for spec in topology["buses"].values():
        kept = []
        for meter in spec["meters"]:
            if meter["reference"] in SHORT_METERS and meter["reference"] not in seen:
                seen.add(meter["reference"])
                kept.append(meter)
        spec["meters"] = kept
    return topology


def site_series(topology):
    """[(series name, counter, magnitude)] of every series the gateway stores for ``topology``: what
    daemon/runtime/curves.py would write (consumption of the keys the poll plan reads, load curves and trend
    items of the meters whose product keeps those caches). ``magnitude``: a plausible size for the values."""
    board = SimBoard(topology=topology)
    out = []
    for device in devices_from_simulation(topology):
        nominal = _nominal_w(topology, device.address)
        supported = collections.defaultdict(set)
        for read in DeviceState(device).plan:
            for load, key, *_rest in read.items:
                supported[load].add(key)
        for load in device.load_numbers():
            for key in CONSUMPTION_KEYS:
                if key in supported[load]:
                    out.append((series_name("consumption", device.uid, load, key), True,
                                _magnitude(key, nominal) * PERIOD_S / 3600.0))
        row = catalogue.product(device.reference)
        kinds = set(row[catalogue.CURVES]) if LC_WINDOW.get(row[catalogue.PROFILE]) else set()
        if "load_curve" in kinds:
            for load in [n for n in device.load_numbers() if n >= 1]:
                for key in POWER_TYPES:
                    out.append((series_name("load_curve", device.uid, load, key), False, _magnitude(key, nominal)))
        if "history" in kinds:
            for key, load in board.find_meter(address=device.address).curves.trend_items:
                out.append((series_name("history", device.uid, load, key), False, _magnitude(key, nominal)))
    return out


def _nominal_w(topology, address):
    for spec in topology["buses"].values():
        for meter in spec["meters"]:
            if meter["address"] == address:
                return float(meter.get("nominal_w", 20000))
    return 20000.0


# a plausible value per unit (fraction of the nominal power for powers), so the files hold realistic digits
UNIT_SIZE = {"V": 230.0, "Hz": 50.0, "A": None, "": 0.92}
POWER_SHARE = {"ea_pos": 0.5, "ea_neg": 0.01, "er_pos": 0.2, "er_neg": 0.02, "es": 0.55, "lc_p_pos": 0.5,
               "lc_p_neg": 0.01, "lc_q_pos": 0.2, "lc_q_neg": 0.02, "lc_s": 0.55, "p": 0.5, "q": 0.2, "s": 0.55}


def _magnitude(key, nominal):
    if key in POWER_SHARE:
        return nominal * POWER_SHARE[key]
    unit = registry.get(key)[registry.UNIT]
    if unit == "A":
        return nominal / (3 * 230.0) * 0.5
    if unit == "V" and key.startswith("u"):
        return 400.0
    if key == "vn":
        return 2.0
    return UNIT_SIZE.get(unit, 100.0)


# ---------------------------------------------------------------- the store (child process)

def store_geometry(series_count, days):
    return Geometry(series_count + 8, days * DAY // PERIOD_S)


def fill_store(directory, series, start, points, geometry):
    """Write ``points`` 15-minute points of every series from ``start`` (runs in a child process): a daily
    profile times a per-series size; counters as whole Wh with their index given at each chunk's first point
    (the store rebuilds indexes from it, daemon/storage/store.py)."""
    store = TimeSeriesStore(directory, geometry)
    made = [Series(name, PERIOD_S, counter) for name, counter, _size in series]
    sizes = [size for _name, _counter, size in series]
    gauges = [i for i, (_n, counter, _s) in enumerate(series) if not counter]
    counters = [i for i, (_n, counter, _s) in enumerate(series) if counter]
    gauge_series = [made[i] for i in gauges]
    counter_series = [made[i] for i in counters]
    indexes = {i: 1.0e6 * (1 + i % 13) for i in counters}
    profile = [0.55 + 0.45 * math.sin(math.pi * (q - 24) / 48.0) ** 2 for q in range(96)]
    chunk_points = geometry.chunk_points
    for k in range(points):
        ts = start + k * PERIOD_S
        shape = profile[k % 96] * (1.0 + 0.03 * ((k * 7) % 11))
        store.add_row(gauge_series, ts, [round(sizes[i] * shape * (1 + (i % 7) / 50.0), 3) for i in gauges])
        energies = [float(int(sizes[i] * shape)) for i in counters]
        for i, energy in zip(counters, energies, strict=True):
            indexes[i] += energy
        if k == 0 or (ts // PERIOD_S) % chunk_points == 0:
            for series_, i, energy in zip(counter_series, counters, energies, strict=True):
                store.add(series_, ts, energy, index=indexes[i])
        else:
            store.add_row(counter_series, ts, energies)
        if k % 96 == 95:
            store.commit()
    store.close()


def filled_store(directory, series, start, points, geometry):
    """fill_store in a child process (its memory is not this process's high-water); seconds it took."""
    started = time.perf_counter()
    child = multiprocessing.get_context("spawn").Process(target=fill_store,
                                                         args=(directory, series, start, points, geometry))
    child.start()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError("filling the store failed (exit %s)" % child.exitcode)
    return time.perf_counter() - started


# ---------------------------------------------------------------- the FTP server (child process)

def serve_ftp(root):
    """pyftpdlib on 127.0.0.1 (an ephemeral port, printed), plain FTP, one user; until killed."""
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer
    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
    authorizer = DummyAuthorizer()
    authorizer.add_user(USER, PASSWORD, root, perm="elradfmwMT")
    handler = type("BenchFtpHandler", (FTPHandler,), {"authorizer": authorizer, "timeout": 60,
                                                      "banner": "bench FTP server ready"})
    server = FTPServer(("127.0.0.1", 0), handler)
    print(server.address[1], flush=True)
    server.serve_forever()


class FtpChild:
    """The FTP server in its own process (``python -m bench.export --ftp-server ROOT``)."""

    def __init__(self, root):
        self.root = root

    def __enter__(self):
        os.makedirs(self.root, exist_ok=True)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO] + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.export", "--ftp-server", self.root], cwd=REPO,
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.proc.kill()
            raise RuntimeError("the FTP server did not start")
        self.port = int(line)
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait(10)
        self.proc.stdout.close()

    def files(self, folder):
        """[(name, path, size)] of the files stored under ``folder``, by name."""
        directory = os.path.join(self.root, folder)
        if not os.path.isdir(directory):
            return []
        names = sorted(os.listdir(directory))
        return [(n, os.path.join(directory, n), os.path.getsize(os.path.join(directory, n))) for n in names]


def raw_upload(port, files):
    """The reference: ``files`` stored with a bare ftplib session (passive, STOR only), blocking."""
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", port, timeout=60)
    try:
        ftp.login(USER, PASSWORD)
        ftp.mkd(REFERENCE_FOLDER)
        ftp.cwd(REFERENCE_FOLDER)
        for name, path, _size in files:
            with open(path, "rb") as handle:
                ftp.storbinary("STOR " + name, handle, blocksize=BLOCK)
    finally:
        ftp.quit()


# ---------------------------------------------------------------- the measurement

async def _polled_twice(gateway):
    while not gateway.pollers or min(p.cycles for p in gateway.pollers.values()) < 2:
        await asyncio.sleep(0.05)


async def _not_started():
    """The curve service's start, replaced: no download may add points of another period to the year."""


def _lag(monitor):
    """The lag samples (ms) since the last call."""
    samples = [1000.0 * lag for lag in monitor.samples]
    monitor.reset()
    return samples


def bus_errors(gateway):
    """Timeouts, bad CRCs and bad frames counted by every bus so far (the simulated meters cause none: a rise
    is the loop stalled past a meter's answer, as bench/soak.py's FCE)."""
    return sum(c.timeouts + c.crc_errors + c.frame_errors for engine in gateway.engines.values()
               for c in engine.counters.values())


def lag_summary(samples):
    return {"p50_ms": percentile(samples, 0.50), "p99_ms": percentile(samples, 0.99),
            "max_ms": max(samples) if samples else float("nan"), "samples": len(samples)}


async def run_export(topology, state, geometry, server, points_expected):
    """The gateway on the filled store; the export's stages; the raw upload; the memory pass. The figures."""
    out = {}
    settings = dict(SETTINGS, **{"push.port": server.port})
    gateway = Gateway(SimBoard(topology=topology), state, settings, storage_geometry=geometry)
    gateway.curves.start = _not_started
    service = ExportService(gateway.door(Caller("push")))
    gateway.services.append(service)
    await gateway.start()
    monitor = LoopLagMonitor(interval=LAG_INTERVAL_S, window=10 ** 6)
    try:
        await gateway.topology.replace(devices_from_simulation(topology))
        await _polled_twice(gateway)
        catalogue_ = await service.door.series_catalogue()
        out["series"] = len(catalogue_)
        # the sender's background task stopped: its round (Sender.deliver) is run below as a stage of its own
        await service.sender.stop()
        await asyncio.sleep(2.0)                       # the start's own work (TLS keys, accounts) out of the way
        monitor.start()
        errors = bus_errors(gateway)
        await asyncio.sleep(3.0)                       # polling alone: the lag reference
        out["lag_polling"] = _lag(monitor)
        out["errors_polling"], errors = bus_errors(gateway) - errors, bus_errors(gateway)

        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        now = service.door.time()
        started = time.perf_counter()
        files = []
        for data_type in DATA_TYPES:                   # render, spool, commit: ExportService.export
            files.extend(await service.export(data_type, now))
        rendered = time.perf_counter()
        out["lag_render"] = _lag(monitor)
        out["errors_render"], errors = bus_errors(gateway) - errors, bus_errors(gateway)
        out["delivered_rounds"] = 0
        while service.spool.count() and out["delivered_rounds"] < 3:
            await service.sender.deliver()             # one round: the spool in order through one session
            out["delivered_rounds"] += 1
        finished = time.perf_counter()
        out["lag_deliver"] = _lag(monitor)
        out["errors_deliver"], errors = bus_errors(gateway) - errors, bus_errors(gateway)
        out["rss_before_kib"] = rss_before
        out["rss_peak_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out["render_s"], out["deliver_s"] = rendered - started, finished - rendered
        out["files"] = len(files)
        out["by_type"] = {t: sum(1 for f in files if f.data_type == t) for t in DATA_TYPES}
        out["rows"] = sum(f.rows for f in files)
        out["rows_expected"] = points_expected
        out["delivered"] = service.sender.delivered
        out["failures"] = service.sender.failures
        out["last_error"] = str(service.sender.last_error) if service.sender.last_error else None
        out["dropped"] = service.spool.dropped
        out["waiting"] = service.spool.count()
        received = server.files(FOLDER)
        out["received"] = len(received)
        out["received_names"] = sorted(name for name, _p, _s in received) == sorted(f.name for f in files)
        out["bytes"] = sum(size for _n, _p, size in received)

        started = time.perf_counter()
        await asyncio.to_thread(raw_upload, server.port, received)
        out["raw_s"] = time.perf_counter() - started
        out["lag_raw"] = _lag(monitor)
        out["errors_raw"] = bus_errors(gateway) - errors
        out["raw_bytes"] = sum(size for _n, _p, size in server.files(REFERENCE_FOLDER))
        await monitor.stop()
        out.update(await memory_pass(service, catalogue_, files))
    finally:
        await gateway.stop()
    return out


async def memory_pass(service, catalogue_, files):
    """tracemalloc's peak over the same path for the device with the most rows (its files rendered again
    from its oldest point, spooled and delivered), outside the timed run: tracemalloc makes Python code
    about 10x slower."""
    rows = collections.Counter()
    for f in files:
        rows[f.device] += f.rows
    device = rows.most_common(1)[0][0]
    collector = service.collector
    saved = dict(collector.cursors)
    ends = {}
    for entry in catalogue_:
        ends[entry["device"]] = max(ends.get(entry["device"], 0), entry["newest"] + entry["period_s"])
    collector.cursors = {}
    for data_type in DATA_TYPES:                        # every other device: nothing new to render
        for uid, end in ends.items():
            if uid != device:
                collector.cursors["%s/%s" % (data_type, uid)] = end
    now = service.door.time() + 1                       # other file names than the timed run's
    tracemalloc.start()
    try:
        made = []
        for data_type in DATA_TYPES:
            made.extend(await service.export(data_type, now))
        while service.spool.count() and service.sender.failures == 0:
            await service.sender.deliver()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        collector.cursors = saved
    return {"memory_device": device, "memory_rows": sum(f.rows for f in made), "memory_files": len(made),
            "peak_traced": peak}


def measure(short=False, days=None, workdir=None):
    days = days or (SHORT_DAYS if short else FULL_DAYS)
    topology = site_topology(short)
    series = site_series(topology)
    points = days * DAY // PERIOD_S
    end = int(time.time()) // PERIOD_S * PERIOD_S
    start = end - points * PERIOD_S
    geometry = store_geometry(len(series), days)
    base = tempfile.mkdtemp(prefix="bench-export-", dir=workdir)
    try:
        state = os.path.join(base, "state")
        fill_s = filled_store(os.path.join(state, "tsdb"), series, start, points, geometry)
        with FtpChild(os.path.join(base, "ftp")) as server:
            out = asyncio.run(run_export(topology, state, geometry, server, len(series) * points))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    meters = sum(len(spec["meters"]) for spec in topology["buses"].values())
    out.update(days=days, meters=meters, series_written=len(series), points=points, fill_s=fill_s,
               store_bytes=geometry.file_size)
    out["checks"] = checks(out)
    return out


def checks(r):
    """(name, passed) of what must hold whatever the machine's speed."""
    return [("every series in the store", r["series"] == r["series_written"]),
            ("every point exported once", r["rows"] == r["rows_expected"]),
            ("every file delivered", r["delivered"] == r["files"] == r["received"] and r["waiting"] == 0),
            ("names on the server are the files made", r["received_names"]),
            ("no delivery round failed", r["failures"] == 0),
            ("nothing dropped from the spool", r["dropped"] == 0),
            ("reference uploaded the same bytes", r["raw_bytes"] == r["bytes"])]


def report(r):
    mb = 1e6
    mib = 1024.0
    raw_s = r["raw_s"]
    total_s = r["render_s"] + r["deliver_s"]
    lines = ["export bench: %d days of 15-min data, %d meters, %d series x %d points = %d samples; EMS over plain "
             "FTP to pyftpdlib in a child process on loopback; x86_64, %d CPUs"
             % (r["days"], r["meters"], r["series_written"], r["points"], r["rows_expected"], os.cpu_count()),
             "store (%.0f MB) filled in %.1f s by a child process; %d files: %s"
             % (r["store_bytes"] / mb, r["fill_s"], r["files"],
                ", ".join("%s %d" % (t, n) for t, n in r["by_type"].items())),
             "reference: the same %d files (%.1f MB) stored with a bare ftplib session (STOR, %d KiB blocks) from a "
             "thread of this process, the gateway polling meanwhile" % (r["received"], r["raw_bytes"] / mb,
                                                                        BLOCK // 1024),
             "%-30s %8s %8s %8s %8s %8s %8s %8s %7s" % ("stage", "s", "files/s", "MB/s", "/ raw", "lag p50", "p99",
                                                        "max ms", "bus err")]
    rows = [("polling alone (lag reference)", None, r["lag_polling"], r["errors_polling"]),
            ("render+spool (ExportService)", r["render_s"], r["lag_render"], r["errors_render"]),
            ("deliver (Sender, FTP)", r["deliver_s"], r["lag_deliver"], r["errors_deliver"]),
            ("whole export path", total_s, r["lag_render"] + r["lag_deliver"],
             r["errors_render"] + r["errors_deliver"]),
            ("raw ftplib upload (reference)", raw_s, r["lag_raw"], r["errors_raw"])]
    for label, seconds, samples, errors in rows:
        lag = lag_summary(samples)
        timing = ("%8s %8s %8s %8s" % ("", "", "", "") if seconds is None else "%8.2f %8.2f %8.2f %8.2f" % (
            seconds, r["files"] / seconds, r["bytes"] / mb / seconds, seconds / raw_s))
        lines.append("%-30s %s %8.1f %8.1f %8.1f %7d" % (label, timing, lag["p50_ms"], lag["p99_ms"], lag["max_ms"],
                                                          errors))
    lines += ["bytes per sample: %.2f (file bytes / data rows); %.0f samples/s through the whole path"
              % (r["bytes"] / float(r["rows"] or 1), r["rows"] / total_s),
              "memory: RSS high-water %.1f MiB after the export (%.1f MiB before it); tracemalloc peak %.2f MiB over "
              "the whole path again for %s (%d files, %d rows)"
              % (r["rss_peak_kib"] / mib, r["rss_before_kib"] / mib, r["peak_traced"] / mib / mib,
                 r["memory_device"], r["memory_files"], r["memory_rows"]),
              "loop lag: daemon/looplag.py, a %d ms timer; samples: %s"
              % (LAG_INTERVAL_S * 1000, ", ".join("%s %d" % (label.split(" (")[0], len(samples))
                                                 for label, _s, samples, _e in rows))]
    for name, passed in r["checks"]:
        lines.append("%-40s %s" % (name, "PASS" if passed else "FAIL"))
    if r["last_error"]:
        lines.append("last delivery error: %s" % r["last_error"])
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--short", action="store_true", help="a month of 4 meters")
    parser.add_argument("--days", type=int, default=None, help="days of data (default 365, --short 31)")
    parser.add_argument("--dir", default=None, help="where the store and the server's files go (default: tmp)")
    parser.add_argument("--json", action="store_true", help="the figures as one JSON object")
    parser.add_argument("--switch-interval", type=float, default=None, metavar="S",
                        help="sys.setswitchinterval for this process (default Python's 0.005 s): how long the "
                             "render thread may hold the interpreter lock while the loop waits for it")
    parser.add_argument("--ftp-server", metavar="ROOT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ftp_server:
        serve_ftp(args.ftp_server)
        return 0
    logging.basicConfig(level=logging.WARNING)
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    r = measure(short=args.short, days=args.days, workdir=args.dir)
    print(json.dumps(r, sort_keys=True) if args.json else report(r))
    return 0 if all(passed for _name, passed in r["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
