"""The System page, the web certificate and CA store, the firewall (issue 15).

One part of the door (daemon/api.py composes ``Door`` from these mixins; docs/architecture.md, "The door")."""

import contextlib
import datetime
import logging
import os

from daemon.blocking import BlockingQueueFull
from daemon.door.base import BAD_VALUE, BUSY, NOT_FOUND, STORAGE, SYSTEM, Refused
from daemon.security import audit, firewall as firewall_mod, tlsfiles, webtls
from daemon.system.service import SystemRefused
from daemon.version import VERSION

log = logging.getLogger("gateway.api")


# ---------------------------------------------------------------- issue 15: web certificate, CA store
TLS_MAX_PEM = tlsfiles.MAX_PEM       # one certificate chain or one key: what an upload form may send

def _utc_now(clock):
    return datetime.datetime.fromtimestamp(clock.time(), datetime.timezone.utc)


def _certificate_view(info, now):
    if info is None:
        return None
    return dict(info, state=tlsfiles.expiry_state(info["not_after"], now))


def _tls_refusals(coroutine_function):
    """TlsRefused as Refused(BAD_VALUE) naming its field and catalogue key; a full CA store likewise; a full
    executor as BUSY, a write that failed as STORAGE."""
    async def run(self, *args):
        try:
            return await coroutine_function(self, *args)
        except tlsfiles.TlsRefused as exc:
            raise Refused(BAD_VALUE, str(exc), [{"field": exc.field, "key": exc.key, "params": {}}]) from None
        except webtls.StoreRefused as exc:
            raise Refused(BAD_VALUE, str(exc), [{"field": "ca", "key": exc.key, "params": {}}]) from None
        except BlockingQueueFull:
            raise Refused(BUSY, "the gateway is busy, try again") from None
        except OSError as exc:
            raise Refused(STORAGE, "the certificate could not be written: %s" % exc.strerror) from None
    run.__name__, run.__doc__ = coroutine_function.__name__, coroutine_function.__doc__
    return run


@contextlib.contextmanager
def _system_refusals():
    """The System page's own refusals (daemon/system/service.py SystemRefused) as Refused(SYSTEM) with ``why``."""
    try:
        yield
    except SystemRefused as exc:
        refused = Refused(SYSTEM, str(exc))
        refused.why = exc.why
        raise refused from None


