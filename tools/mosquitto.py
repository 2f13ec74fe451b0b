"""Debian's Mosquitto on a loopback port, for the tests and the benches (one starter, not one per caller).

``Broker(directory, port, lines)`` writes ``directory/mosquitto.conf``: a listener on 127.0.0.1:``port``, the
caller's own lines (anonymous or a password file, TLS, persistence, queue limits), and ``user root`` when run
as root (Mosquitto then drops to user "mosquitto", who could not read the caller's files). ``start()`` runs
``mosquitto -c`` and returns once it accepts a connection; ``stop()`` sends SIGTERM (Mosquitto saves its
persistence database on it) and waits; ``close()`` stops it and closes its log.
"""

import os
import shutil
import signal
import socket
import subprocess
import time

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
START_GUARD_S = 20.0


class Broker:
    """One Mosquitto process; ``log`` False: its output is thrown away (a bench's steady window)."""

    def __init__(self, directory, port, lines=(), log=True):
        self.directory, self.port = str(directory), port
        os.makedirs(self.directory, exist_ok=True)
        self.config = os.path.join(self.directory, "mosquitto.conf")
        self.log = open(os.path.join(self.directory, "mosquitto.log"), "ab") if log else None
        config = ["listener %d 127.0.0.1" % port] + list(lines)
        if os.geteuid() == 0:
            config.append("user root")
        with open(self.config, "w") as handle:
            handle.write("\n".join(config) + "\n")
        self.proc = None

    def start(self):
        output = self.log if self.log is not None else subprocess.DEVNULL
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.config], stdout=output, stderr=output)
        deadline = time.monotonic() + START_GUARD_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    where = "see %s" % self.log.name if self.log is not None else "its log is off"
                    raise RuntimeError("mosquitto did not start on %d: %s" % (self.port, where)) from None
                time.sleep(0.05)

    def stop(self):
        """SIGTERM (the persistence database is saved) and wait; the process's rusage, or None if none ran."""
        usage = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            _pid, _status, usage = os.wait4(self.proc.pid, 0)
            self.proc.returncode = 0
        self.proc = None
        return usage

    def close(self):
        self.stop()
        if self.log is not None:
            self.log.close()
