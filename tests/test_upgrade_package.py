"""Signed upgrade packages and the A/B slots (issue 15): what is refused is refused before anything is written
outside the staging folder, and a trial slot that never reports healthy is rolled back.

The signing key pair is made here, at test time (the release key's private half is never in the repository).
Packages are built by the project's own builder for the good cases and by hand with ``tarfile`` for the
hostile ones, so a refusal is the verifier's, not a builder that could not write the attack.
"""

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import REPO
from daemon.upgrade import package as pkg
from daemon.upgrade.slots import Slots


@pytest.fixture
def keys():
    private = Ed25519PrivateKey.generate()
    return private, private.public_key()


@pytest.fixture
def tree(tmp_path):
    """A small software tree: two files, one executable."""
    root = tmp_path / "tree"
    (root / "daemon").mkdir(parents=True)
    (root / "daemon" / "gateway.py").write_bytes(b"print('new gateway')\n" * 50)
    (root / "tools").mkdir()
    (root / "tools" / "run.sh").write_bytes(b"#!/bin/sh\nexec python3 -m daemon\n")
    os.chmod(root / "tools" / "run.sh", 0o755)
    return root


FILES = ["daemon/gateway.py", "tools/run.sh"]


def build(tree, private, version="0.2.0", min_version="0.1.0", **changes):
    manifest = pkg.manifest_of(str(tree), FILES, version, min_version)
    manifest.update(changes)
    out = io.BytesIO()
    pkg.build(out, str(tree), manifest, private)
    return out.getvalue()


def stage(data, public, tmp_path, installed="0.1.0"):
    parent = tmp_path / "stage"
    parent.mkdir(exist_ok=True)
    return pkg.stage(io.BytesIO(data), public, installed, str(parent))


def refused(data, public, tmp_path, reason, installed="0.1.0"):
    with pytest.raises(pkg.PackageRefused) as caught:
        stage(data, public, tmp_path, installed)
    assert caught.value.reason == reason, str(caught.value)
    assert os.listdir(tmp_path / "stage") == []              # no staging folder left behind
    return str(caught.value)


