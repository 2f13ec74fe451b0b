"""The gateway's one firewall: every service's intake asks it, a ban raises alarm 7 and is audited.

``Firewall`` (firewall.py) decides; this part wires it into the running gateway: the live settings, the
whitelist's rules kept in the state directory (``firewall-rules.json``, written atomically off the loop),
alarm 7 (SPEC §6 "cyber security alert") raised once per ban with the client's address as its source and
cleared when the ban ends, one audit event per ban, and the nftables ruleset of the same policy written for
the Pi's kernel (``firewall.nft`` in the state directory unless the board names another path: the simulated
board's file is the record a test reads; ``nft -f`` of it is the system's job, at boot).
"""

import asyncio
import logging
import os

from daemon.atomicfile import atomic_write, read_json, write_json
from daemon.blocking import run_blocking
from daemon.security import audit
from daemon.security.firewall import MAX_RULES, Firewall, check_rule, nft_ruleset
from daemon.security.rights import Caller

log = logging.getLogger("gateway.firewall")

ALARM = 7
RULES_FILE = "firewall-rules.json"
NFT_FILE = "firewall.nft"
# which setting gives each protocol's port, for the nftables ruleset
PORT_SETTINGS = {"http": "http.port", "modbus": "modbus.port", "snmp": "snmp.port", "bacnet": "bacnet.port"}
# a door's protocol as the firewall names it
PROTOCOL_OF = {"web": "http"}


def source_of(ip):
    return "firewall:%s" % ip


class GatewayFirewall:
    def __init__(self, state_dir, settings, alarms, board=None):
        self.settings, self.alarms = settings, alarms
        self.rules_path = os.path.join(state_dir, RULES_FILE)
        self.nft_path = getattr(board, "nft_path", None) or os.path.join(state_dir, NFT_FILE)
        self.firewall = Firewall(settings, on_ban=self._banned)
        self._timers = {}
        self._writes = set()
        rules = read_json(self.rules_path, {"rules": []}).get("rules", [])
        try:
            self.firewall.set_rules(rules)
        except ValueError as exc:                # a damaged file: no rule rather than a wrong one, said once
            log.error("%s ignored: %s", RULES_FILE, exc)

    def admit(self, ip, protocol, port, size):
        return self.firewall.admit(ip, PROTOCOL_OF.get(protocol, protocol), port, size)

    def rules(self):
        return [dict(rule) for rule in self.firewall.rules]

    @staticmethod
    def problems(rules):
        """[(field, problem)] of a list of rules; a rule's field is named "<index>.<field>"."""
        if not isinstance(rules, list):
            return [("rules", "a list of rules")]
        out = [("%d.%s" % (i, field), problem) for i, rule in enumerate(rules) for field, problem in check_rule(rule)]
        if len(rules) > MAX_RULES:
            out.append(("rules", "at most %d rules" % MAX_RULES))
        return out

    async def set_rules(self, rules):
        """Store and apply checked ``rules`` (the caller checked ``problems`` first)."""
        await run_blocking(write_json, self.rules_path, {"version": 1, "rules": rules})
        self.firewall.set_rules(rules)
        await self.write_ruleset()

    def ruleset(self):
        ports = dict((protocol, self.settings.get(name)) for protocol, name in PORT_SETTINGS.items()
                     if self.settings.get(name))
        return nft_ruleset(self.firewall.rules, ports, bool(self.settings.get("firewall.whitelist.enabled")),
                           self.settings.get("firewall.max_requests_per_s"),
                           self.settings.get("firewall.max_bandwidth_bps"), self.settings.get("firewall.ban_s"))

    async def write_ruleset(self):
        text = self.ruleset()
        await run_blocking(atomic_write, self.nft_path, text.encode())
        return text

    def setting_changed(self, name, _value):
        if name.startswith("firewall.") or name in PORT_SETTINGS.values():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:          # no loop (a tool changing the settings file): written at the next start
                return
            task = loop.create_task(self._rewrite())
            self._writes.add(task)                      # held until done (the loop keeps only a weak reference)
            task.add_done_callback(self._writes.discard)

    async def _rewrite(self):
        try:
            await self.write_ruleset()
        except OSError as exc:
            log.error("the nftables ruleset could not be written to %s: %s", self.nft_path, exc)

    def stop(self):
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    def _banned(self, ip, protocol, reason):
        ban_s = self.settings.get("firewall.ban_s")
        detail = "%s banned for %d s (%s, %s)" % (ip, ban_s, protocol, reason)
        self.alarms.set(ALARM, source_of(ip), True, detail)
        audit.audit(self.alarms, "firewall-ban", Caller(protocol, peer=ip), "refused", reason=reason, ban_s=ban_s)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        old = self._timers.pop(ip, None)
        if old is not None:
            old.cancel()
        self._timers[ip] = loop.call_later(ban_s, self._ban_over, ip)

    def _ban_over(self, ip):
        self._timers.pop(ip, None)
        left = self.firewall.banned().get(ip)
        if left:                                   # the clock moved less than the loop's: look again then
            self._timers[ip] = asyncio.get_running_loop().call_later(left, self._ban_over, ip)
            return
        self.alarms.set(ALARM, source_of(ip), False, "%s no longer banned" % ip)
