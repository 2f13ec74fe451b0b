"""The installation on the Pi (issue 15), into a test folder: the layout, the unit that systemd itself accepts
(``systemd-analyze verify``), and the installed launcher starting the daemon from slot A as the unit would."""

import os
import re
import shutil
import subprocess
import sys

from conftest import DEMO_TOPOLOGY, commission_accounts
from daemon.upgrade.slots import Slots
from daemon.version import VERSION
from protocols import udpsock
from tools import install


def test_make_install_layout_and_a_unit_systemd_accepts(tmp_path):
    prefix, state, unit = tmp_path / "opt", tmp_path / "state", tmp_path / "open-m70.service"
    sysctl = tmp_path / "sysctl.d" / "60-open-m70.conf"
    install.install(prefix=str(prefix), state=str(state), python=sys.executable, system=False, unit_path=str(unit),
                    sysctl_path=str(sysctl))
    slots = Slots(str(prefix))
    assert slots.describe() == {"active": "A", "trial": None, "slots": {"A": VERSION, "B": None}}
    for name in ("daemon/__main__.py", "webconfig/static/login.html", "daemon/locale/fr/core.json",
                 "board/topologies/demo.json", "daemon/upgrade/release-key.pub"):
        assert (prefix / "slots" / "A" / name).is_file(), name
    assert not (prefix / "slots" / "A" / "tests").exists()
    assert sorted(os.listdir(prefix / "launcher" / "daemon" / "upgrade")) == ["__init__.py", "launch.py", "slots.py"]

    text = unit.read_text()
    assert shutil.which("systemd-analyze"), "systemd-analyze missing: run `make test` (Debian package systemd)"
    checked = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert checked.returncode == 0 and checked.stderr == "", checked.stderr     # not even a warning
    directives = dict((m.group(1), m.group(2)) for m in re.finditer(r"^(\w+)=(.*)$", text, re.M))
    assert directives["Type"] == "notify" and directives["WatchdogSec"] == "30" and directives["Restart"] == "always"
    assert directives["User"] == "openm70" and directives["NoNewPrivileges"] == "yes"
    assert directives["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE CAP_SYS_TIME" == \
        directives["CapabilityBoundingSet"]
    assert directives["ProtectSystem"] == "strict" and directives["PrivateTmp"] == "yes"
    assert "@" not in directives["ExecStart"] and str(prefix) in directives["ExecStart"]

    for name in ("open-m70-reboot.path", "open-m70-reboot.service"):
        checked = subprocess.run(["systemd-analyze", "verify", str(tmp_path / name)], capture_output=True, text=True)
        assert checked.returncode == 0 and checked.stderr == "", (name, checked.stderr)
        assert str(state / "reboot-requested") in (tmp_path / name).read_text()

    # the kernel setting, read as sysctl.d(5) does: "key = value", '#' comments; the UDP services' request
    # (SO_RCVBUF, which Linux caps at rmem_max) is granted whole
    settings = dict(line.replace(" ", "").split("=", 1) for line in sysctl.read_text().splitlines()
                    if line.strip() and not line.lstrip().startswith(("#", ";")))
    assert list(settings) == ["net.core.rmem_max"] and int(settings["net.core.rmem_max"]) >= udpsock.RCVBUF

    broken = tmp_path / "broken.service"             # the check can fail: a unit systemd does not accept
    broken.write_text(text.replace("Type=notify", "Type=notify-please"))
    checked = subprocess.run(["systemd-analyze", "verify", str(broken)], capture_output=True, text=True)
    assert "notify-please" in checked.stderr


def test_the_installed_launcher_starts_the_daemon_from_slot_a(tmp_path):
    prefix, state, unit = tmp_path / "opt", tmp_path / "state", tmp_path / "open-m70.service"
    install.install(prefix=str(prefix), state=str(state), python=sys.executable, system=False, unit_path=str(unit))
    commission_accounts(str(state))
    exec_start = re.search(r"^ExecStart=(.*)$", unit.read_text(), re.M).group(1).split()
    assert exec_start[-4:] == ["--board", "rpi", "--state-dir", str(state)]
    args = exec_start[:-4] + ["--board", "sim", "--topology", DEMO_TOPOLOGY, "--state-dir", str(state),
                              "--http-port", "0", "--set", "http.bind=127.0.0.1", "--modbus-port", "0",
                              "--set", "modbus.bind=127.0.0.1"]
    env = dict(os.environ, PYTHONPATH=str(prefix / "launcher"))          # Environment= of the unit
    proc = subprocess.Popen(args, cwd=str(state), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "web status page" in line:
                break
        assert any("web status page" in line for line in lines), "".join(lines)
        with open("/proc/%d/environ" % proc.pid, "rb") as handle:
            environ = dict(item.split(b"=", 1) for item in handle.read().split(b"\0") if b"=" in item)
        assert environ[b"PYTHONPATH"] == str(prefix / "slots" / "A").encode()
        assert b"OPENM70_TRIAL" not in environ
        assert "slot A (active)" in "".join(lines)
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
