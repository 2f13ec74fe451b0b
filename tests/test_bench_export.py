"""The export bench's short version (bench/export.py --short: a month of 4 meters, EMS over FTP to a server in a
child process) runs, and its count-based checks hold: every stored point exported once, every file delivered
under its name, nothing dropped, the reference uploaded the same bytes. Its timings and loop lag are the bench's
to print, not asserted here."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_short_export_bench_delivers_every_point_once():
    env = dict(os.environ, PYTHONPATH=REPO)
    done = subprocess.run([sys.executable, "-m", "bench.export", "--short", "--json"], cwd=REPO, env=env, check=False,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    figures = json.loads(done.stdout)
    assert [name for name, passed in figures["checks"] if not passed] == [], figures["last_error"]
    # one I-35, U-30, A-40, E23: energy of the I-35, A-40, E23; histories of the first three; load curves of two
    assert figures["by_type"] == {"energy": 3, "measurements": 3, "load_curves": 2}
    assert figures["rows"] == figures["series_written"] * figures["points"] == 76 * 31 * 96
