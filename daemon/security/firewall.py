"""The daemon's own firewall: per-client rate and bandwidth limits with bans, and the whitelist (issue 15, SPEC §8).

Every service asks ``admit(ip, protocol, port, size)`` for each request it
receives (a datagram, a Modbus frame, an HTTP request; ``size`` in bytes) and
drops or refuses what is not admitted. Per client address two token buckets
hold one second's allowance: ``firewall.max_requests_per_s`` requests and
``firewall.max_bandwidth_bps`` bits. A client that overdraws either is banned
for ``firewall.ban_s``: ``on_ban(ip, protocol, reason)`` is called once per ban
(alarm 7 and the audit trail, not once per packet) and every request of that
client is refused until the ban ends; other clients are not slowed, they have
their own buckets. The state is bounded: at most MAX_CLIENTS addresses are
tracked (the one idle longest is forgotten first), so a spoofed-source flood
costs a fixed amount of memory.

The whitelist, when ``firewall.whitelist.enabled``, admits only clients that
match one of at most MAX_RULES rules: a name, a MAC address or ``*``, an IPv4
pattern whose octets may be ``*``, the protocols and the ports (or ``*``).
``check_rule`` validates a rule and says what is wrong per field.
``nft_ruleset`` writes the same policy for the Pi's kernel (nftables), so
traffic the daemon would refuse is dropped before it reaches it.
"""

import collections
import ipaddress
import re
import time

MAX_CLIENTS = 4096
MAX_RULES = 10
PROTOCOLS = ("http", "https", "modbus", "snmp", "bacnet")
TRANSPORT = {"http": "tcp", "https": "tcp", "modbus": "tcp", "snmp": "udp", "bacnet": "udp"}
_MAC = re.compile(r"([0-9a-f]{2}:){5}[0-9a-f]{2}\Z")
_NAME = re.compile(r"[A-Za-z0-9 _.-]{1,32}\Z")
_OCTET = re.compile(r"\*|25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9]\Z")


class _Client:
    __slots__ = ("requests", "bits", "at", "banned_until")

    def __init__(self, requests, bits, now):
        self.requests, self.bits, self.at, self.banned_until = requests, bits, now, 0.0


class Firewall:
    def __init__(self, settings, on_ban=None, clock=time.monotonic, mac_of=None):
        """``settings.get(name)``; ``mac_of(ip)``: the client's MAC address ("" when unknown: loopback)."""
        self.settings, self.on_ban, self.clock = settings, on_ban, clock
        self.mac_of = mac_of or (lambda ip: "")
        self.rules = []
        self.clients = collections.OrderedDict()       # ip -> _Client, least recently seen first
        self.counts = collections.Counter()           # admitted, refused_banned, refused_whitelist, bans

    def set_rules(self, rules):
        problems = [problem for rule in rules for problem in check_rule(rule)]
        if len(rules) > MAX_RULES:
            problems.append(("rules", "at most %d rules" % MAX_RULES))
        if problems:
            raise ValueError("; ".join("%s: %s" % item for item in problems))
        self.rules = [dict(rule) for rule in rules]

    def admit(self, ip, protocol, port, size=0):
        """True when the request may be served; False: drop it (or answer the protocol's refusal)."""
        if not self.settings.get("firewall.enabled"):
            return True
        if self.settings.get("firewall.whitelist.enabled") and not self.whitelisted(ip, protocol, port):
            self.counts["refused_whitelist"] += 1
            return False
        now = self.clock()
        client = self._client(ip, now)
        if client.banned_until > now:
            self.counts["refused_banned"] += 1
            return False
        rate, bandwidth = self.settings.get("firewall.max_requests_per_s"), self.settings.get("firewall.max_bandwidth_bps")
        elapsed = max(0.0, now - client.at)
        client.at = now
        client.requests = min(rate, client.requests + elapsed * rate) - 1
        client.bits = min(bandwidth, client.bits + elapsed * bandwidth) - 8 * size
        if client.requests < 0 or client.bits < 0:
            reason = "more than %d requests/s" % rate if client.requests < 0 else "more than %d bit/s" % bandwidth
            client.banned_until = now + self.settings.get("firewall.ban_s")
            client.requests, client.bits = rate, bandwidth          # a full allowance when the ban ends
            self.counts["bans"] += 1
            self.counts["refused_banned"] += 1
            if self.on_ban is not None:
                self.on_ban(ip, protocol, reason)
            return False
        self.counts["admitted"] += 1
        return True

    def _client(self, ip, now):
        client = self.clients.get(ip)
        if client is None:
            if len(self.clients) >= MAX_CLIENTS:
                self._forget_one(now)
            client = _Client(self.settings.get("firewall.max_requests_per_s"),
                             self.settings.get("firewall.max_bandwidth_bps"), now)
            self.clients[ip] = client
        else:
            self.clients.move_to_end(ip)
        return client

    def _forget_one(self, now):
        """Forget the least recently seen client that is not banned (a banned one stays banned)."""
        for ip, client in self.clients.items():
            if client.banned_until <= now:
                del self.clients[ip]
                return
        self.clients.popitem(last=False)              # every tracked client banned: the oldest ban ends early

    def banned(self):
        """{ip: seconds left} of the clients banned now."""
        now = self.clock()
        return dict((ip, round(c.banned_until - now, 1)) for ip, c in self.clients.items() if c.banned_until > now)

    def whitelisted(self, ip, protocol, port):
        return any(_matches(rule, ip, protocol, port, self.mac_of) for rule in self.rules)


