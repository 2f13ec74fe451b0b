"""Network settings, customisation pictures, the accounts' overview (issue 14).

One part of the door (daemon/api.py composes ``Door`` from these mixins; docs/architecture.md, "The door")."""

import logging

from board import netconfig
from daemon import pictures
from daemon.blocking import BlockingQueueFull, run_blocking
from daemon.door.base import BAD_VALUE, BUSY, NOT_FOUND, UNSUPPORTED, STORAGE, Refused
from daemon.security import rights

log = logging.getLogger("gateway.api")


# ---------------------------------------------------------------- issue 14: network settings, pictures
# board/netconfig.py's problems with a network configuration as a whole -> catalogue keys
NETWORK_PROBLEMS = {"address": "error.network.address", "not_host": "error.network.not_host",
                    "gateway_self": "error.network.gateway_self", "gateway_subnet": "error.network.gateway_subnet",
                    "proxy_host": "error.network.proxy_host"}


def _network_config(settings, changes):
    """The network configuration the settings will give once ``changes`` are applied."""
    return netconfig.config_from_settings(lambda name: changes[name] if name in changes else settings.get(name))


def _touches_network(changes):
    return any(name in netconfig.SETTINGS for name in changes)


def _picture_refusals(coroutine_function):
    """PictureRefused as Refused(BAD_VALUE) with its catalogue message, a full executor as BUSY, a write that
    failed as STORAGE."""
    async def run(self, *args):
        try:
            return await coroutine_function(self, *args)
        except pictures.PictureRefused as exc:
            raise Refused(BAD_VALUE, str(exc), [{"field": "file", "key": exc.key, "params": exc.params}]) from None
        except BlockingQueueFull:
            raise Refused(BUSY, "the gateway is busy, try again") from None
        except OSError as exc:
            raise Refused(STORAGE, "the picture could not be written: %s" % exc.strerror) from None
    run.__name__, run.__doc__ = coroutine_function.__name__, coroutine_function.__doc__
    return run


class ConfigPart:
    """Mixed into ``daemon.api.Door``: reads ``self._gw``, checks rights with ``self._check``."""

    # ================================================================ network, customisation, accounts (issue 14)

    def _check_network(self, changes):
        """Refused(BAD_VALUE) with one message per field when ``changes`` leave a network configuration the
        system could not use (a static address that is the subnet's own, a gateway outside it...)."""
        if not _touches_network(changes):
            return
        found = netconfig.problems(_network_config(self._gw.settings, changes))
        if found:
            details = [{"field": field, "key": NETWORK_PROBLEMS[problem], "params": params}
                       for field, problem, params in found]
            raise Refused(BAD_VALUE, "; ".join("%s: %s" % (field, problem.replace("_", " "))
                                               for field, problem, _params in found), details)

    async def _apply_network(self, changes):
        """Give the board the network configuration ``changes`` lead to (before they are stored: a board that
        cannot write it refuses the change, and nothing is saved). It takes effect at the next boot."""
        if not _touches_network(changes):
            return
        config = _network_config(self._gw.settings, changes)
        try:
            written = await run_blocking(self._gw.board.apply_network, config, self._gw.state_dir)
        except NotImplementedError:
            raise Refused(UNSUPPORTED, "this board cannot change the network configuration") from None
        except OSError as exc:
            raise Refused(STORAGE, "the network configuration could not be written: %s" % exc.strerror) from None
        except BlockingQueueFull:
            raise Refused(BUSY, "the gateway is busy, try again") from None
        self._gw.alarms.record_event({"event": "network_configured", "name": "network configuration saved",
                                      "by": repr(self.caller), "source": "gateway", "criticality": "information",
                                      "detail": "DHCP" if config["dhcp"] else "%s/%s" % (config["address"],
                                                                                         config["netmask"])})
        log.info("network configuration written by %r for the next boot: %s", self.caller, ", ".join(written or ()))

    async def picture_infos(self):
        """{kind: {type, width, height, size, version} or None} of the customisation pictures (anyone: the pages
        show them)."""
        return await pictures.store_for(self._gw.state_dir).infos()

    def picture_limits(self):
        """{kind: (most bytes, widest, tallest)} of the customisation pictures (daemon/pictures.py)."""
        return dict(pictures.KINDS)

    async def picture(self, kind):
        """(info, bytes) of a customisation picture, or None."""
        if kind not in pictures.KINDS:
            return None
        return await pictures.store_for(self._gw.state_dir).get(kind)

    @_picture_refusals
    async def set_picture(self, kind, declared_type, data):
        """Store the company logo or the background (SPEC §7.2) once it is checked (daemon/pictures.py)."""
        self._check("customise")
        info = await pictures.store_for(self._gw.state_dir).put(kind, declared_type, data)
        self._gw.alarms.record_event({"event": "customised", "name": "%s picture set" % kind, "by": repr(self.caller),
                                      "source": "gateway", "criticality": "information",
                                      "detail": "%s %dx%d" % (info["type"], info["width"], info["height"])})
        log.info("%s picture set by %r: %s %dx%d, %d bytes", kind, self.caller, info["type"], info["width"],
                 info["height"], info["size"])
        return info

    @_picture_refusals
    async def reset_picture(self, kind):
        """Back to the default (no picture); Refused(NOT_FOUND) for an unknown kind."""
        self._check("customise")
        if kind not in pictures.KINDS:
            raise Refused(NOT_FOUND, "no picture kind %r" % kind[:32])
        removed = await pictures.store_for(self._gw.state_dir).delete(kind)
        if removed:
            self._gw.alarms.record_event({"event": "customised", "name": "%s picture removed" % kind,
                                          "by": repr(self.caller), "source": "gateway", "criticality": "information"})
        return removed

    def accounts_overview(self):
        """Each profile's password state for the Cyber Security's accounts page: default, must change, expiry,
        seconds locked, Totem's lock; and whether a recovery passphrase exists (never the passphrase)."""
        self._check("manage_accounts")
        accounts_ = self._gw.accounts
        now = self._gw.clock.time()
        profiles = []
        for profile in rights.PROFILES:
            state = dict(accounts_.state(profile))
            if state.get("password"):
                expires = state.get("expires")
                state["must_change"] = bool(state["default"]) or (expires is not None and now >= expires)
            profiles.append(state)
        return {"profiles": profiles, "recovery_passphrase": accounts_.has_recovery_passphrase(),
                "time": now, "max_attempts": self.setting("session.max_attempts"),
                "lockout_s": self.setting("session.lockout_s")}
