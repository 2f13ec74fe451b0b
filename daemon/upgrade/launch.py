"""The launcher systemd runs: pick the slot (``Slots.boot``), then become the daemon of that slot.

    ExecStart=/usr/bin/python3 -m daemon.upgrade.launch --root /opt/open-m70 -- --board rpi ...

It runs from the installation's own copy of this file (PYTHONPATH=<root>/launcher), never from a slot, so a
broken upgrade cannot break the choice of slot. The daemon it starts learns its slot from the environment
(ROOT_ENV, SLOT_ENV, TRIAL_ENV): a trial slot must report healthy (``daemon/upgrade/trial.py``) or the next
start rolls back. The process is replaced (exec), so systemd's watchdog and notify socket reach the daemon.
"""

import argparse
import os
import sys

from daemon.upgrade.slots import Slots

ROOT_ENV, SLOT_ENV, TRIAL_ENV = "OPENM70_ROOT", "OPENM70_SLOT", "OPENM70_TRIAL"


def command(root, daemon_args, environ):
    """(executable, argv, environment) of the daemon to start now, and what ``boot`` decided."""
    slots = Slots(root)
    slot, decision = slots.boot()
    env = dict(environ)
    env.update({ROOT_ENV: root, SLOT_ENV: slot, "PYTHONPATH": slots.path(slot)})
    if decision == "trial":
        env[TRIAL_ENV] = "1"
    else:
        env.pop(TRIAL_ENV, None)
    return sys.executable, [sys.executable, "-m", "daemon"] + list(daemon_args), env, (slot, decision)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="the installation root (slots/, slots.json)")
    parser.add_argument("daemon_args", nargs=argparse.REMAINDER, help="after --: the daemon's arguments")
    args = parser.parse_args(argv)
    daemon_args = args.daemon_args[1:] if args.daemon_args[:1] == ["--"] else args.daemon_args
    executable, argv, env, (slot, decision) = command(args.root, daemon_args, os.environ)
    print("open-m70 launcher: slot %s (%s)" % (slot, decision), file=sys.stderr, flush=True)
    os.execve(executable, argv, env)


if __name__ == "__main__":
    main()
