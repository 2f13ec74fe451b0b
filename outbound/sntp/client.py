"""One SNTP exchange (RFC 4330; RFC 5905 client mode) over an asyncio datagram endpoint: nothing blocks.

The request is a 48-byte mode-3, version-4 packet whose transmit timestamp is 64 random bits (RFC 5905 §9.1
suggests it; RFC 4330 §5 allows it): the answer must echo them as its originate timestamp, which an off-path
sender cannot guess, and no clock is read for the packet. The answer is checked strictly (RFC 4330 §5):

* what cannot be ours is dropped and the wait goes on (another source, fewer than 48 bytes, a wrong
  originate timestamp): a stray or forged datagram cannot end the exchange, and if nothing better comes the
  reason of the last one dropped is the error;
* an answer that is ours but unusable ends the exchange: mode other than 4 (server), version other than 3/4,
  stratum 0 (kiss-o'-death: its code, RATE, DENY..., is read from the reference id), 16 or more
  (unsynchronised), leap indicator 3 (alarm: the server's clock is not synchronised), a zero receive or transmit
  timestamp, a time before 2024 (MIN_PLAUSIBLE), a round trip that is negative or longer than the wait.

Times: T1 is the gateway's clock when the request leaves and T4 = T1 + the monotonic time elapsed until the
answer came, so a clock stepped (or frozen, in tests) meanwhile cannot make the round trip negative. The offset
is ((T2 - T1) + (T3 - T4)) / 2, the delay (T4 - T1) - (T3 - T2) (RFC 5905 §8).
"""

import asyncio
import ipaddress
import os
import socket
import struct
import time

from daemon.blocking import BlockingQueueFull, run_blocking

PACKET = 48
NTP_UNIX_DELTA = 2208988800          # seconds from 1900-01-01 (NTP era 0) to 1970-01-01 (RFC 868, RFC 5905)
ERA = 1 << 32
MODE_CLIENT, MODE_SERVER = 3, 4
NTP_VERSION = 4
ACCEPTED_VERSIONS = (3, 4)
LEAP_ALARM = 3                       # "clock not synchronised" (RFC 5905 Figure 9)
UNSYNCHRONISED_STRATUM = 16
TIMEOUT_S = 2.0                      # one try's wait for an answer
TRIES = 3                            # a bounded number of requests, each with a new transmit timestamp
RESOLVE_TIMEOUT_S = 5.0
MIN_PLAUSIBLE = 1704067200          # 2024-01-01 UTC: a server's time before it is wrong, whatever it says
DELAY_TOLERANCE_S = 0.001            # the server's timestamps are rounded: a few µs of negative delay are noise

# Why an exchange failed: a code each, with the catalogue key "sntp.error.<code>" (daemon/locale/*/sntp.json).
UNRESOLVED = "unresolved"            # the server's name does not resolve
UNREACHABLE = "unreachable"          # the host answered "port unreachable" (ICMP), or the socket could not send
NO_ANSWER = "no_answer"              # nothing within the tries
TRUNCATED = "truncated"              # fewer than 48 bytes
WRONG_SOURCE = "wrong_source"        # from another address or port
WRONG_ORIGIN = "wrong_origin"        # not an answer to our request
KISS = "kiss"                        # stratum 0: kiss-o'-death, {code}
UNSYNCHRONISED = "unsynchronised"    # stratum 16 (or more)
LEAP_ALARM_CODE = "leap_alarm"       # leap indicator 3
BAD_MODE = "bad_mode"                # {mode}
BAD_VERSION = "bad_version"          # {version}
ZERO_TIMESTAMP = "zero_timestamp"    # receive or transmit timestamp zero
BAD_DELAY = "bad_delay"              # round trip negative or beyond the wait
IMPLAUSIBLE = "implausible"          # a time before MIN_PLAUSIBLE: {time}


class SntpError(Exception):
    """An exchange that gave no usable time: ``code`` (above), ``params`` for its catalogue text."""

    def __init__(self, error_code, message, **params):
        Exception.__init__(self, message)
        self.code = error_code
        self.params = params


