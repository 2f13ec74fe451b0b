"""The audit trail (IEC 62443-4-2 CR 2.8, issue 15): each security event with time, profile, client address and
outcome in the event log and so in the syslog export; secrets set through the settings in none of them.

A gateway with the web on loopback is driven over HTTP as a browser would: logins that succeed, fail and lock
a profile out, a password change, a policy change, a firewall rules change, a firewall ban. Each is then
found in the event log with the same fields (``ts``, ``event``, ``category`` "audit", ``profile``,
``protocol``, ``client``, ``outcome``) and as a line of the syslog file the Diagnosis page exports. SNMPv3
and SMTP passwords set by the Admin's settings form are then searched for, byte for byte, in the event
log file, the syslog export and everything the daemon logged.
"""

import asyncio
import contextlib
import logging
import os

from conftest import (STRONG_PASSWORDS, WebClient, commission_accounts, demo_topology, running_gateway, wait_for,
                      web_login, web_server)

AUDIT_FIELDS = ("ts", "event", "category", "profile", "protocol", "client", "outcome")


class AuditSite:
    def __init__(self, tmp_path, overrides=None):
        self.state_dir = tmp_path / "state"
        self.overrides = dict({"session.max_attempts": 2}, **(overrides or {}))

    async def __aenter__(self):
        commission_accounts(str(self.state_dir))
        self.web = web_server()
        async with contextlib.AsyncExitStack() as stack:
            self.gw = await stack.enter_async_context(running_gateway(
                self.state_dir, demo_topology(), self.overrides, services=[self.web]))
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc):
        return await self._stack.__aexit__(*exc)

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.web.server.port

    async def events(self):
        await self.gw.alarms.flush()
        return self.gw.alarms.events()

    async def audited(self, event, **fields):
        """The audit records of ``event`` whose fields include ``fields``."""
        return [e for e in await self.events() if e.get("event") == event
                and all(e.get(k) == v for k, v in fields.items())]


def _call(function, *args):
    return asyncio.to_thread(function, *args)


def test_each_security_event_is_audited_with_the_same_fields_and_exported(tmp_path):
    async def scenario():
        async with AuditSite(tmp_path, {"firewall.enabled": True, "firewall.max_requests_per_s": 10}) as site:
            client = WebClient(site.base)
            status, _answer = await _call(client.login, "admin", "Wrong-password-1")
            assert status == 401
            status, _answer = await _call(client.login, "admin", "Wrong-password-2")     # the second: locked
            advanced = await _call(web_login, site.base, "advanced")
            new_password = STRONG_PASSWORDS["advanced"] + "x"
            status, answer = await _call(advanced.change_password, STRONG_PASSWORDS["advanced"], new_password)
            assert status == 200, answer
            cyber = await _call(web_login, site.base, "cyber")
            status, answer = await _call(cyber.post, "/api/settings", {"policy.snmp": False})
            assert status == 200, answer
            rule = {"name": "scada", "mac": "*", "ip": "192.168.1.*", "protocols": ["modbus"], "ports": [502]}
            status, answer = await _call(cyber.post, "/api/firewall/rules", {"rules": [rule]})
            assert status == 200, answer
            site.gw.firewall.admit("192.0.2.77", "modbus", 502, 12)        # a flood, as an intake sees it
            while site.gw.firewall.admit("192.0.2.77", "modbus", 502, 12):
                pass

            expected = {   # event: (fields it must carry, how many)
                "login-failed": ({"profile": "admin", "client": "127.0.0.1", "outcome": "failure"}, 2),
                "profile-locked": ({"profile": "admin", "client": "127.0.0.1", "outcome": "lockout"}, 1),
                "login": ({"profile": "cyber", "client": "127.0.0.1", "outcome": "success"}, 1),
                "password-changed": ({"profile": "advanced", "client": "127.0.0.1", "outcome": "success"}, 1),
                "setting-changed": ({"profile": "cyber", "client": "127.0.0.1", "outcome": "success",
                                     "setting": "policy.snmp", "old": True, "new": False}, 1),
                "firewall-rules-changed": ({"profile": "cyber", "client": "127.0.0.1", "outcome": "success",
                                            "old": 0, "new": 1}, 1),
                "firewall-ban": ({"profile": "modbus", "protocol": "modbus", "client": "192.0.2.77",
                                  "outcome": "refused"}, 1),
            }
            for event, (fields, count) in expected.items():
                found = await site.audited(event, **fields)
                assert len(found) == count, (event, found, [e for e in await site.events() if e["event"] == event])
                for record in found:
                    assert all(name in record for name in AUDIT_FIELDS), record
                    assert record["category"] == "audit" and isinstance(record["ts"], float), record
            # the syslog export holds each of them, one line each, with the client's address
            status, text, _headers = await _call(cyber.request, "GET", "/api/events/syslog")
            assert status == 200
            lines = text.decode("ascii").splitlines() if isinstance(text, bytes) else text.splitlines()
            for event, (fields, count) in expected.items():
                mine = [line for line in lines if " %s - " % event in line and '"category":"audit"' in line
                        and '"client":"%s"' % fields["client"] in line and '"profile":"%s"' % fields["profile"] in line]
                assert len(mine) == count, (event, mine)
    asyncio.run(scenario())


