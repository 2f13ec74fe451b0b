"""Northbound services that open and close with their settings (SPEC §8).

A ``SwitchedService`` watches its switches (configuration + policy) and the
settings that shape its socket (port, bind address): turning it off closes
the port at once, turning it on opens it, changing its port reopens it.
Subclasses implement ``_open()`` and ``_close()``.
"""

import asyncio
import logging

from daemon.policy import service_enabled, service_keys

log = logging.getLogger("gateway.service")


class SwitchedService:
    name = "service"
    reopen_keys = ()            # settings that need a close/open when they change

    def __init__(self, gateway):
        self.gateway = gateway
        self.settings = gateway.settings
        self.running = False
        self.last_error = None
        self._lock = asyncio.Lock()
        self._pending = None

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
        if key in service_keys(self.name) or key in self.reopen_keys:
            self._pending = asyncio.get_running_loop().create_task(self.apply(reopen=key in self.reopen_keys))

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
