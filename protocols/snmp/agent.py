"""The SNMP agent service: pysnmp 7 on the daemon's loop, opened and closed by its switches.

Runs while ``snmp.enabled`` and ``policy.snmp`` are on (SwitchedService);
turning either off closes the UDP port at once, changing the port, the bind
address or any credential rebuilds the engine. One UDP socket serves
requests and sends notifications.

A datagram first meets the intake (intake.py), which reads it with our
strict codec only: oversized, unreadable, wrong-version, wrong-community
and malformed datagrams are dropped and counted; v1/v2c reads are answered
by the fast path (fastpath.py); SNMPv3 messages that are not for our engine,
a configured user and that user's security level get the USM report from
the v3 gate (v3gate.py); authenticated v3 reads (GET, GETNEXT, GETBULK) that
verify, decrypt and are in the time window are answered by the v3 fast path
(v3fast.py, issue 19). pysnmp's dispatcher, whose responders read the same
OID index (instrum.py), sees only well-formed SETs, inform acknowledgements
and v3 messages whose next step is authentication.

Informs (``snmp.trap.mode`` = inform, v2c/v3): pysnmp's notification
originator re-sends each InformRequest on its own timer until the receiver
acknowledges it or the retries run out, then calls back; nothing waits on
the loop. ``informs`` in the status counts the outcomes per receiver, and at
most ``MAX_PENDING_INFORMS`` wait at once (a dead receiver cannot make them
pile up): beyond that an inform is dropped and counted.
"""

import asyncio
import collections
import ipaddress
import logging
import socket
import time

from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config as pc
from pysnmp.entity.rfc3413 import cmdrsp, context, ntforg
from pysnmp.proto import errind, rfc1902

from daemon.blocking import run_blocking
from daemon.loopshare import SNMP_CLIENT_SHARE, LoopShare
from daemon.service import SwitchedService
from protocols.snmp import engine as engine_mod, mibdef, usm
from protocols.snmp.instrum import AsyncSetResponder, IndexInstrum, to_pyasn1
from protocols.snmp.intake import Intake
from protocols.snmp.traps import TrapSender
from protocols.snmp.tree import OidIndex
from protocols.udpsock import bind_udp, drain

log = logging.getLogger("gateway.snmp")

SNMP_TRAP_ADDRESS = (1, 3, 6, 1, 6, 3, 18, 1, 3, 0)
MAX_PENDING_INFORMS = 64
INFORM_OUTCOMES = ("sent", "acknowledged", "timed_out", "rejected", "failed", "dropped", "abandoned")
SHARE_WAITING, SHARE_TOTAL = 64, 256        # datagrams kept over a client's share of the loop: per client, in all
_COUNTER_MODULES = {"usm": "__SNMP-USER-BASED-SM-MIB", "snmp": "__SNMPv2-MIB"}


