"""The System page's commands on the gateway's parts: backup jobs, restore, reset topology, factory reset, upgrade.

The door (daemon/api.py) checks who asks and calls these; they touch the
parts only through the parts' own commands (``Settings.replace_stored``,
``Topology.replace``, ``Storage.start/stop``), so every file is written as
its owner writes it (atomically), and all the blocking work (tar, Argon2id,
AES, the package check) runs in the one executor.

**Backup** is a job: one at a time, polled for its progress (bytes encrypted
of the tar's size; a full backup first takes the store's consistent snapshot).
Only the last backup file is kept, in ``<state>/backup-out/``, until the
next one or a restart: it is encrypted, but a copy the user did not ask to keep
is not left behind.

**Restore** decrypts and checks everything (every member, each device, every
setting, the cross-checks) before one thing changes; a refusal changes nothing.
Then the topology and the settings are replaced (one atomic write each; the
secrets sealed under *this* gateway's key), a full backup's time series
replace the store's (closed, swapped, reopened), and the switched services are
restarted so each opens with the restored settings. The event log is never
replaced: it is this gateway's audit trail, and the restore is recorded in it.

**Upgrade**: the uploaded package is verified (``package.stage``, against the
release key the gateway was built with, not a setting) into a staging folder
beside the slots, then installed into the inactive slot (``Slots.install``);
the next start runs it on trial. Without a launcher's installation root
(``OPENM70_ROOT``: the simulated board, a developer's checkout) it is refused.
"""

import asyncio
import itertools
import logging
import os
import shutil
import tempfile
import time

from daemon.blocking import BlockingQueueFull, run_blocking
from daemon.security import sealed
from daemon.state.settings import SettingError
from daemon.state.topology import Device, TopologyRefused
from daemon.system import backup, reset
from daemon.upgrade import package
from daemon.upgrade.slots import Slots
from daemon.version import VERSION

log = logging.getLogger("gateway.system")

OUT_DIR = "backup-out"          # the last backup made, for its download
WORK_DIR = "restore-work"       # a restore's decrypted parts, removed when it ends
MIN_PASSWORD, MAX_PASSWORD = 8, 128
DEFAULT_RELEASE_KEY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "upgrade",
                                   "release-key.pub")


class SystemRefused(Exception):
    """``why``: a backup's ("password", "damaged", "foreign"), a package's (package.REASONS), "no_slots",
    "busy", "password_rule", "configuration" (a backup whose settings or topology this gateway refuses)."""

    def __init__(self, why, message):
        super().__init__(message)
        self.why = why


def _backup_name(kind, netid, created):
    return "m70-%s-%s-%s.m70bak" % (kind, netid, time.strftime("%Y%m%d-%H%M%S", time.gmtime(created)))


def _clear_dir(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, mode=0o700, exist_ok=True)


def _stage_file(path, public_key_path, installed, staging_parent):
    with open(public_key_path, "rb") as handle:
        key = package.load_public_key(handle.read())
    os.makedirs(staging_parent, exist_ok=True)
    with open(path, "rb") as source:
        return package.stage(source, key, installed, staging_parent)