SECRETS = {"snmp.v3.read_auth_password": "Rd-Auth-7391", "snmp.v3.write_priv_password": "Wr-Priv-8826",
           "smtp.password": "Smtp-Secret-55120"}


def test_secrets_set_through_the_settings_never_reach_the_event_log_the_export_or_the_log(tmp_path, caplog):
    async def scenario():
        async with AuditSite(tmp_path) as site:
            admin = await _call(web_login, site.base, "admin")
            status, answer = await _call(admin.post, "/api/settings", SECRETS)
            assert status == 200, answer
            assert all(site.gw.settings.get(name) == value for name, value in SECRETS.items())
            changed = await site.audited("setting-changed")
            assert sorted(e["setting"] for e in changed) == sorted(SECRETS)          # audited, by name only
            assert all(e["old"] == e["new"] == "(secret)" for e in changed), changed
            # a refused secret (too short) is not quoted either
            status, answer = await _call(admin.post, "/api/settings", {"snmp.v3.read_auth_password": "Sh0rt!"})
            assert status == 400
            status, export, _headers = await _call(admin.request, "GET", "/api/events/syslog")
            assert status == 200
            await site.gw.alarms.flush()
            with open(os.path.join(site.state_dir, "events.ring"), "rb") as handle:
                ring = handle.read()
            return export if isinstance(export, bytes) else export.encode(), ring

    with caplog.at_level(logging.DEBUG):
        export, ring = asyncio.run(scenario())
    logged = "\n".join(record.getMessage() for record in caplog.records).encode()
    assert b"(secret)" in ring and b"smtp.password" in export         # the search looks where the records are
    for value in list(SECRETS.values()) + ["Sh0rt!"]:
        for where, data in (("event log", ring), ("syslog export", export), ("daemon log", logged)):
            assert value.encode() not in data, (value, where)


def test_certificates_backups_restores_upgrades_and_resets_are_audited_with_their_outcome(tmp_path):
    """The System page's and the certificate page's commands, through the door as the web calls them: each
    leaves one audit record with the caller's profile and address, and a refusal says why."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from daemon.api import Refused
    from daemon.security.rights import Caller

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Audit Root CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_pem = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
              .not_valid_after(now + datetime.timedelta(days=400))
              .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
              .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)).decode()

    async def scenario():
        async with AuditSite(tmp_path) as site:
            door = site.gw.door(Caller("web", "cyber", "127.0.0.9"))
            await door.regenerate_web_certificate()
            added = await door.add_ca_certificates(ca_pem)
            await door.delete_ca_certificate(added[0]["id"])
            job = door.start_backup("configuration", "Backup-Pass-2026!")
            await wait_for(lambda: door.backup_job(job["id"])["state"] != "running", guard=60)
            garbage = tmp_path / "garbage.bin"
            garbage.write_bytes(b"not a backup, not a package" * 10)
            for command in (lambda: door.restore_backup(str(garbage), "Backup-Pass-2026!"),
                            lambda: door.install_upgrade(str(garbage))):
                try:
                    await command()
                    raise AssertionError("a garbage file was accepted")
                except Refused:
                    pass
            await door.reset_topology()
            events = [e for e in await site.events() if e.get("category") == "audit" and e.get("client") == "127.0.0.9"]
            seen = [(e["event"], e["outcome"]) for e in events]
            assert seen == [("certificate", "success")] * 3 + [("backup", "success"), ("restore", "refused"),
                                                                ("upgrade", "refused"), ("reset-topology", "success")]
            for record in events:
                assert all(field in record for field in AUDIT_FIELDS) and record["profile"] == "cyber", record
            assert events[4]["why"] == "foreign" and events[5]["why"]
            assert "Audit Root CA" in events[1]["subject"] and "PRIVATE" not in repr(events)
    asyncio.run(scenario())