def hand_made(members, private, manifest=None, sign=True):
    """A package written member by member: (name, bytes, kind) where kind is "file", "symlink" or "dir"."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w|gz") as archive:
        if manifest is not None:
            raw = json.dumps(manifest).encode()
            members = [("manifest.json", raw, "file"),
                       ("manifest.sig", private.sign(raw) if sign else bytes(64), "file")] + list(members)
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            if kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, data
                archive.addfile(info)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def entry(path, data, mode=0o644):
    return {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "mode": mode}


def manifest_for(entries, version="0.2.0", min_version="0.1.0", product=pkg.PRODUCT):
    return {"format": pkg.FORMAT, "product": product, "version": version, "min_version": min_version,
            "files": entries}


# ---------------------------------------------------------------- the good package

def test_a_signed_package_is_staged_byte_for_byte_then_installed_into_the_inactive_slot(tmp_path, tree, keys):
    private, public = keys
    manifest, staging = stage(build(tree, private), public, tmp_path)
    for name in FILES:
        assert open(os.path.join(staging, name), "rb").read() == (tree / name).read_bytes()
    assert os.stat(os.path.join(staging, "tools", "run.sh")).st_mode & 0o777 == 0o755
    assert os.stat(os.path.join(staging, "daemon", "gateway.py")).st_mode & 0o777 == 0o644

    root = tmp_path / "install"
    (root / "slots" / "A").mkdir(parents=True)
    (root / "slots" / "A" / "marker").write_text("old software")
    slots = Slots(str(root))
    assert slots.install(staging, manifest) == "B"
    assert (root / "slots" / "A" / "marker").read_text() == "old software"        # the active slot untouched
    assert (root / "slots" / "B" / "daemon" / "gateway.py").read_bytes() == (tree / "daemon" / "gateway.py").read_bytes()
    assert slots.describe() == {"active": "A", "trial": "B", "slots": {"A": None, "B": "0.2.0"}}
    assert not os.path.exists(staging)


# ---------------------------------------------------------------- refusals: nothing staged, the reason said

def test_a_changed_byte_in_a_file_or_in_the_manifest_is_refused(tmp_path, tree, keys):
    private, public = keys
    good = build(tree, private)
    raw = tarfile.open(fileobj=io.BytesIO(good), mode="r:gz")
    members = [(m.name, raw.extractfile(m).read(), "file") for m in raw.getmembers()]
    manifest_bytes, signature = members[0][1], members[1][1]

    payload = list(members)
    payload[2] = (payload[2][0], b"X" + payload[2][1][1:], "file")            # same size, other content
    assert "does not match its hash" in refused(hand_made(payload, private), public, tmp_path, "content")

    doctored = manifest_bytes.replace(b'"0.1.0"', b'"0.0.1"')                 # widen who it may replace
    assert doctored != manifest_bytes
    forged = [members[0][:1] + (doctored, "file"), members[1]] + members[2:]
    refused(hand_made(forged, private), public, tmp_path, "signature")
    unsigned = [members[0], ("manifest.sig", bytes(64), "file")] + members[2:]
    refused(hand_made(unsigned, private), public, tmp_path, "signature")
    other_key = Ed25519PrivateKey.generate()
    resigned = [members[0], ("manifest.sig", other_key.sign(manifest_bytes), "file")] + members[2:]
    refused(hand_made(resigned, private), public, tmp_path, "signature")
    assert signature == private.sign(manifest_bytes)                          # Ed25519 is deterministic


def test_product_and_version_rules(tmp_path, tree, keys):
    private, public = keys
    assert "for 'other-gateway'" in refused(build(tree, private, product="other-gateway"), public, tmp_path,
                                            "product")
    text = refused(build(tree, private, version="0.3.0", min_version="0.2.0"), public, tmp_path, "version",
                   installed="0.1.0")
    assert "0.2.0 or later" in text and "runs 0.1.0" in text
    assert "not newer" in refused(build(tree, private, version="0.1.0"), public, tmp_path, "version")
    assert "not newer" in refused(build(tree, private, version="0.0.9", min_version="0.0.1"), public, tmp_path,
                                  "version")
    refused(build(tree, private, version="1.0"), public, tmp_path, "malformed")
    stage(build(tree, private, version="0.10.0", min_version="0.9.0"), public, tmp_path, installed="0.9.1")


def test_not_a_package_truncated_or_empty_is_refused(tmp_path, tree, keys):
    private, public = keys
    good = build(tree, private)
    refused(b"", public, tmp_path, "malformed")
    refused(b"PK\x03\x04 a zip file", public, tmp_path, "malformed")
    refused(good[:len(good) // 2], public, tmp_path, "malformed")
    refused(hand_made([("daemon/gateway.py", b"x", "file")], private), public, tmp_path, "malformed")


def test_names_links_and_extra_members_never_write_outside_the_staging_folder(tmp_path, keys):
    private, public = keys
    data = b"owned\n"
    victim = tmp_path / "victim.txt"
    for bad in ("../victim.txt", "/tmp/victim.txt", "daemon/../../victim.txt", "daemon//x.py", "./x.py",
                "daemon/\x00.py", "a" * 300):
        assert "unsafe file name" in refused(hand_made([], private, manifest_for([entry(bad, data)])), public,
                                             tmp_path, "unsafe")
    # the manifest is clean, the archive is not: a symlink, a link member in place of a file, an unlisted file
    listed = entry("daemon/x.py", data)
    link = hand_made([("files/daemon/x.py", str(victim), "symlink")], private, manifest_for([listed]))
    assert "link or a special file" in refused(link, public, tmp_path, "unsafe")
    sneaky = hand_made([("files/../victim.txt", data, "file")], private, manifest_for([listed]))
    refused(sneaky, public, tmp_path, "content")
    extra = hand_made([("files/daemon/x.py", data, "file"), ("files/daemon/y.py", data, "file")], private,
                      manifest_for([listed]))
    assert "does not list" in refused(extra, public, tmp_path, "content")
    folder = hand_made([("files/daemon", b"", "dir"), ("files/daemon/x.py", data, "file")], private,
                       manifest_for([listed]))
    refused(folder, public, tmp_path, "unsafe")
    assert not victim.exists()
    assert "mode must be" in refused(hand_made([], private, manifest_for([entry("x.py", data, 0o4755)])), public,
                                     tmp_path, "unsafe")


def test_a_bomb_or_a_huge_file_is_refused_at_its_header_before_its_bytes_are_written(tmp_path, keys):
    private, public = keys
    huge = dict(entry("data.bin", b""), size=pkg.MAX_FILE + 1)
    assert "0 to" in refused(hand_made([], private, manifest_for([huge])), public, tmp_path, "too_large")
    many = [dict(entry("f%d.bin" % i, b""), size=pkg.MAX_FILE) for i in range(pkg.MAX_TOTAL // pkg.MAX_FILE + 1)]
    assert "a slot holds at most" in refused(hand_made([], private, manifest_for(many)), public, tmp_path,
                                             "too_large")

    # a gzip bomb: the manifest declares 10 bytes, the member holds 256 MiB of zeros (about 250 KB compressed)
    declared = entry("data.bin", b"0123456789")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", compresslevel=1) as archive:
        raw = json.dumps(manifest_for([declared])).encode()
        for name, data in (("manifest.json", raw), ("manifest.sig", private.sign(raw))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("files/data.bin")
        info.size = 256 * 1024 * 1024
        archive.addfile(info, _Zeros(info.size))
    bomb = out.getvalue()
    assert len(bomb) < 2 * 1024 * 1024
    assert "268435456 bytes, the manifest says 10" in refused(bomb, public, tmp_path, "content")


class _Zeros(io.RawIOBase):
    def __init__(self, size):
        self.left = size

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def test_an_upload_larger_than_the_bound_is_refused_as_it_is_read(tmp_path, tree, keys, monkeypatch):
    private, public = keys
    good = build(tree, private)
    monkeypatch.setattr(pkg, "MAX_PACKAGE", len(good) // 2)
    refused(good, public, tmp_path, "too_large")


# ---------------------------------------------------------------- the slots: trial, health, roll-back

def test_a_trial_slot_that_never_reports_healthy_is_rolled_back_at_its_second_start(tmp_path, tree, keys):
    private, public = keys
    root = tmp_path / "install"
    slots = Slots(str(root))
    assert slots.boot() == ("A", "active")
    manifest, staging = stage(build(tree, private), public, tmp_path)
    slots.install(staging, manifest)
    assert slots.boot() == ("B", "trial")              # the first start after the upgrade runs the new software
    assert slots.boot() == ("A", "rolled back")        # it started again without reporting healthy
    assert slots.healthy("B") is False                 # too late: the trial is over
    assert slots.boot() == ("A", "active") and slots.describe()["trial"] is None


def test_a_healthy_trial_becomes_the_active_slot_and_survives_a_damaged_state_file(tmp_path, tree, keys):
    private, public = keys
    root = tmp_path / "install"
    slots = Slots(str(root))
    manifest, staging = stage(build(tree, private), public, tmp_path)
    slots.install(staging, manifest)
    assert slots.boot() == ("B", "trial")
    assert slots.healthy("A") is False and slots.healthy("B") is True
    assert slots.boot() == ("B", "active")
    assert slots.state()["previous"] == "A"
    (root / "slots" / "slots.json").write_bytes(b"\x00garbage")                # a damaged card
    assert slots.boot() == ("B", "active")                          # the good copy written with the decision
    # the next upgrade goes into A, the slot not running
    manifest, staging = stage(build(tree, private, version="0.3.0"), public, tmp_path, installed="0.2.0")
    assert slots.install(staging, manifest) == "A"


# ---------------------------------------------------------------- the builder's command line

def test_the_command_line_makes_a_key_pair_and_a_package_of_the_tracked_software(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO)
    private_path, public_path = tmp_path / "release.pem", tmp_path / "release.pub"
    run = [sys.executable, "-m", "tools.package"]
    subprocess.run(run + ["keygen", "--private", str(private_path), "--public", str(public_path)], check=True,
                   env=env, cwd=REPO)
    assert os.stat(private_path).st_mode & 0o777 == 0o600
    again = subprocess.run(run + ["keygen", "--private", str(private_path), "--public", str(public_path)], env=env,
                           cwd=REPO, capture_output=True)
    assert again.returncode != 0                                    # a private key is never overwritten
    out = tmp_path / "pkg.tar.gz"
    subprocess.run(run + ["build", "--key", str(private_path), "--version", "99.0.0", "--min-version", "0.0.1",
                          "--out", str(out)], check=True, env=env, cwd=REPO, capture_output=True)
    public = pkg.load_public_key(public_path.read_bytes())
    manifest, staging = stage(out.read_bytes(), public, tmp_path)
    names = [f["path"] for f in manifest["files"]]
    assert "daemon/upgrade/package.py" in names and "daemon/__main__.py" in names
    assert not [n for n in names if n.startswith(("tests/", "bench/", ".ci/"))]
    with open(os.path.join(REPO, "daemon", "upgrade", "package.py"), "rb") as handle:
        assert open(os.path.join(staging, "daemon", "upgrade", "package.py"), "rb").read() == handle.read()


def test_the_shipped_release_key_is_an_ed25519_public_key_and_no_private_key_is_tracked():
    with open(os.path.join(REPO, "daemon", "upgrade", "release-key.pub"), "rb") as handle:
        pkg.load_public_key(handle.read())
    tracked = subprocess.run(["git", "-C", REPO, "grep", "-l", "PRIVATE KEY-----"], capture_output=True, text=True)
    assert [name for name in tracked.stdout.split() if not name.startswith("tests/")] == []


def test_the_release_package_carries_every_package_setup_cfg_installs():
    """A new top-level package (outbound/, issue 16) left out of tools/package.py would install a daemon that
    cannot import it: read the list setup.cfg installs and the one the release takes."""
    import configparser

    from tools import package as release
    config = configparser.ConfigParser()
    config.read(os.path.join(REPO, "setup.cfg"))
    installed = [name.strip().rstrip("*") for name in config["options.packages.find"]["include"].split(",")]
    assert installed and all(name + "/" in release.SOFTWARE for name in installed), (installed, release.SOFTWARE)
