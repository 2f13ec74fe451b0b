"""Install the gateway on a Raspberry Pi (``make install``, as root), or into a folder for a test.

    python3 -m tools.install                       # /opt/open-m70, /var/lib/open-m70, user openm70, enabled at boot
    python3 -m tools.install --root /tmp/x --no-system --python /usr/bin/python3    # the same files under /tmp/x

Layout (docs/upgrade.md):

    <prefix>/venv/        the Python environment with the dependencies only (root's)
    <prefix>/launcher/    the launcher's own copy (daemon/upgrade/launch.py and what it imports; root's)
    <prefix>/slots/A/     the software, from the files git tracks (the daemon's user owns slots/)
    /etc/systemd/system/open-m70.service   rendered from deploy/open-m70.service.in

Why not a Debian package: the software lives in A/B slots that the gateway itself replaces (signed upgrades
with roll-back); dpkg would own files the gateway rewrites. The installer makes the first slot, the launcher
and the unit, and nothing else on the system.
"""

import argparse
import configparser
import os
import pwd
import shutil
import subprocess
import sys

from daemon.upgrade.slots import SLOT_FILE, Slots
from daemon.version import VERSION
from tools.package import REPO, tracked_files

PREFIX, STATE, USER = "/opt/open-m70", "/var/lib/open-m70", "openm70"
UNIT = "etc/systemd/system/open-m70.service"
UNITS = ("open-m70.service", "open-m70-reboot.path", "open-m70-reboot.service")
SYSCTL = "etc/sysctl.d/60-open-m70.conf"       # the UDP services' receive buffer (deploy/60-open-m70.conf)
LAUNCHER_FILES = ("daemon/__init__.py", "daemon/atomicfile.py", "daemon/upgrade/__init__.py",
                  "daemon/upgrade/launch.py", "daemon/upgrade/slots.py")
GROUPS = ("dialout", "gpio")          # the RS485 ports, the ADDR button and LEDs (those that exist)


def requirements(tree=REPO):
    """The runtime dependencies, as setup.cfg pins them."""
    config = configparser.ConfigParser()
    config.read(os.path.join(tree, "setup.cfg"))
    return [line.strip() for line in config["options"]["install_requires"].splitlines() if line.strip()]


def render_unit(template, prefix, state, user):
    return template.replace("@PREFIX@", prefix).replace("@STATE@", state).replace("@USER@", user)


def _copy(files, tree, target):
    for name in files:
        destination = os.path.join(target, *name.split("/"))
        os.makedirs(os.path.dirname(destination), mode=0o755, exist_ok=True)
        shutil.copy2(os.path.join(tree, *name.split("/")), destination)


def install(root="/", prefix=PREFIX, state=STATE, user=USER, python=None, system=True, tree=REPO, unit_path=None,
            sysctl_path=None):
    """Write the installation under ``root``; with ``system``, also the user, the venv, the kernel setting and
    the enabled unit. ``unit_path``: where the unit goes (default: /etc/systemd/system under ``root``);
    ``sysctl_path``: where the sysctl drop-in goes (default: /etc/sysctl.d under ``root``, written with
    ``system`` only, so a test's install never touches the host's /etc)."""
    here = os.path.join(root, prefix.lstrip("/"))
    slots = Slots(here)
    slot_a = slots.path("A")
    if os.path.exists(slot_a):
        shutil.rmtree(slot_a)            # a re-install replaces the first slot (an upgraded B is left alone)
    _copy(tracked_files(tree), tree, slot_a)
    with open(os.path.join(slot_a, SLOT_FILE), "w") as handle:
        handle.write('{"version": "%s", "installed": "make install"}\n' % VERSION)
    if not os.path.exists(os.path.join(slots.folder, "slots.json")):
        slots._save({"active": "A", "trial": None, "trial_boots": 0, "previous": None})
    launcher = os.path.join(here, "launcher")
    shutil.rmtree(launcher, ignore_errors=True)
    _copy(LAUNCHER_FILES, tree, launcher)
    os.makedirs(os.path.join(root, state.lstrip("/")), mode=0o750, exist_ok=True)
    venv_python = os.path.join(here, "venv", "bin", "python")
    if python is not None:               # a test: the given interpreter (with its packages) stands for the venv's
        os.makedirs(os.path.dirname(venv_python), exist_ok=True)
        with open(venv_python, "w") as handle:
            handle.write('#!/bin/sh\nexec "%s" "$@"\n' % python)
        os.chmod(venv_python, 0o755)
    else:
        subprocess.run([sys.executable, "-m", "venv", os.path.join(here, "venv")], check=True)
        subprocess.run([venv_python, "-m", "pip", "install", "-q"] + requirements(tree), check=True)
    unit_path = unit_path or os.path.join(root, UNIT)
    os.makedirs(os.path.dirname(unit_path), exist_ok=True)
    for name in UNITS:               # the gateway, and root's reboot-on-request pair beside it
        with open(os.path.join(tree, "deploy", name + ".in")) as handle:
            text = render_unit(handle.read(), prefix, state, user)
        with open(os.path.join(os.path.dirname(unit_path), name) if name != UNITS[0] else unit_path, "w") as out:
            out.write(text)
    if system or sysctl_path:
        sysctl_path = sysctl_path or os.path.join(root, SYSCTL)
        os.makedirs(os.path.dirname(sysctl_path), exist_ok=True)
        shutil.copyfile(os.path.join(tree, "deploy", os.path.basename(SYSCTL)), sysctl_path)
    if system:
        _system_setup(prefix, state, user, sysctl_path)
    return unit_path


def _system_setup(prefix, state, user, sysctl_path):
    try:
        pwd.getpwnam(user)
    except KeyError:
        subprocess.run(["useradd", "--system", "--home-dir", state, "--shell", "/usr/sbin/nologin", user], check=True)
    for group in GROUPS:
        if subprocess.run(["getent", "group", group], capture_output=True).returncode == 0:
            subprocess.run(["usermod", "-a", "-G", group, user], check=True)
    subprocess.run(["chown", "-R", "%s:%s" % (user, user), os.path.join(prefix, "slots"), state], check=True)
    subprocess.run(["sysctl", "-q", "-p", sysctl_path], check=True)      # now, not only at the next boot
    subprocess.run(["systemctl", "daemon-reload"], check=True)
    # the gateway keeps the clock by its own SNTP client (sntp.* settings, alarm 2, then the meters' clocks):
    # Raspberry Pi OS's timesyncd would step the same clock from another server. Absent on some images: no check.
    subprocess.run(["systemctl", "disable", "--now", "systemd-timesyncd.service"], capture_output=True)
    subprocess.run(["systemctl", "enable", "--now", "open-m70.service", "open-m70-reboot.path"], check=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default="/", help="write under this folder (a test, an image being built)")
    parser.add_argument("--prefix", default=PREFIX)
    parser.add_argument("--state", default=STATE)
    parser.add_argument("--user", default=USER)
    parser.add_argument("--python", help="use this interpreter instead of making the venv (tests)")
    parser.add_argument("--no-system", action="store_true", help="no user, no chown, no systemctl")
    parser.add_argument("--unit", help="write the unit file here instead of /etc/systemd/system")
    args = parser.parse_args(argv)
    unit = install(args.root, args.prefix, args.state, args.user, args.python, not args.no_system,
                   unit_path=args.unit)
    print("installed: %s (unit %s)" % (os.path.join(args.root, args.prefix.lstrip("/")), unit))
    return 0


if __name__ == "__main__":
    sys.exit(main())
