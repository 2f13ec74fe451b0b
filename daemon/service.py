"""Northbound services that open and close with their settings (SPEC §8).

A ``SwitchedService`` watches its switches (configuration + policy) and the
settings that shape its socket (port, bind address): turning it off closes
the port at once, turning it on opens it, changing its port reopens it.
Subclasses implement ``_open()`` and ``_close()``.
"""

import asyncio
import logging

from daemon.security.policy import service_enabled, service_keys

log = logging.getLogger("gateway.service")


class SwitchedService:
    name = "service"
    reopen_keys = ()            # settings that need a close/open when they change

    def __init__(self, door):
        self.door = door                    # the gateway as this service may see it (daemon/api.py)
        self.settings = door.settings_view()
        self.running = False
        self.last_error = None
        self._lock = asyncio.Lock()
        self._pending = None
        self._reopen_wanted = False

    def enabled(self):
        return service_enabled(self.settings, self.name)

    async def start(self):
        self.settings.on_change(self._changed)
        await self.apply()

    async def stop(self):
        async with self._lock:
            if self.running:
                await self._close()
                self.running = False

    def _changed(self, key, _value):
        """Coalesce: one ``set_many`` of several keys applies (and reopens) once."""
        if key not in service_keys(self.name) and key not in self.reopen_keys:
            return
        self._reopen_wanted = self._reopen_wanted or key in self.reopen_keys
        if self._pending is None or self._pending.done():
            self._pending = asyncio.get_running_loop().create_task(self._apply_pending())

    async def _apply_pending(self):
        reopen, self._reopen_wanted = self._reopen_wanted, False
        await self.apply(reopen=reopen)

    async def apply(self, reopen=False):
        """Bring the socket in line with the settings (idempotent)."""
        async with self._lock:
            want = self.enabled()
            if self.running and (not want or reopen):
                await self._close()
                self.running = False
                log.info("%s closed", self.name)
            if want and not self.running:
                try:
                    await self._open()
                except OSError as exc:
                    self.last_error = str(exc)
                    log.error("%s cannot open: %s", self.name, exc)
                    return
                self.running = True
                self.last_error = None
                log.info("%s open", self.name)

    async def _open(self):
        raise NotImplementedError

    async def _close(self):
        raise NotImplementedError

    def status(self):
        return {"enabled": self.enabled(), "running": self.running, "error": self.last_error}
