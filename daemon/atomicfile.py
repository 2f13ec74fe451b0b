"""Atomic file replacement (write temp, fsync, rename, fsync dir) and a tinydb
storage built on it, so configuration survives a power cut intact (SPEC §4).

The configuration documents (settings, topology: ``AtomicJSONStorage``) also
keep a good copy: each document is written twice, to ``<file>`` then to
``<file>.bak``, each atomically. A document that does not parse when it
is read (hand-edited, damaged medium) is moved aside to ``<file>.corrupt``
(kept for inspection), and the ``.bak`` copy is put back in its place; without a
good copy the reader gets nothing (its defaults). Either way the storage's
``problem`` says what happened, naming the file, and it is logged as an error
(docs/architecture.md, "Decisions").
"""

import json
import logging
import os

from tinydb.storages import Storage

log = logging.getLogger("gateway.state")

BACKUP_SUFFIX = ".bak"
CORRUPT_SUFFIX = ".corrupt"


def atomic_write(path, data):
    """Replace ``path`` by ``data`` (bytes) so a reader sees old or new, never half."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_directory(directory)


def read_json(path, default=None):
    """The JSON document at ``path``; ``default`` when it does not exist or is empty.

    A document that exists but does not parse raises ValueError: callers
    decide whether that is a fallback or an error.
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return default
    if not raw.strip():
        return default
    return json.loads(raw)


def write_json(path, doc, backup=False, **dumps_options):
    """Replace ``path`` by ``doc`` as JSON, atomically; ``backup``: then ``path.bak`` too (a good copy)."""
    options = {"sort_keys": True, "separators": (",", ":")}
    options.update(dumps_options)
    data = json.dumps(doc, **options).encode()
    atomic_write(path, data)
    if backup:          # after the document: a cut between the two leaves a good document and an older copy
        atomic_write(path + BACKUP_SUFFIX, data)


def _json_object(raw, check=None):
    """The JSON object in ``raw`` (bytes); ValueError for anything else (bad JSON, bad UTF-8, a list,
    or what ``check(doc)`` refuses by raising ValueError)."""
    doc = json.loads(raw)
    if not isinstance(doc, dict):
        raise ValueError("a JSON object was expected, not %s" % type(doc).__name__)
    if check is not None:
        check(doc)
    return doc


def read_json_recovering(path, check=None):
    """(document, problem) of a configuration document that must survive a bad file.

    ``document`` is the JSON object at ``path`` (None when there is no file);
    ``problem`` is None. When the file does not hold a JSON object (that
    ``check(doc)`` accepts: it raises ValueError for a wrong shape), it
    is moved aside to ``path.corrupt`` (replacing an older one), the good copy
    ``path.bak`` (if any) is restored in its place and returned, and ``problem``
    says so, naming the files.
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return None, None
    try:
        return _json_object(raw, check), None
    except ValueError as exc:
        reason = str(exc)[:120]
    aside = path + CORRUPT_SUFFIX
    os.replace(path, aside)
    fsync_directory(os.path.dirname(os.path.abspath(path)))
    good = None
    try:
        with open(path + BACKUP_SUFFIX, "rb") as handle:
            raw = handle.read()
        good = _json_object(raw, check)
    except (OSError, ValueError):
        pass
    if good is not None:
        atomic_write(path, raw)
        problem = "%s is not valid (%s): kept as %s; the good copy %s was restored" % (
            path, reason, aside, path + BACKUP_SUFFIX)
    else:
        problem = "%s is not valid (%s): kept as %s; there is no good copy: defaults apply" % (
            path, reason, aside)
    log.error("%s", problem)
    return good, problem


def fsync_directory(directory):
    """Make a rename inside ``directory`` durable (the entry itself is data)."""
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class AtomicJSONStorage(Storage):
    """tinydb storage: whole-document JSON, replaced atomically on each write, a good copy kept (.bak).

    ``problem``: set (and kept) when a read found a bad document (read_json_recovering).
    """

    def __init__(self, path, check=None, **_kwargs):
        self.path = path
        self.check = check
        self.problem = None

    def read(self):
        doc, problem = read_json_recovering(self.path, self.check)
        if problem is not None:
            self.problem = problem
        return doc

    def write(self, data):
        write_json(self.path, data, backup=True, indent=1, separators=None)

    def close(self):
        pass