class SystemOps:
    def __init__(self, gateway, release_key=None, install_root=None):
        self._gw = gateway
        self.release_key = release_key or DEFAULT_RELEASE_KEY       # never a setting: the build's own key
        self.install_root = install_root                            # None: not installed with slots
        self._jobs = {}
        self._ids = itertools.count(1)
        self._running = None           # the backup job under way
        self._restoring = False
        self._upgrading = False
        self.out_dir = os.path.join(gateway.state_dir, OUT_DIR)
        self.work_dir = os.path.join(gateway.state_dir, WORK_DIR)
        for folder in (self.out_dir, self.work_dir):      # a restart forgets the last backup and any half restore
            shutil.rmtree(folder, ignore_errors=True)

    # ---------------------------------------------------------------- backup

    def start_backup(self, kind, password, who):
        if kind not in backup.KINDS:
            raise SystemRefused("kind", "kind must be one of %s" % ", ".join(backup.KINDS))
        if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise SystemRefused("password_rule", "the backup password needs %d to %d characters"
                                % (MIN_PASSWORD, MAX_PASSWORD))
        if self._running is not None:
            raise SystemRefused("busy", "a backup is already being made")
        job = {"id": next(self._ids), "kind": kind, "state": "running", "phase": "collecting", "done": 0,
               "total": None, "error": None, "file": None, "size": None, "created": self._gw.clock.time()}
        self._jobs = {job["id"]: job}                 # only the last job (and its file) is kept
        self._running = asyncio.get_running_loop().create_task(self._make_backup(job, password, who))
        return dict(job)

    def job(self, job_id):
        job = self._jobs.get(job_id)
        return None if job is None else dict((k, v) for k, v in job.items() if k != "path")

    def backup_path(self, job_id):
        job = self._jobs.get(job_id)
        return (job["file"], job["path"]) if job is not None and job["state"] == "done" else None

    async def _make_backup(self, job, password, who):
        gw = self._gw
        try:
            await run_blocking(_clear_dir, self.out_dir)
            work = tempfile.mkdtemp(prefix="work-", dir=self.out_dir)
            series = events = None
            if job["kind"] == "full":
                await gw.alarms.flush()
                events = gw.alarms.log.path if gw.alarms.log is not None else None
                if gw.storage.ready:
                    series = os.path.join(work, "series")
                    await gw.storage.snapshot(series)
            meta = {"product": sealed.PRODUCT, "format": backup.FORMAT, "kind": job["kind"], "version": VERSION,
                    "created": job["created"], "netid": gw.identity["netid"]}
            tar_path = os.path.join(work, "backup.tar")
            job["total"] = await run_blocking(backup.write_tar, tar_path, meta, gw.settings.stored(),
                                              gw.topology.as_list(), series, events)
            job["phase"] = "encrypting"
            name = _backup_name(job["kind"], gw.identity["netid"], job["created"])
            path = os.path.join(self.out_dir, name)

            def progress(done, total):
                job["done"] = done
            job["size"] = await run_blocking(backup.encrypt_file, tar_path, path, password, job["kind"],
                                             job["created"], progress)
            await run_blocking(shutil.rmtree, work, True)
            job.update(state="done", phase="done", file=name, path=path, done=job["total"])
            self._event("backup", "backup made", who, "%s backup, %d bytes" % (job["kind"], job["size"]))
        except (OSError, BlockingQueueFull) as exc:
            job.update(state="failed", error=str(exc))
            self._event("backup-failed", "backup failed", who, str(exc), "non-critical")
            log.error("backup failed: %s", exc)
        finally:
            self._running = None

    # ---------------------------------------------------------------- restore

    async def restore(self, path, password, who):
        """Restore the backup at ``path`` (an uploaded file); what was restored. SystemRefused: nothing changed."""
        if self._restoring or self._running is not None:
            raise SystemRefused("busy", "a backup or a restore is under way")
        self._restoring = True
        gw = self._gw
        try:
            await run_blocking(_clear_dir, self.work_dir)
            try:
                found = await run_blocking(backup.read_backup, path, password, self.work_dir)
            except (sealed.BackupRefused, backup.BackupProblem) as exc:
                self._event("restore-refused", "restore refused", who, "%s: %s" % (exc.reason, exc),
                            "non-critical")
                raise SystemRefused(exc.reason, str(exc)) from None
            try:
                devices = [Device.from_dict(doc) for doc in found["topology"]]
                gw.topology.check(devices)
                gw.settings.check_stored(found["settings"])
            except (KeyError, TypeError, ValueError, TopologyRefused, SettingError) as exc:
                self._event("restore-refused", "restore refused", who, "configuration: %s" % exc, "non-critical")
                raise SystemRefused("configuration", "this gateway cannot take the backup's configuration: %s"
                                    % exc) from None
            await gw.topology.replace(devices)
            await gw.settings.replace_stored(found["settings"])
            if found["series"] is not None:
                await self._replace_series(found["series"])
            restarted = []
            for service in gw.services:
                if hasattr(service, "apply"):          # the switched services open again with the new settings
                    await service.stop()
                    await service.apply()
                    restarted.append(service.name)
            meta = found["meta"]
            self._event("restore", "backup restored", who, "%s backup of %s (version %s) made at %s" % (
                meta["kind"], meta.get("netid"), meta.get("version"), meta.get("created")))
            return {"kind": meta["kind"], "devices": len(devices), "settings": len(found["settings"]),
                    "created": meta.get("created"), "restarted": restarted}
        finally:
            self._restoring = False
            await run_blocking(shutil.rmtree, self.work_dir, True)

    async def _replace_series(self, folder):
        storage = self._gw.storage
        await storage.stop()
        storage.store = None                 # nothing is added to the closed store meanwhile
        target = storage.directory
        await run_blocking(_swap_dir, folder, target)
        await storage.start()

    # ---------------------------------------------------------------- resets

    async def reset_topology(self, who):
        removed = len(self._gw.topology.devices)
        await self._gw.topology.replace([])
        self._event("topology-reset", "topology reset", who, "%d device(s) removed" % removed)
        return removed

    async def factory_reset(self, who):
        await run_blocking(reset.request, self._gw.state_dir, who)
        self._event("factory-reset", "factory reset asked", who, "everything is removed at the next start")
        await self._gw.alarms.flush()

    # ---------------------------------------------------------------- upgrade

    def slots(self):
        """The slots' state (None when the gateway was not installed with slots)."""
        if not self.install_root:
            return None
        return Slots(self.install_root).describe()

    async def upgrade(self, path, who):
        if not self.install_root:
            raise SystemRefused("no_slots", "this gateway was not installed with slots (make install)")
        if self._upgrading:
            raise SystemRefused("busy", "an upgrade is already being checked")
        self._upgrading = True
        slots = Slots(self.install_root)
        try:
            try:
                manifest, staging = await run_blocking(_stage_file, path, self.release_key, VERSION, slots.folder)
            except package.PackageRefused as exc:
                self._event("upgrade-refused", "upgrade refused", who, "%s: %s" % (exc.reason, exc), "non-critical")
                raise SystemRefused(exc.reason, str(exc)) from None
            slot = await run_blocking(slots.install, staging, manifest)
        finally:
            self._upgrading = False
        self._event("upgrade-installed", "upgrade installed", who, "version %s in slot %s, on trial at the next start"
                    % (manifest["version"], slot))
        return {"version": manifest["version"], "slot": slot}

    def _event(self, event, name, who, detail, criticality="information"):
        self._gw.alarms.record_event({"event": event, "name": name, "by": who, "category": "system",
                                      "source": "gateway", "criticality": criticality, "detail": detail})
        log.warning("%s by %s: %s", name, who, detail)


def _swap_dir(new, target):
    old = target + ".old"
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(target):
        os.rename(target, old)
    shutil.move(new, target)
    shutil.rmtree(old, ignore_errors=True)
