"""The soak bench's short version (bench/soak.py --short): every attack of issue 13, one after another, on one
daemon in its own process, and the count- and byte-based targets of each row.

What is asserted per attack: the daemon is alive; its descriptors are back to
their count (within the bench's settle guard); its RSS after is at most 5 MB
above before; it wrote at most 100 KB of log; no meter's timeout counter rose
(the simulated meters never time out, so a rise is a false "Modbus slave
timeout"); what the gateway had to refuse was not applied (absurd time
synchronisations). The bench also counts bad CRCs and frames (FCE) but this
test does not assert them: the simulated meter writes an answer's first byte,
sleeps the wire time, then the rest (board/simbus.py), so when its thread is
not scheduled in time (a busy machine, or the daemon's loop holding the GIL)
the master sees a gap and a bad CRC that a real meter would not cause. Loop lag, latencies and the poll-cycle ratio are printed
by the bench, not asserted here (performance is the bench's, tests bound
counts). A failing row is printed with its failure: it says which defect it
found.
"""

import pytest

from bench import soak

# Run alone, after the parallel part of the suite (Makefile): its rows compare the daemon's figures with a
# reference measured in the same run, which another worker's load would skew.
pytestmark = pytest.mark.alone

RSS_SLACK_MB = 5
LOG_BUDGET = 100 * 1024


@pytest.fixture(scope="module")
def soak_run(tmp_path_factory):
    """The short bench run once: (the bench, its daemon still running, for a row measured again; rows by name)."""
    bench = soak.Bench(short=True, workdir=str(tmp_path_factory.mktemp("soak")), lag=False)
    bench.start()
    try:
        rows = {}
        for row in bench.run():
            print(soak.format_row(row), "|", row["note"])
            rows[row["attack"]] = row
        yield bench, rows
    finally:
        bench.stop()


def count_targets(row):
    """The count- and byte-based targets this row missed, each with its figures."""
    missed = []
    if not row["alive"]:
        missed.append("the daemon died")
    before, after, _peak = row["rss_mb"]
    if after > before + RSS_SLACK_MB:
        missed.append("RSS %.1f MB -> %.1f MB (more than +%d MB)" % (before, after, RSS_SLACK_MB))
    if row["fds"][1] > row["fds"][0]:
        missed.append("descriptors %d -> %d, not back" % (row["fds"][0], row["fds"][1]))
    if row["log_bytes"] > LOG_BUDGET:
        missed.append("%d log bytes (budget %d)" % (row["log_bytes"], LOG_BUDGET))
    if row["applied"]:
        missed.append("the gateway applied %d inputs it had to refuse" % row["applied"])
    if row["false_timeouts"] is None or row["false_timeouts"] > 0:
        missed.append("%s false meter timeouts" % row["false_timeouts"])
    return missed


def test_the_quiet_reference_keeps_every_count(soak_run):
    """Light clients only: every count-based target holds, and every light client was answered every time,
    so a row's failure below is its attack's, not the harness's."""
    row = soak_run[1]["(quiet reference)"]
    assert count_targets(row) == [], soak.format_row(row)
    for kind, probe in row["probes"].items():
        assert probe["asked"] > 0 and probe["failures"] == 0, (kind, probe)


@pytest.mark.parametrize("name", [name for name, *_ in soak.ATTACKS])
def test_an_attack_leaves_the_daemon_as_it_found_it(soak_run, name):
    bench, rows = soak_run
    row = rows[name]
    assert row["sent"] > 0, row
    missed = count_targets(row)
    if missed and all("false meter timeouts" in m or m.startswith("descriptors") for m in missed):
        # A meter also times out when the machine does not run the daemon for longer than the meter timeout
        # (five other test runs share these two cores). The attack is measured once more: an attack that
        # causes timeouts causes them again; a busy moment of the machine seldom comes back at the same place.
        # Descriptors too (a busy machine may hold a socket past SETTLE_S; the kernel's late connections after a
        # listen-queue overflow are waited for by bench/soak.py settle). A leak the attack causes every time is
        # found again here.
        attack, size = next((attack, short) for n, attack, _full, short in soak.ATTACKS if n == name)
        row = bench.measure(name, attack, size)
        print(soak.format_row(row), "|", row["note"], "(measured again)")
        missed = count_targets(row)
    assert missed == [], "%s\n%s" % (soak.format_row(row), row["note"])

