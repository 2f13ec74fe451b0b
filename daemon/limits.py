"""The daemon's descriptor limit, and the connection caps that fit under it.

systemd and most shells start a process with a soft RLIMIT_NOFILE of 1,024. A flood of
connections must meet the servers' own caps, never the kernel's limit (accept() failing with
EMFILE for every client, well-behaved ones too). So at start the daemon raises its soft limit to
NOFILE_TARGET (never above the hard limit, never lowering it), and each TCP server fits its cap
under what is left once the daemon's own descriptors are set aside (RESERVED: serial ports,
storage files, UDP sockets, log and executor). With the default caps (HTTP 64 + 16 lingering
refusals, Modbus TCP 32) the caps bind long before the limit; on a system that grants fewer
descriptors the caps shrink instead of accept() failing.
"""

import resource

NOFILE_TARGET = 4096     # soft RLIMIT_NOFILE asked for at start (README, docs/architecture.md)
RESERVED = 128           # descriptors kept for the daemon's own files and sockets
SHARES = {"http": 0.5, "modbus": 0.25}      # of what is left: the web server, Modbus TCP (the rest: slack)


def raise_descriptor_limit(target=NOFILE_TARGET):
    """Raise the soft RLIMIT_NOFILE to ``target`` (at most the hard limit); returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = target if hard == resource.RLIM_INFINITY else min(hard, target)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = want
    return soft


def descriptor_limit():
    """The soft RLIMIT_NOFILE in force now (a large number when unlimited)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return 1 << 20 if soft == resource.RLIM_INFINITY else soft


def fitted_cap(wanted, server):
    """``wanted`` connections, or fewer if the descriptor limit leaves ``server`` less room; at least 1."""
    room = max(0, descriptor_limit() - RESERVED)
    return max(1, min(wanted, int(room * SHARES[server])))