class SystemPart:
    """Mixed into ``daemon.api.Door``: reads ``self._gw``, checks rights with ``self._check``."""

    # ================================================================ the System page (issue 15)
    # daemon/system/service.py does the work; its own refusals come out as Refused(SYSTEM) with ``why`` (a
    # backup's "password", "damaged", "foreign", a package's reason, "no_slots", "busy"...) for the page.

    def _audit(self, event, outcome, **fields):
        """One audit-trail record of this caller (daemon/security/audit.py): time, profile, client, outcome."""
        audit.audit(self._gw.alarms, event, self.caller, outcome, **fields)

    def start_backup(self, kind, password):
        """Start making a ``kind`` backup ("configuration" or "full") encrypted under ``password``; the job."""
        self._check("backup")
        with self._audited("backup", kind=kind), _system_refusals():
            return self._gw.system.start_backup(kind, password, repr(self.caller))

    @contextlib.contextmanager
    def _audited(self, event, **fields):
        """Audit ``event``: success when the block returns, refused (and why) when it raises Refused or the
        System page's own refusal."""
        try:
            yield
        except (Refused, SystemRefused) as exc:
            self._audit(event, "refused", why=getattr(exc, "why", None) or getattr(exc, "reason", ""), **fields)
            raise
        self._audit(event, "success", **fields)

    def backup_job(self, job_id):
        """The backup job ``job_id`` (state, phase, done, total, file, size) or None."""
        self._check("backup")
        return self._gw.system.job(job_id)

    def backup_file(self, job_id):
        """(file name, path) of the finished backup ``job_id``, or None."""
        self._check("backup")
        return self._gw.system.backup_path(job_id)

    async def restore_backup(self, path, password):
        """Restore the uploaded backup at ``path`` (all or nothing); what was restored."""
        self._check("restore")
        with self._audited("restore"), _system_refusals():
            return await self._gw.system.restore(path, password, repr(self.caller))

    async def reset_topology(self):
        """Forget every device (detection finds them again); how many were removed."""
        self._check("reset_topology")
        with self._audited("reset-topology"):
            return await self._gw.system.reset_topology(repr(self.caller))

    async def factory_reset(self):
        """Everything back to the factory state at the next start (daemon/system/reset.py), then restart."""
        self._check("factory_reset")
        with self._audited("factory-reset"):
            await self._gw.system.factory_reset(repr(self.caller))
        return await self.reboot()

    def upgrade_state(self):
        """The running version and the slots ({active, trial, slots}), None without an installation."""
        self._check("upgrade")
        return {"version": VERSION, "slots": self._gw.system.slots()}

    async def install_upgrade(self, path):
        """Verify the uploaded package at ``path`` and install it into the inactive slot; {version, slot}."""
        self._check("upgrade")
        with self._audited("upgrade"), _system_refusals():
            return await self._gw.system.upgrade(path, repr(self.caller))

    def spool_dir(self):
        """Where the web spools an uploaded body (a backup, a package) while it arrives."""
        return os.path.join(self._gw.state_dir, "spool")

    # ================================================================ issue 15: web certificate, CA store

    def web_certificate(self):
        """The served certificate's summary (subject, issuer, validity, SHA-256, self-signed) and its alarm-7
        state; Cyber Security only."""
        self._check("manage_certificates")
        return _certificate_view(self._gw.webtls.web, self._gw.clock.time())

    @_tls_refusals
    async def install_web_certificate(self, cert_pem, key_pem):
        """Check the uploaded pair (tlsfiles.check_pair, off the loop) and serve it to new HTTPS connections at
        once; Refused(BAD_VALUE) with the field and catalogue key of the first problem, nothing changed."""
        self._check("manage_certificates")
        info = await self._gw.webtls.install(cert_pem, key_pem, _utc_now(self._gw.clock))
        self._certificate_event("web certificate installed", info)
        return _certificate_view(info, self._gw.clock.time())

    @_tls_refusals
    async def regenerate_web_certificate(self):
        """A new self-signed certificate for the gateway's own names, served at once."""
        self._check("manage_certificates")
        info = await self._gw.webtls.regenerate(webtls.own_names(self._gw.settings.get), _utc_now(self._gw.clock))
        self._certificate_event("self-signed web certificate made", info)
        return _certificate_view(info, self._gw.clock.time())

    def ca_certificates(self):
        """The CA store: issued to, issued by, validity, fingerprint and state of each."""
        self._check("manage_certificates")
        now = self._gw.clock.time()
        return [_certificate_view(info, now) for info in self._gw.webtls.cas]

    @_tls_refusals
    async def add_ca_certificates(self, pem):
        """Add the CA certificates of one PEM upload (tlsfiles.check_ca); those already there are kept once."""
        self._check("manage_certificates")
        added = await self._gw.webtls.add_cas(pem, _utc_now(self._gw.clock))
        for info in added:
            self._certificate_event("CA certificate added", info)
        return [_certificate_view(info, self._gw.clock.time()) for info in added]

    @_tls_refusals
    async def delete_ca_certificate(self, ca_id):
        """Remove one CA from the store by its fingerprint id; Refused(NOT_FOUND) when there is none."""
        self._check("manage_certificates")
        info = next((entry for entry in self._gw.webtls.cas if entry["id"] == ca_id), None)
        if info is None or not await self._gw.webtls.delete_ca(ca_id):
            raise Refused(NOT_FOUND, "no CA certificate %r in the store" % str(ca_id)[:80])
        self._certificate_event("CA certificate deleted", info)

    def web_ssl_context(self):
        """The HTTPS server's SSLContext for new connections (None when no certificate could be loaded)."""
        return self._gw.webtls.context

    def on_web_certificate_change(self, listener):
        """``listener()`` after the web certificate or the CA store changed."""
        self._gw.webtls.on_change(listener)

    def tls_client_context(self):
        """An SSLContext for the gateway's own TLS clients (FTPS, SMTPS, HTTPS push, MQTT): it verifies servers
        against the CA store only (docs/architecture.md, "HTTPS and the CA store")."""
        return self._gw.webtls.client_context()

    def _certificate_event(self, name, info):
        """A certificate or CA change in the audit trail (the certificate's subject and fingerprint, never a key)."""
        self._audit("certificate", "success", name=name, subject=info["subject"], sha256=info["sha256"],
                    detail="%s (SHA-256 %s)" % (info["subject"], info["sha256"]))

    # ================================================================ the firewall (issue 15)

    def admit(self, ip, port, size=0):
        """Whether this front end may serve a request of ``size`` bytes from client ``ip`` on ``port`` (the
        gateway's firewall: rates, bans, whitelist). Every service's intake asks it; False: drop or close."""
        return self._gw.firewall.admit(ip, self.caller.protocol, port, size)

    def firewall_rules(self):
        """The whitelist's rules, whether it is enforced and the clients banned now (Cyber Security)."""
        self._check("manage_firewall")
        guard = self._gw.firewall
        return {"rules": guard.rules(), "max_rules": firewall_mod.MAX_RULES,
                "enabled": bool(self.setting("firewall.whitelist.enabled")), "banned": guard.firewall.banned(),
                "protocols": list(firewall_mod.PROTOCOLS)}

    async def set_firewall_rules(self, rules):
        """Replace the whitelist's rules: each field checked (one refusal per field), stored, enforced at once,
        the nftables ruleset rewritten; audited with the old and new count."""
        self._check("manage_firewall")
        guard = self._gw.firewall
        problems = guard.problems(rules)
        if problems:
            raise Refused(BAD_VALUE, "; ".join("%s: %s" % item for item in problems),
                          [{"field": field, "key": "firewall.problem." + field.split(".")[-1], "params": {},
                            "message": problem} for field, problem in problems])
        before = guard.rules()
        try:
            await guard.set_rules(rules)
        except OSError as exc:
            raise Refused(STORAGE, "the rules could not be stored: %s" % exc) from None
        audit.audit(self._gw.alarms, "firewall-rules-changed", self.caller, "success",
                    old=len(before), new=len(rules), names=[rule["name"] for rule in rules])
        return guard.rules()
