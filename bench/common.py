"""Helpers shared by the benchmarks: the reference site, running a gateway on it."""

import os
import statistics

from board.sim import load_topology_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(REPO, "board", "topologies", "reference32.json")


def load_reference():
    return load_topology_file(REFERENCE)


def free_port(kind=None):
    """A free loopback port (TCP by default, UDP with kind=socket.SOCK_DGRAM)."""
    import socket
    with socket.socket(socket.AF_INET, kind or socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values, p):
    data = sorted(values)
    if not data:
        return float("nan")
    return data[min(len(data) - 1, int(p * len(data)))]


def mean(values):
    return statistics.fmean(values) if values else float("nan")
