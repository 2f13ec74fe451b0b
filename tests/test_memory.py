"""Argon2id's working memory goes back to the system after each password check (daemon/memory.py).

Run in a child process (a fresh heap): after one hash in the main thread (glibc then raises its threshold),
two executor-like threads check passwords; the resident set after the checks is compared with before. Without the fixed mmap threshold glibc keeps one 19 MiB block per
thread's arena (+38 MB measured); with it the growth is a few hundred kilobytes.
"""

import subprocess
import sys
import textwrap

from conftest import REPO

CHILD = textwrap.dedent("""
    import sys, concurrent.futures
    from daemon.memory import return_large_blocks
    from daemon.security import accounts
    fixed = sys.argv[1] == "fixed"
    if fixed:
        assert return_large_blocks()
    def rss_kb():
        return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS"))
    stored = accounts._hash("Soak-bench-2026!")
    before = rss_kb()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: accounts._matches(stored, "Soak-bench-2026!"), range(8)))
        print(rss_kb() - before)
""")

GROWTH_LIMIT_KB = 5 * 1024          # the soak bench's RSS target


def grown_kb(mode):
    out = subprocess.run([sys.executable, "-c", CHILD, mode], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def test_password_checks_leave_the_resident_set_where_it_was():
    assert grown_kb("fixed") < GROWTH_LIMIT_KB


def test_without_the_fixed_threshold_the_heap_keeps_argon2s_blocks():
    """The control: the measurement sees what the fix removes (glibc retains at least one 19 MiB block)."""
    assert grown_kb("glibc-default") > GROWTH_LIMIT_KB
