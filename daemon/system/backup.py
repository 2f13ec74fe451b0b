"""What goes in and out of a backup file (issue 15, SPEC §7.2): a tar of the state, encrypted under a password.

A *configuration* backup holds the settings and the topology; a *full* one
adds a consistent snapshot of the time-series store and the event log. The
tar (gzip level 1: the store's file is mostly empty space; members in this order)::

    backup.json     {"product", "format", "kind", "version", "created", "netid"}
    settings.json   {"settings": {name: value}}   the stored values, secrets in clear
    topology.json   {"devices": [device, ...]}
    tsdb/<file>     (full) the store's snapshot (daemon/storage Storage.snapshot)
    events.ring     (full) the event log as it is on disk

The event log travels for the record, but a restore does not replace the
receiving gateway's own (its audit trail says what happened to *it*, the
restore included). The tar is then encrypted with ``sealed.encrypt_stream`` (Argon2id + AES-256-GCM in
chunks). The device key is never in a backup: a backup must restore onto
*another* gateway, whose key differs, so its secrets travel in clear inside
the encryption and are sealed again under the receiving gateway's key when
the settings are written. Restoring reads the file back with every member
checked (names, types, sizes) before anything of the gateway changes:
``read_backup`` returns what to apply; the caller applies it.

Everything here blocks (files, Argon2id, AES): run it in the one executor.
"""

import io
import json
import os
import shutil
import tarfile
import tempfile

from daemon.security import sealed
from daemon.storage.store import DIRECTORY_FILE, STORE_FILE

KINDS = ("configuration", "full")
FORMAT = 1
META, SETTINGS, TOPOLOGY, EVENTS, SERIES = "backup.json", "settings.json", "topology.json", "events.ring", "tsdb/"
MAX_DOCUMENT = 1024 * 1024              # settings.json, topology.json, backup.json: far above any real one
MAX_MEMBER = 1024 * 1024 * 1024         # one series or event-log file
MAX_MEMBERS = 16
SERIES_FILES = (STORE_FILE, DIRECTORY_FILE)     # what Storage.snapshot writes


class BackupProblem(ValueError):
    """The backup decrypted but its content is not one we can restore (reason "damaged" or "foreign")."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


def _add_bytes(archive, name, data):
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o600
    archive.addfile(info, io.BytesIO(data))


def _json_bytes(doc):
    return json.dumps(doc, sort_keys=True, indent=1).encode("utf-8")


def write_tar(path, meta, settings_values, topology_docs, series_dir=None, events_path=None):
    """The compressed tar of a backup at ``path``; its size."""
    with tarfile.open(path, "w:gz", compresslevel=1, format=tarfile.PAX_FORMAT) as archive:
        _add_bytes(archive, META, _json_bytes(meta))
        _add_bytes(archive, SETTINGS, _json_bytes({"settings": settings_values}))
        _add_bytes(archive, TOPOLOGY, _json_bytes({"devices": topology_docs}))
        if series_dir is not None:
            for name in sorted(os.listdir(series_dir)):
                archive.add(os.path.join(series_dir, name), SERIES + name, recursive=False)
        if events_path is not None and os.path.exists(events_path):
            archive.add(events_path, EVENTS, recursive=False)
    return os.path.getsize(path)


def encrypt_file(tar_path, target_path, password, kind, created, progress=None):
    """Encrypt the tar at ``tar_path`` into ``target_path`` (mode 0600); the backup's size."""
    total = os.path.getsize(tar_path)
    fd = os.open(target_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(tar_path, "rb") as source, os.fdopen(fd, "wb") as target:
        sealed.encrypt_stream(source, target, password, kind, created, total, progress)
        target.flush()
        os.fsync(target.fileno())
    return os.path.getsize(target_path)


def _document(archive, member, limit=MAX_DOCUMENT):
    if member.size > limit:
        raise BackupProblem("damaged", "%s is larger than %d bytes" % (member.name, limit))
    try:
        return json.loads(archive.extractfile(member).read(limit + 1))
    except ValueError:
        raise BackupProblem("damaged", "%s is not JSON" % member.name) from None


def read_backup(source_path, password, work_dir):
    """Decrypt and check the backup at ``source_path``; a dict of what to restore:
    ``{"meta", "settings": {name: value}, "topology": [device dicts], "series": folder or None}``.

    ``sealed.BackupRefused`` (password, damaged, foreign) or ``BackupProblem`` when anything is wrong; the files
    it extracts (the series) are under ``work_dir``, which the caller removes when done."""
    clear = os.path.join(work_dir, "backup.tar")
    with open(source_path, "rb") as source, open(clear, "wb") as target:
        header = sealed.decrypt_stream(source, target, password)
    found = {}
    series = None
    try:
        with tarfile.open(clear, "r:gz") as archive:
            for index, member in enumerate(archive):
                if index >= MAX_MEMBERS:
                    raise BackupProblem("damaged", "the backup holds more members than a backup has")
                if not member.isreg() or member.size > MAX_MEMBER:
                    raise BackupProblem("damaged", "%r is not a plain file of a backup" % member.name[:80])
                name = member.name
                if name in (META, SETTINGS, TOPOLOGY):
                    if name in found:
                        raise BackupProblem("damaged", "%s appears twice" % name)
                    found[name] = _document(archive, member)
                elif name == EVENTS:
                    continue         # kept for the record; a restore never replaces this gateway's audit trail
                elif name.startswith(SERIES) and name[len(SERIES):] in SERIES_FILES:
                    if series is None:
                        series = tempfile.mkdtemp(prefix="series-", dir=work_dir)
                    with archive.extractfile(member) as data, \
                            open(os.path.join(series, name[len(SERIES):]), "wb") as out:
                        shutil.copyfileobj(data, out, 1 << 20)
                else:
                    raise BackupProblem("damaged", "unexpected member %r" % name[:80])
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BackupProblem("damaged", "the backup's archive is damaged (%s)" % exc) from None
    finally:
        os.unlink(clear)
    for name in (META, SETTINGS, TOPOLOGY):
        if name not in found:
            raise BackupProblem("damaged", "the backup lacks %s" % name)
    meta, settings_doc, topology_doc = found[META], found[SETTINGS], found[TOPOLOGY]
    if not isinstance(meta, dict) or meta.get("product") != sealed.PRODUCT or meta.get("format") != FORMAT \
            or meta.get("kind") not in KINDS or meta.get("kind") != header.get("kind"):
        raise BackupProblem("foreign", "a backup of another product or format")
    values = settings_doc.get("settings") if isinstance(settings_doc, dict) else None
    devices = topology_doc.get("devices") if isinstance(topology_doc, dict) else None
    if not isinstance(values, dict) or not isinstance(devices, list) \
            or not all(isinstance(device, dict) for device in devices):
        raise BackupProblem("damaged", "the backup's settings or topology are not documents")
    if meta["kind"] == "full" and (series is None or not os.path.exists(os.path.join(series, STORE_FILE))):
        raise BackupProblem("damaged", "a full backup without its time series")
    return {"meta": meta, "settings": values, "topology": devices, "series": series if meta["kind"] == "full" else None}
