"""The daemon's firewall logic (issue 15): limits per client with one ban each, the whitelist's rules, bounded
state, and the nftables ruleset for the Pi checked by nftables itself (``nft -c``)."""

import shutil
import subprocess

import pytest

from daemon.security import firewall as fw

LIMITS = {"firewall.enabled": True, "firewall.max_bandwidth_bps": 80000, "firewall.max_requests_per_s": 100,
          "firewall.ban_s": 30, "firewall.whitelist.enabled": False}


class Settings(dict):
    def get(self, name):
        return self[name]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def firewall(**changes):
    bans, clock = [], Clock()
    wall = fw.Firewall(Settings(LIMITS, **changes), on_ban=lambda *ban: bans.append(ban), clock=clock)
    return wall, bans, clock


def test_a_client_over_the_request_rate_is_banned_once_for_the_ban_time_and_others_go_on():
    wall, bans, clock = firewall()
    assert all(wall.admit("192.0.2.10", "snmp", 161, 50) for _ in range(100))       # one second's allowance
    assert not wall.admit("192.0.2.10", "snmp", 161, 50)                            # the 101st in that second
    assert bans == [("192.0.2.10", "snmp", "more than 100 requests/s")]
    for n in range(1000):                                                           # the flood goes on
        assert not wall.admit("192.0.2.10", "snmp", 161, 50)
        if n % 20 == 0:
            assert wall.admit("192.0.2.11", "snmp", 161, 50)                        # another client meanwhile
    assert len(bans) == 1 and wall.counts["bans"] == 1                              # one ban, not one per packet
    clock.now += 0.5
    assert all(wall.admit("192.0.2.12", "modbus", 502, 12) for _ in range(100))     # a third client: its own bucket
    clock.now += 29.4
    assert not wall.admit("192.0.2.10", "snmp", 161, 50) and wall.banned()["192.0.2.10"] == pytest.approx(0.1)
    clock.now += 0.2
    assert wall.admit("192.0.2.10", "snmp", 161, 50)                                # the ban is over
    assert len(bans) == 1


def test_a_steady_client_at_the_rate_is_never_banned():
    wall, bans, clock = firewall()
    for _ in range(5000):                   # 50 s at exactly 100 requests/s
        clock.now += 0.01
        assert wall.admit("192.0.2.20", "bacnet", 47808, 30)
    assert bans == []


def test_a_client_over_the_bandwidth_is_banned_for_its_bytes():
    wall, bans, clock = firewall()
    assert wall.admit("192.0.2.30", "http", 80, 9000)                # 72,000 of 80,000 bits
    assert not wall.admit("192.0.2.30", "http", 80, 1500)            # over one second's 80,000 bits
    assert bans == [("192.0.2.30", "http", "more than 80000 bit/s")]


def test_off_means_off_and_the_state_stays_bounded_under_spoofed_sources(monkeypatch):
    wall, bans, clock = firewall(**{"firewall.enabled": False})
    assert all(wall.admit("192.0.2.40", "snmp", 161, 10 ** 6) for _ in range(1000)) and not wall.clients
    monkeypatch.setattr(fw, "MAX_CLIENTS", 64)
    wall, bans, clock = firewall(**{"firewall.max_requests_per_s": 10})
    for _ in range(11):
        wall.admit("198.51.100.1", "snmp", 161)                      # banned first
    for n in range(10000):
        wall.admit("10.%d.%d.%d" % (n >> 16 & 255, n >> 8 & 255, n & 255), "snmp", 161)
    assert len(wall.clients) <= 64
    assert not wall.admit("198.51.100.1", "snmp", 161)               # a ban is not forgotten to make room


RULES = [{"name": "BMS floor 1", "mac": "*", "ip": "192.168.1.*", "protocols": ["modbus", "bacnet"], "ports": "*"},
         {"name": "scada", "mac": "aa:bb:cc:dd:ee:ff", "ip": "10.0.0.5", "protocols": "*", "ports": [502]}]


def test_the_whitelist_admits_matching_clients_only():
    wall, bans, clock = firewall(**{"firewall.whitelist.enabled": True})
    macs = {"10.0.0.5": "AA:BB:CC:DD:EE:FF", "10.0.0.6": "aa:bb:cc:dd:ee:00"}
    wall.mac_of = lambda ip: macs.get(ip, "")
    wall.set_rules(RULES)
    assert wall.admit("192.168.1.77", "modbus", 502) and wall.admit("192.168.1.77", "bacnet", 47808)
    assert not wall.admit("192.168.1.77", "snmp", 161)               # protocol not in the rule
    assert not wall.admit("192.168.2.77", "modbus", 502)             # another subnet
    assert wall.admit("10.0.0.5", "modbus", 502)                     # MAC matches (case-insensitive)
    assert not wall.admit("10.0.0.5", "http", 80)                    # port not in the rule
    assert not wall.admit("10.0.0.6", "modbus", 502)                 # same rule, another MAC: no
    assert not wall.admit("::1", "modbus", 502)
    assert wall.counts["refused_whitelist"] == 5 and bans == []


def test_rules_are_checked_field_by_field():
    assert fw.check_rule(RULES[0]) == [] and fw.check_rule(RULES[1]) == []
    bad = {"name": "", "mac": "AA:BB:CC:DD:EE:FF", "ip": "192.*.1.5", "protocols": ["ftp"], "ports": [0], "x": 1}
    assert [field for field, _ in fw.check_rule(bad)] == ["rule", "name", "mac", "ip", "protocols", "ports"]
    for ip in ("256.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "", None, "*.*.*.1"):
        assert [f for f, _ in fw.check_rule(dict(RULES[0], ip=ip))] == ["ip"], ip
    assert fw.check_rule("rule") != []
    wall, _bans, _clock = firewall()
    with pytest.raises(ValueError, match="at most 10 rules"):
        wall.set_rules([RULES[0]] * 11)
    with pytest.raises(ValueError, match="protocols"):
        wall.set_rules([dict(RULES[0], protocols=[])])
    assert wall.rules == []                                          # a refused set changes nothing


def test_the_pi_ruleset_is_valid_nftables_and_drops_what_the_whitelist_does_not_name(tmp_path):
    assert shutil.which("nft"), "nft missing: run `make test` (Debian package nftables)"
    ports = {"http": 80, "modbus": 502, "snmp": 161, "bacnet": 47808}
    for whitelist in (False, True):
        text = fw.nft_ruleset(RULES, ports, whitelist, 2000, 1000000, 30)
        path = tmp_path / "openm70.nft"
        path.write_text(text)
        checked = subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr + text
        assert "timeout 30s" in text and "limit rate over 2000/second" in text and "125000 bytes/second" in text
        assert "ip saddr @banned th dport { 80, 161, 502, 47808 } drop" in text
        assert ("tcp dport 502 ip saddr 192.168.1.0/24 jump modbus_limits" in text) == whitelist
        assert ("tcp dport 80 drop" in text) == whitelist                # no rule names HTTP: dropped when on
        assert "ether saddr aa:bb:cc:dd:ee:ff" in text or not whitelist
