"""What the System page's tests share: a gateway with the web server on loopback, a small time-series store, a
test release key, and HTTP helpers for the streamed uploads and the backup job (issue 15)."""

import asyncio
import base64
import contextlib
import os

from conftest import demo_devices, demo_topology, running_gateway, wait_for, web_server
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daemon.storage.format import Geometry

SETTINGS = {"alarms.check_s": 3600}
SMALL_STORE = Geometry(64, 1464)          # a few MB: a full backup stays quick
BACKUP_PASSWORD = "Backup-Pass-2026"


def release_keys(folder):
    """(private key, path of the public key's PEM) of a test release key pair."""
    private = Ed25519PrivateKey.generate()
    path = os.path.join(str(folder), "test-release-key.pub")
    with open(path, "wb") as handle:
        handle.write(private.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, path


@contextlib.asynccontextmanager
async def system_site(state_dir, devices=True, overrides=None, **options):
    """A started gateway with the web server (and the demo site's devices unless ``devices`` is False); yields
    (gateway, base URL). ``options`` go to Gateway (release_key, install_root)."""
    web = web_server()
    settings = dict(SETTINGS)
    settings.update(overrides or {})
    async with running_gateway(state_dir, demo_topology(), settings, services=[web], storage_geometry=SMALL_STORE,
                               **options) as gw:
        if devices:
            await gw.topology.replace(demo_devices())
            await wait_for(lambda: all(p.cycles >= 1 for p in gw.pollers.values()), guard=60)
        yield gw, "http://127.0.0.1:%d" % web.server.port


async def call(fn, *args, **kwargs):
    """A blocking HTTP client call, run in a thread while the gateway's loop goes on serving."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def password_header(password):
    return base64.urlsafe_b64encode(password.encode("utf-8")).decode("ascii").rstrip("=")


def upload(client, path, data, password=None, headers=None):
    """POST ``data`` as the raw body of a streamed route: (status, answer)."""
    sent = {"Content-Type": "application/octet-stream"}
    if password is not None:
        sent["X-Backup-Password"] = password_header(password)
    sent.update(headers or {})
    return client.request("POST", path, raw=data, headers=sent)[:2]


async def make_backup(client, kind="configuration", password=BACKUP_PASSWORD):
    """Start a backup through the API, poll its job to the end; (every job state seen, the file's bytes)."""
    status, job = await call(client.post, "/api/system/backup", {"kind": kind, "password": password})
    assert status == 202, job
    seen = [job]
    for _ in range(2000):
        status, job = await call(client.get, "/api/system/backup/%d" % job["id"])
        assert status == 200, job
        seen.append(job)
        if job["state"] != "running":
            break
        await asyncio.sleep(0.01)
    assert job["state"] == "done", job
    status, data, headers = await call(client.request, "GET", "/api/system/backup/%d/file" % job["id"])
    assert status == 200 and isinstance(data, bytes), (status, data)
    assert headers["Content-Disposition"].startswith("attachment;")
    return seen, data