class SntpAnswer:
    """A checked answer: ``offset`` (s to add to the gateway's clock), ``delay`` (round trip, s), the server's
    ``stratum``, ``refid`` (text), ``leap`` and ``version``, and the ``server`` address asked."""
    __slots__ = ("delay", "leap", "offset", "refid", "server", "stratum", "version")

    def __init__(self, **fields):
        for name in self.__slots__:
            setattr(self, name, fields[name])

    def as_dict(self):
        return dict((name, getattr(self, name)) for name in self.__slots__)


def ntp_to_unix(seconds, fraction):
    """An NTP timestamp as Unix seconds; seconds with the top bit clear are era 1 (2036-2104, RFC 4330 §3)."""
    if not seconds & 0x80000000:
        seconds += ERA
    return seconds - NTP_UNIX_DELTA + fraction / float(ERA)


def unix_to_ntp(unix_time):
    """(seconds, fraction) of the NTP timestamp of ``unix_time`` (era wrap included)."""
    whole = int(unix_time // 1)
    fraction = int((unix_time - whole) * ERA) & 0xFFFFFFFF
    return (whole + NTP_UNIX_DELTA) % ERA, fraction


def request_packet(transmit):
    """A client request: LI 0, version 4, mode 3, every field zero but the 8-byte ``transmit`` timestamp."""
    return bytes([(0 << 6) | (NTP_VERSION << 3) | MODE_CLIENT]) + bytes(39) + transmit


def refid_text(stratum, refid):
    """The reference id as people read it: a kiss code or a stratum-1 source's ASCII name, else an IPv4 address
    (for IPv6 upstreams it is a hash, shown the same way)."""
    if stratum <= 1:
        return refid.rstrip(b"\x00").decode("ascii", "replace")
    return ".".join(str(b) for b in refid)


def check_answer(data, transmit):
    """The fields of an answer to the request with ``transmit``: raises SntpError (``dropped`` True when the
    datagram is not ours at all and the wait should go on)."""
    if len(data) < PACKET:
        raise _dropped(TRUNCATED, "an answer of %d bytes (at least %d expected)" % (len(data), PACKET),
                       size=len(data))
    if data[24:32] != transmit:
        raise _dropped(WRONG_ORIGIN, "an answer whose originate timestamp is not our request's")
    leap, version, mode = data[0] >> 6, (data[0] >> 3) & 7, data[0] & 7
    stratum = data[1]
    if mode != MODE_SERVER:
        raise SntpError(BAD_MODE, "an answer in mode %d (a server answers in mode 4)" % mode, mode=mode)
    if version not in ACCEPTED_VERSIONS:
        raise SntpError(BAD_VERSION, "an answer of NTP version %d" % version, version=version)
    if stratum == 0:
        code = refid_text(0, data[12:16]) or "?"
        raise SntpError(KISS, "the server sent a kiss-o'-death (%s)" % code, code=code)
    if stratum >= UNSYNCHRONISED_STRATUM:
        raise SntpError(UNSYNCHRONISED, "the server is not synchronised (stratum %d)" % stratum, stratum=stratum)
    if leap == LEAP_ALARM:
        raise SntpError(LEAP_ALARM_CODE, "the server's clock is not synchronised (leap indicator 3)")
    receive_s, receive_f, transmit_s, transmit_f = struct.unpack("!IIII", data[32:48])
    if not (receive_s or receive_f) or not (transmit_s or transmit_f):
        raise SntpError(ZERO_TIMESTAMP, "an answer with a zero receive or transmit timestamp")
    t3 = ntp_to_unix(transmit_s, transmit_f)
    if t3 < MIN_PLAUSIBLE:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t3))
        raise SntpError(IMPLAUSIBLE, "the server's time %s cannot be right" % stamp, time=stamp)
    return {"leap": leap, "version": version, "stratum": stratum, "refid": refid_text(stratum, data[12:16]),
            "t2": ntp_to_unix(receive_s, receive_f), "t3": t3}


def _dropped(error_code, message, **params):
    error = SntpError(error_code, message, **params)
    error.dropped = True
    return error


