"""Build and sign an upgrade package from the working tree (issue 15), or make a signing key pair.

    python -m tools.package keygen --private ~/keys/open-m70-release.pem --public release-key.pub
    python -m tools.package build --key ~/keys/open-m70-release.pem --version 0.2.0 --min-version 0.1.0 \\
        --out open-m70-0.2.0.tar.gz

The package holds the files git tracks under the software's folders
(``SOFTWARE``): what a slot needs to run the daemon, nothing of the tests.
The private key never enters the repository: keep it offline; the gateway
ships only the public key (daemon/upgrade/release-key.pub). Tests make their own
pair with ``keygen``.
"""

import argparse
import os
import subprocess
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daemon.upgrade import package

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOFTWARE = ("core/", "daemon/", "board/", "protocols/", "webconfig/", "outbound/", "tools/", "setup.cfg", "setup.py",
            "pyproject.toml", "README.md", "LICENSE")


def tracked_files(tree):
    """The software files git tracks under ``tree`` ("/"-separated, sorted)."""
    out = subprocess.run(["git", "-C", tree, "ls-files", "-z"], check=True, capture_output=True).stdout
    names = set(name for name in out.decode("utf-8").split("\0") if name)        # once each (mid-merge: 3 stages)
    return sorted(name for name in names if name.startswith(SOFTWARE) and os.path.isfile(os.path.join(tree, name)))


def keygen(private_path, public_path):
    key = Ed25519PrivateKey.generate()
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    with open(public_path, "wb") as handle:
        handle.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo))


def load_private_key(path):
    with open(path, "rb") as handle:
        key = serialization.load_pem_private_key(handle.read(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SystemExit("%s: not an Ed25519 private key" % path)
    return key


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("keygen", help="make an Ed25519 key pair (the private file must not exist)")
    gen.add_argument("--private", required=True)
    gen.add_argument("--public", required=True)
    make = commands.add_parser("build", help="build and sign a package of the working tree")
    make.add_argument("--key", required=True, help="the Ed25519 private key (PEM)")
    make.add_argument("--version", required=True, help="the package's version, e.g. 0.2.0")
    make.add_argument("--min-version", required=True, help="the least installed version it may replace")
    make.add_argument("--tree", default=REPO)
    make.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.command == "keygen":
        keygen(args.private, args.public)
        return 0
    for text in (args.version, args.min_version):
        package.parse_version(text)
    manifest = package.manifest_of(args.tree, tracked_files(args.tree), args.version, args.min_version)
    with open(args.out, "wb") as out:
        package.build(out, args.tree, manifest, load_private_key(args.key))
    print("%s: %d files, version %s (replaces %s or later)" % (args.out, len(manifest["files"]), args.version,
                                                               args.min_version))
    return 0


if __name__ == "__main__":
    sys.exit(main())