class FrontTransport(udp.UdpTransport):
    """pysnmp's UDP transport with the intake in front of its dispatcher."""

    def __init__(self, service):
        udp.UdpTransport.__init__(self)
        self.service = service

    def datagram_received(self, datagram, transportAddress):
        """asyncio's one datagram, then everything queued behind it (udpsock.drain): a flood cannot fill the
        kernel's buffer and have a quiet client's datagrams dropped there."""
        self._intake(datagram, transportAddress)
        if self.service._sock is not None:
            self.service.read_ahead += drain(self.service._sock, self._intake)

    def _intake(self, datagram, transportAddress):
        service = self.service
        if not service.door.admit(transportAddress[0], service.port, len(datagram)):    # the firewall: dropped
            service.dropped["firewall"] += 1
            return
        ip, share = transportAddress[0], service.share      # each client's share of the loop (daemon/loopshare.py)
        if ip in share.waiting or not share.allows(ip):     # over it: a few wait their turn, the rest are dropped
            if not share.defer(ip, lambda: self._charged(datagram, transportAddress), SHARE_WAITING, SHARE_TOTAL):
                service.dropped["over_share"] += 1
            return
        self._charged(datagram, transportAddress)

    def _charged(self, datagram, transportAddress):
        started = time.monotonic()
        try:
            self._serve(self.service, datagram, transportAddress)
        finally:
            self.service.share.charge(transportAddress[0], time.monotonic() - started)

    def _serve(self, service, datagram, transportAddress):
        try:
            answer = service.intake.handle(datagram)
        except Exception:            # never let a datagram reach the loop's handler, nor pysnmp unchecked
            log.exception("SNMP intake failed")
            service.dropped["intake_error"] += 1
            answer = b""
        if answer is not None:
            if answer and self.transport is not None:
                self.transport.sendto(answer, transportAddress)
            return
        try:
            self._callback_function(self, transportAddress, datagram)
        except Exception as exc:     # pyasn1 fails on some damaged BER with TypeError: still a parse error
            service.dropped["decoder_error"] += 1
            service.intake.counters["snmpInASNParseErrs"] += 1
            log.debug("pysnmp dropped a datagram from %s: %r", transportAddress, exc)


