"""The firewall's cost per request (issue 15): ``Firewall.admit`` against a no-op call, in the same run.

Every request of every service asks ``admit`` (daemon/security/firewall.py), so its cost is added to each
one. Measured in-process with the gateway's own settings object, in four states: the firewall off (one
setting read), on with one client admitted, on with a client banned (refused), on with the whitelist's ten
rules and the client matching the last one; and with 4096 clients tracked (the bound) cycling. Each figure
is the median of 7 repetitions of N calls, in ns per call, and its ratio against a no-op call of the same
shape (a Python function taking the same four arguments and returning True) timed in the same run.

    PYTHONPATH=. .venv/bin/python -m bench.firewall
"""

import os
import platform
import statistics
import sys
import time

from daemon.security.firewall import MAX_CLIENTS, MAX_RULES, Firewall
from daemon.state.settings import Settings

N = 200_000
REPEATS = 7


def noop(ip, protocol, port, size=0):
    return True


def per_call(function, args_cycle):
    """Median ns per call of ``function`` over REPEATS runs of N calls (arguments cycling through ``args_cycle``)."""
    count = len(args_cycle)
    runs = []
    for _ in range(REPEATS):
        start = time.perf_counter_ns()
        for i in range(N):
            function(*args_cycle[i % count])
        runs.append((time.perf_counter_ns() - start) / N)
    return statistics.median(runs)


def main():
    big = {"firewall.max_requests_per_s": 100000, "firewall.max_bandwidth_bps": 1000000000}
    cases = []
    one = [("192.0.2.10", "modbus", 502, 12)]
    many = [("10.0.%d.%d" % (i // 256, i % 256), "modbus", 502, 12) for i in range(MAX_CLIENTS)]
    rules = [{"name": "r%d" % i, "mac": "*", "ip": "10.%d.*.*" % i, "protocols": ["modbus"], "ports": [502]}
             for i in range(MAX_RULES)]
    last_rule_client = [("10.%d.0.1" % (MAX_RULES - 1), "modbus", 502, 12)]

    off = Firewall(Settings(None, {"firewall.enabled": False}))
    cases.append(("firewall off", off.admit, one))
    admitted = Firewall(Settings(None, dict(big)))
    cases.append(("one client admitted", admitted.admit, one))
    banned = Firewall(Settings(None, {"firewall.max_requests_per_s": 10}))
    while banned.admit(*one[0]):
        pass
    cases.append(("one client banned", banned.admit, one))
    listed = Firewall(Settings(None, dict(big, **{"firewall.whitelist.enabled": True})))
    listed.set_rules(rules)
    cases.append(("whitelist, 10th rule matches", listed.admit, last_rule_client))
    crowded = Firewall(Settings(None, dict(big)))
    cases.append(("4096 clients cycling", crowded.admit, many))

    reference = per_call(noop, one)
    print("firewall admit() bench: %d calls x %d, median; Python %s, %s, %d CPUs" % (
        N, REPEATS, platform.python_version(), platform.machine(), os.cpu_count()))
    print("reference: no-op call with the same arguments %.0f ns" % reference)
    print("%-32s %10s %8s" % ("case", "ns/call", "ratio"))
    for name, function, args in cases:
        cost = per_call(function, args)
        print("%-32s %10.0f %8.1f" % (name, cost, cost / reference))
    print("counts (crowded): %s" % dict(crowded.counts), file=sys.stderr)


if __name__ == "__main__":
    main()
