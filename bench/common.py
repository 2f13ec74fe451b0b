"""Helpers shared by the benchmarks: the reference site, running a gateway on it."""

import json
import os
import statistics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(REPO, "board", "topologies", "reference32.json")


def load_reference():
    with open(REFERENCE, encoding="utf-8") as handle:
        return json.load(handle)


def devices_of(topology):
    """Topology Devices for every simulated meter (detection is not what we measure)."""
    from daemon import catalogue
    from daemon.topology import Device
    devices = []
    for bus, spec in topology["buses"].items():
        for meter in spec["meters"]:
            loads = None
            if meter.get("loads") is not None:
                loads = [{"load": n, "network": meter.get("network", "3P+N"), "name": "Load %d" % n}
                         for n in range(1, meter["loads"] + 1)]
            catalogue.product(meter["reference"])
            devices.append(Device(bus, meter["address"], meter["reference"], meter["netid"], loads=loads))
    return devices


def percentile(values, p):
    data = sorted(values)
    if not data:
        return float("nan")
    return data[min(len(data) - 1, int(p * len(data)))]


def mean(values):
    return statistics.fmean(values) if values else float("nan")