class SnmpService(SwitchedService):
    name = "snmp"
    reopen_keys = ("snmp.port", "snmp.bind") + engine_mod.SETTING_KEYS

    def __init__(self, door):
        SwitchedService.__init__(self, door)
        self.traps = TrapSender(door)
        self.index = OidIndex(door, self)
        self.intake = Intake(self.index, self)
        self.snmp_engine = None
        self.transport = None
        self.port = None
        self.opened_at = time.monotonic()
        self.dropped = collections.Counter()
        self.read_ahead = 0                 # datagrams read behind the one asyncio handed up (udpsock.drain)
        self.share = LoopShare(client_share=SNMP_CLIENT_SHARE)     # each client's share (daemon/loopshare.py)
        self.set_results = collections.Counter()
        self._set_responder = None
        self._originator = None
        self._sock = None
        self.trap_targets = []
        self._notify_targets = []          # [(pysnmp notification target, 'trap' or 'inform')], per receiver
        self.informs = collections.Counter(dict.fromkeys(INFORM_OUTCOMES, 0))
        self._pending_informs = 0
        self._inform_generation = 0        # callbacks of a closed engine's informs are ignored
        self._agent_address = None
        from protocols.snmp import MIB_FILE
        with open(MIB_FILE, encoding="utf-8") as handle:    # read once, before the loop serves anything
            mib_text = handle.read()
        door.publish_document("SOCOMEC-GATEWAY-MIB.txt", "text/plain; charset=utf-8", lambda: mib_text)

    # ------------------------------------------------------------ what the OID index reads

    def counter(self, name):
        fast = self.intake.counters.get(name, 0)
        if self.snmp_engine is None:
            return fast
        module = _COUNTER_MODULES["usm" if name.startswith("usm") else "snmp"]
        (symbol,) = self.snmp_engine.get_mib_builder().import_symbols(module, name)
        return int(symbol.syntax) + fast

    def uptime_ticks(self):
        return int((time.monotonic() - self.opened_at) * 100) & 0xFFFFFFFF

    def engine_value(self, name, snmp_engine=None):
        snmp_engine = snmp_engine or self.snmp_engine
        if snmp_engine is None:
            return b"" if name == "snmpEngineID" else 0
        (symbol,) = snmp_engine.get_mib_builder().import_symbols("__SNMP-FRAMEWORK-MIB", name)
        if name == "snmpEngineID":
            return bytes(symbol.syntax)
        if name == "snmpEngineTime":
            return int(symbol.syntax.clone())
        return int(symbol.syntax)

    def alarms_version(self):
        return self.traps.version

    def active_alarms(self):
        return self.traps.active_alarms()

    def note_set(self, status):
        self.set_results[status] += 1

    # ------------------------------------------------------------ open / close

    async def _open(self):
        settings = self.settings
        config = dict((key, settings.get(key)) for key in engine_mod.SETTING_KEYS)
        targets = await self._resolve_trap_targets()
        snmp_engine = await run_blocking(engine_mod.build, config, self.door.state_path(engine_mod.BOOTS_FILE),
                                         self.door.identity()["netid"], targets)
        fast_users = await run_blocking(usm.localised_users, config, bytes(snmp_engine.snmpEngineID))
        sock = bind_udp(settings.get("snmp.bind"), settings.get("snmp.port"),
                        broadcast=settings.get("snmp.trap.broadcast"))
        snmp_context = context.SnmpContext(snmp_engine)
        snmp_context.unregister_context_name(b"")
        snmp_context.register_context_name(b"", IndexInstrum(self.index))
        cmdrsp.GetCommandResponder(snmp_engine, snmp_context)
        cmdrsp.NextCommandResponder(snmp_engine, snmp_context)
        cmdrsp.BulkCommandResponder(snmp_engine, snmp_context)
        self._set_responder = AsyncSetResponder(snmp_engine, snmp_context, self)
        self._originator = ntforg.NotificationOriginator()
        self.intake.fast.set_communities(config["snmp.v1.read_community"], config["snmp.v1.write_community"],
                                         config["snmp.v2c.read_community"], config["snmp.v2c.write_community"],
                                         config["snmp.trap.community"])
        self.intake.v3.configure(bytes(snmp_engine.snmpEngineID), engine_mod.v3_users(config),
                                 engine_mod.inform_user(config))
        self.intake.v3.fast.configure(bytes(snmp_engine.snmpEngineID), fast_users,   # pysnmp's boots and time
                                      self.engine_value("snmpEngineBoots", snmp_engine),
                                      self.engine_value("snmpEngineTime", snmp_engine))
        self.intake.counters.clear()
        transport = FrontTransport(self).open_server_mode(sock=sock)
        pc.add_transport(snmp_engine, udp.DOMAIN_NAME, transport)
        try:
            await transport._lport                 # the endpoint exists: the port answers from now on
        except BaseException:
            snmp_engine.close_dispatcher()
            sock.close()
            raise
        self.snmp_engine = snmp_engine
        self.transport = transport
        self._sock = sock
        self.trap_targets = targets
        self._notify_targets = engine_mod.notification_targets(config, targets)
        if config["snmp.trap.mode"] == "inform" and config["snmp.trap.version"] == "v1":
            log.warning("snmp.trap.mode is inform but SNMPv1 has no inform: v1 traps are sent")
        self._agent_address = self._local_address(settings.get("snmp.bind"), targets) \
            if settings.get("snmp.trap.version") == "v1" else None
        self.port = sock.getsockname()[1]
        self.opened_at = time.monotonic()
        self.traps.start(self._transmit)

    async def _close(self):
        await self.traps.stop()
        self.informs["abandoned"] += self._pending_informs      # the engine goes, and its re-sends with it
        self._pending_informs = 0
        self._inform_generation += 1
        if self._set_responder is not None:
            for task in list(self._set_responder.tasks):
                task.cancel()
        snmp_engine, self.snmp_engine = self.snmp_engine, None
        if snmp_engine is not None:
            snmp_engine.close_dispatcher()     # closes the transport and stops pysnmp's timer task
        sock, self._sock = self._sock, None
        self.transport = None
        self.port = None
        for _ in range(100):                   # the socket closes in the transport's connection_lost
            if sock is None or sock.fileno() == -1:
                break
            await asyncio.sleep(0.001)
        if sock is not None:
            sock.close()

    async def _resolve_trap_targets(self):
        """(ip, port) of the trap receivers; names are resolved off the loop."""
        settings = self.settings
        targets = []
        for host_key, port_key in (("snmp.trap.host1", "snmp.trap.port1"), ("snmp.trap.host2", "snmp.trap.port2")):
            host, port = settings.get(host_key).strip(), settings.get(port_key)
            if not host or host == "0.0.0.0":
                continue
            try:
                ipaddress.IPv4Address(host)
                targets.append((host, port))
                continue
            except ValueError:
                pass
            try:
                infos = await run_blocking(socket.getaddrinfo, host, port, socket.AF_INET, socket.SOCK_DGRAM)
                targets.append((infos[0][4][0], port))
            except OSError as exc:
                log.warning("trap host %s cannot be resolved: %s", host, exc)
        if settings.get("snmp.trap.broadcast"):
            targets.append((engine_mod.BROADCAST, settings.get("snmp.trap.port1")))
        return targets

    def _transmit(self, notification, varbinds):
        if self.snmp_engine is None or not self.trap_targets:
            return False
        var_binds = [(mibdef.SYS_UPTIME_0, rfc1902.TimeTicks(self.uptime_ticks())),
                     (mibdef.SNMP_TRAP_OID, rfc1902.ObjectIdentifier(mibdef.NOTIFICATION_OIDS[notification]))]
        var_binds.extend((oid, to_pyasn1(tag, value)) for oid, tag, value in varbinds)
        if self._agent_address:        # becomes the v1 trap's agent-addr (RFC 3584 §3.2)
            var_binds.append((SNMP_TRAP_ADDRESS, rfc1902.IpAddress(self._agent_address)))
        for name, kind in self._notify_targets:
            if kind == "trap":
                self._originator.send_varbinds(self.snmp_engine, name, None, b"", var_binds)
            elif self._pending_informs >= MAX_PENDING_INFORMS:
                self.informs["dropped"] += 1
            else:
                self.informs["sent"] += 1
                self._pending_informs += 1
                self._originator.send_varbinds(self.snmp_engine, name, None, b"", var_binds, self._inform_done,
                                               self._inform_generation)
        return True

    def _inform_done(self, _engine, _handle, error_indication, error_status, _index, _var_binds, generation):
        """pysnmp's verdict on one inform: acknowledged, or not after all its retries."""
        if generation != self._inform_generation:
            return
        self._pending_informs -= 1
        if error_indication is None:
            self.informs["rejected" if error_status else "acknowledged"] += 1
        elif isinstance(error_indication, errind.RequestTimedOut):
            self.informs["timed_out"] += 1
            log.warning("an inform was not acknowledged after %d tries", self.settings.get("snmp.trap.inform_retries")
                        + 1)
        else:
            self.informs["failed"] += 1
            log.warning("an inform could not be sent: %s", error_indication)

    @staticmethod
    def _local_address(bind, targets):
        """The agent's own IPv4 address toward the first trap receiver (v1 traps carry it)."""
        if bind not in ("", "0.0.0.0"):
            return bind
        for host, port in targets:
            if host == engine_mod.BROADCAST:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.connect((host, port))         # no datagram: the kernel only picks a route
                    return probe.getsockname()[0]
                except OSError:
                    continue
        return None

    # ------------------------------------------------------------ status

    def engine_id(self):
        return engine_mod.engine_id(self.door.identity()["netid"])

    def status(self):
        state = SwitchedService.status(self)
        state.update({
            "port": self.port, "bind": self.settings.get("snmp.bind"), "transport": "udp",
            "engine_id": self.engine_id().hex(), "instances": self.index.size(),
            "intake": dict(self.intake.counters), "dropped": dict(self.dropped),
            "read_ahead": self.read_ahead, "set": dict(self.set_results), "traps_sent": dict(self.traps.sent),
            "trap_targets": ["%s:%d" % t for t in self.trap_targets],
            "notify_types": dict(("%s:%d" % t, kind) for t, (_n, kind) in zip(self.trap_targets,
                                                                              self._notify_targets)),
            "informs": dict(self.informs, pending=self._pending_informs),
            "active_alarms": len(self.traps.active),
        })
        return state