class _Endpoint(asyncio.DatagramProtocol):
    """The client's socket: datagrams and ICMP errors into a queue the exchange reads."""

    def __init__(self):
        self.queue = asyncio.Queue(maxsize=64)        # a flood cannot grow it; what overflows is dropped

    def datagram_received(self, data, addr):
        if not self.queue.full():
            self.queue.put_nowait((data, addr))

    def error_received(self, exc):
        if not self.queue.full():
            self.queue.put_nowait((exc, None))


async def resolve(host, port, timeout=RESOLVE_TIMEOUT_S):
    """(family, sockaddr) of ``host``: an address as it is, a name through getaddrinfo in the one executor."""
    try:
        address = ipaddress.ip_address(host)
        return (socket.AF_INET6 if address.version == 6 else socket.AF_INET), (str(address), port)
    except ValueError:
        pass
    try:
        infos = await asyncio.wait_for(run_blocking(socket.getaddrinfo, host, port, 0, socket.SOCK_DGRAM,
                                                    socket.IPPROTO_UDP), timeout)
    except (OSError, UnicodeError, TimeoutError, BlockingQueueFull) as exc:
        raise SntpError(UNRESOLVED, "%s could not be resolved: %s" % (host, exc or type(exc).__name__),
                        host=host) from None
    for family, _type, _proto, _name, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            return family, sockaddr[:2]
    raise SntpError(UNRESOLVED, "%s has no IP address" % host, host=host)


async def query(host, port, wall_clock, timeout=TIMEOUT_S, tries=TRIES):
    """Ask ``host``:``port`` for the time; an SntpAnswer whose offset is against ``wall_clock()`` (the
    gateway's clock), else SntpError. At most ``tries`` requests, ``timeout`` s each: bounded."""
    family, server = await resolve(host, port)
    loop = asyncio.get_running_loop()
    try:
        transport, endpoint = await loop.create_datagram_endpoint(_Endpoint, remote_addr=server, family=family)
    except OSError as exc:
        raise SntpError(UNREACHABLE, "no socket to %s:%d: %s" % (server[0], port, exc.strerror or exc),
                        server=server[0]) from None
    last = None
    try:
        for _ in range(max(1, tries)):
            transmit = os.urandom(8)
            t1 = wall_clock()
            sent = time.monotonic()
            try:
                transport.sendto(request_packet(transmit))
            except OSError as exc:
                raise SntpError(UNREACHABLE, "cannot send to %s:%d: %s" % (server[0], port, exc),
                                server=server[0]) from None
            deadline = sent + timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    data, addr = await asyncio.wait_for(endpoint.queue.get(), remaining)
                except TimeoutError:
                    break
                received = time.monotonic()
                if isinstance(data, Exception):
                    last = SntpError(UNREACHABLE, "%s:%d is unreachable: %s" % (server[0], port, data),
                                     server=server[0])
                    break                                   # ICMP: this try is over, the next may go through
                if addr is None or (addr[0], addr[1]) != (server[0], server[1]):
                    last = _dropped(WRONG_SOURCE, "a datagram from %s, not from the server" % (addr,))
                    continue
                try:
                    fields = check_answer(data, transmit)
                except SntpError as error:
                    if getattr(error, "dropped", False):
                        last = error
                        continue
                    raise
                elapsed = received - sent
                t4 = t1 + elapsed
                delay = (t4 - t1) - (fields["t3"] - fields["t2"])
                if delay < -DELAY_TOLERANCE_S or delay > timeout or fields["t3"] < fields["t2"] - DELAY_TOLERANCE_S:
                    raise SntpError(BAD_DELAY, "an answer with an impossible round trip (%.6f s)" % delay,
                                    delay=round(delay, 6))
                offset = ((fields["t2"] - t1) + (fields["t3"] - t4)) / 2.0
                return SntpAnswer(offset=offset, delay=max(0.0, delay), stratum=fields["stratum"],
                                  refid=fields["refid"], leap=fields["leap"], version=fields["version"],
                                  server=server[0])
    finally:
        transport.close()
    if last is not None:
        raise SntpError(last.code, "%s (after %d tries)" % (last, max(1, tries)), **last.params)
    raise SntpError(NO_ANSWER, "%s:%d did not answer (%d tries of %g s)" % (server[0], port, max(1, tries),
                                                                              timeout), server=server[0])