def _matches(rule, ip, protocol, port, mac_of):
    if rule["protocols"] != "*" and protocol not in rule["protocols"]:
        return False
    if rule["ports"] != "*" and port not in rule["ports"]:
        return False
    if not ip_matches(rule["ip"], ip):
        return False
    return rule["mac"] == "*" or mac_of(ip).lower() == rule["mac"]


def ip_matches(pattern, ip):
    """Whether IPv4 ``ip`` matches ``pattern`` ("192.168.1.*", "*", "10.0.0.5"); an IPv6 client matches "*" only."""
    if pattern == "*":
        return True
    octets = ip.split(".")
    if len(octets) != 4:
        return False
    return all(p == "*" or p == o for p, o in zip(pattern.split("."), octets))


def check_rule(rule):
    """[(field, problem)] of a whitelist rule (empty when it is valid)."""
    if not isinstance(rule, dict):
        return [("rule", "a rule is an object with name, mac, ip, protocols, ports")]
    problems = []
    extra = set(rule) - {"name", "mac", "ip", "protocols", "ports"}
    if extra:
        problems.append(("rule", "unknown fields: %s" % ", ".join(sorted(extra))))
    if not (isinstance(rule.get("name"), str) and _NAME.match(rule["name"])):
        problems.append(("name", "1 to 32 letters, digits, spaces, dots, dashes or underscores"))
    mac = rule.get("mac")
    if not (mac == "*" or (isinstance(mac, str) and _MAC.match(mac))):
        problems.append(("mac", "a MAC address aa:bb:cc:dd:ee:ff in lower case, or *"))
    ip = rule.get("ip")
    octets = ip.split(".") if isinstance(ip, str) else []
    stars = [o == "*" for o in octets]
    if not (ip == "*" or (len(octets) == 4 and all(_OCTET.match(o) for o in octets)
                          and stars == sorted(stars))):        # * only at the end: a prefix, as nftables matches
        problems.append(("ip", "an IPv4 address whose last numbers may be * (192.168.1.*), or *"))
    protocols = rule.get("protocols")
    if not (protocols == "*" or (isinstance(protocols, list) and protocols
                                 and all(p in PROTOCOLS for p in protocols) and len(set(protocols)) == len(protocols))):
        problems.append(("protocols", "* or a list of %s" % ", ".join(PROTOCOLS)))
    ports = rule.get("ports")
    if not (ports == "*" or (isinstance(ports, list) and 0 < len(ports) <= 16
                             and all(type(p) is int and 1 <= p <= 65535 for p in ports))):
        problems.append(("ports", "* or a list of 1 to 16 port numbers"))
    return problems


def nft_ruleset(rules, service_ports, whitelist, rate, bandwidth_bps, ban_s):
    """The nftables ruleset (text for ``nft -f``) of the same policy for the Pi's kernel.

    ``service_ports``: {protocol: port} of the services running. Traffic to those ports from a client over the
    rate or the bandwidth is dropped and its address kept in a timed set for ``ban_s``; with the whitelist on,
    only matching clients reach them. Everything else (SSH, established traffic) is left to the system's rules."""
    lines = ["table inet openm70 {",
             "    set banned { type ipv4_addr; flags dynamic, timeout; timeout %ds; size 65535; }" % ban_s,
             "    chain input {",
             "        type filter hook input priority filter; policy accept;"]
    if service_ports:        # a ban covers the gateway's services, not the rest of the system (SSH)
        lines.append("        ip saddr @banned th dport { %s } drop" % ", ".join(
            str(p) for p in sorted(set(service_ports.values()))))
    for protocol, port in sorted(service_ports.items()):
        transport = TRANSPORT[protocol]
        match = "%s dport %d" % (transport, port)
        if whitelist:
            for rule in rules:
                if rule["protocols"] != "*" and protocol not in rule["protocols"]:
                    continue
                if rule["ports"] != "*" and port not in rule["ports"]:
                    continue
                source = "" if rule["ip"] == "*" else " ip saddr %s" % _nft_prefix(rule["ip"])
                mac = "" if rule["mac"] == "*" else " ether saddr %s" % rule["mac"]
                lines.append("        %s%s%s jump %s_limits" % (match, source, mac, protocol))
            lines.append("        %s drop" % match)
        else:
            lines.append("        %s jump %s_limits" % (match, protocol))
    lines.append("    }")
    for protocol in sorted(service_ports):
        for kind in ("rate", "bytes"):
            lines.append("    set %s_%s { type ipv4_addr; flags dynamic; timeout 60s; size 65535; }" % (protocol, kind))
        lines += ["    chain %s_limits {" % protocol,
                  "        update @%s_rate { ip saddr limit rate over %d/second } add @banned { ip saddr } drop"
                  % (protocol, rate),
                  "        update @%s_bytes { ip saddr limit rate over %d bytes/second } add @banned { ip saddr } drop"
                  % (protocol, max(1, bandwidth_bps // 8)),
                  "        accept",
                  "    }"]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _nft_prefix(pattern):
    """"192.168.1.*" -> "192.168.1.0/24" (``check_rule`` allows * only at the end)."""
    octets = pattern.split(".")
    fixed = sum(1 for o in octets if o != "*")
    address = ".".join(octets[:fixed] + ["0"] * (4 - fixed))
    return str(ipaddress.ip_network("%s/%d" % (address, 8 * fixed)))
