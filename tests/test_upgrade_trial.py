"""A package of this very tree installed into slot B, started by the launcher as systemd would, kept once
healthy; and a trial that is not healthy in time stopped with its exit code and rolled back (issue 15).

The daemon runs from the slot's copy (the launcher sets PYTHONPATH to the slot and runs it outside the
repository), on the simulated board with the demo topology, as in production but on loopback ports.
"""

import io
import os
import subprocess
import sys
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import DEMO_TOPOLOGY, REPO, commission_accounts
from daemon.upgrade import package, trial
from daemon.upgrade.slots import Slots
from daemon.version import VERSION
from tools.package import tracked_files


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """An installation root whose slot B holds a signed package of the working tree, on trial."""
    root = tmp_path_factory.mktemp("install")
    key = Ed25519PrivateKey.generate()
    manifest = package.manifest_of(REPO, tracked_files(REPO), "99.0.0", VERSION)
    data = io.BytesIO()
    package.build(data, REPO, manifest, key)
    data.seek(0)
    manifest, staging = package.stage(data, key.public_key(), VERSION, str(root))
    Slots(str(root)).install(staging, manifest)
    (root / "slots" / "A").mkdir()                         # the installed version (its files do not matter here)
    return root


def on_trial(root):
    """Slot B just installed, A active: what ``install`` leaves (each test starts from it)."""
    slots = Slots(str(root))
    state = slots.state()
    state.update(active="A", trial="B", trial_boots=0, previous=None)
    slots._save(state)
    return slots


def launch(root, state, *settings):
    """The launcher as systemd runs it, from outside the repository; (process, its log file)."""
    log = open(state.parent / ("%s.log" % state.name), "w+")
    commission_accounts(str(state))
    args = [sys.executable, "-m", "daemon.upgrade.launch", "--root", str(root), "--",
            "--board", "sim", "--topology", DEMO_TOPOLOGY, "--state-dir", str(state),
            "--http-port", "0", "--https-port", "0", "--set", "http.bind=127.0.0.1", "--modbus-port", "0", "--set", "modbus.bind=127.0.0.1",
            "--log-level", "warning"]
    for setting in settings:
        args += ["--set", setting]
    env = dict(os.environ, PYTHONPATH=REPO)           # the launcher's own copy; the daemon gets the slot's
    return subprocess.Popen(args, cwd=str(state.parent), stdout=log, stderr=subprocess.STDOUT, env=env), log


def wait_exit(proc, guard):
    try:
        return proc.wait(guard)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("the daemon did not stop within %.0f s" % guard) from None


def test_the_trial_slot_runs_the_new_copy_and_is_kept_once_healthy(installed, tmp_path):
    root = installed
    slots = on_trial(root)
    proc, log = launch(root, tmp_path / "state", "upgrade.healthy_after_s=5")
    try:
        end = time.monotonic() + 90
        while slots.state()["active"] != "B":
            assert proc.poll() is None, open(log.name).read()
            assert time.monotonic() < end, "slot B never reported healthy:\n" + open(log.name).read()
            time.sleep(0.5)
        with open("/proc/%d/environ" % proc.pid, "rb") as handle:
            environ = dict(item.split(b"=", 1) for item in handle.read().split(b"\0") if b"=" in item)
        assert environ[b"PYTHONPATH"] == str(root / "slots" / "B").encode()       # the slot's copy runs
        assert environ[b"OPENM70_TRIAL"] == b"1" and proc.poll() is None          # kept running once healthy
        assert slots.describe() == {"active": "B", "trial": None, "slots": {"A": None, "B": "99.0.0"}}
    finally:
        proc.terminate()
        assert wait_exit(proc, 30) == 0
    assert "slot B (trial)" in open(log.name).read() and "slot B kept" in open(log.name).read()
    assert slots.boot() == ("B", "active")


def test_a_trial_not_healthy_in_time_stops_with_its_code_and_the_next_start_rolls_back(installed, tmp_path):
    root = installed
    slots = on_trial(root)
    proc, log = launch(root, tmp_path / "state", "upgrade.healthy_after_s=3600", "upgrade.trial_timeout_s=5")
    assert wait_exit(proc, 90) == trial.TRIAL_FAILED_EXIT, open(log.name).read()
    text = open(log.name).read()
    assert "not healthy within 5 s" in text and "Traceback" not in text
    assert slots.boot() == ("A", "rolled back")
    assert slots.state()["active"] == "A"
