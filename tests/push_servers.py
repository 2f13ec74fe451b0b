"""Servers on loopback that receive the exports (issue 16), for the tests: pyftpdlib (plain FTP, explicit and
implicit FTPS, a server that refuses STOR), an HTTP(S) server with Basic authentication that parses the
multipart body with the standard library's e-mail parser (not ours), a server that accepts and never speaks,
and a test PKI made with ``cryptography`` at test time (nothing committed).

Each server runs in its own thread and keeps what it received: ``files`` is [(folder, name, bytes)] in the
order the files became visible under their final name (FTP: the RNTO; HTTP: the POST).
"""

import base64
import datetime
import email
import email.policy
import http.server
import ipaddress
import logging
import os
import socket
import ssl
import subprocess
import sys
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import FTPServer

logging.getLogger("pyftpdlib").setLevel(logging.WARNING)

USER, PASSWORD = "push", "s3cret-push"
DAY = datetime.timedelta(days=1)


# ---------------------------------------------------------------- a test PKI

class Pki:
    """A CA made now; ``issue(names)`` a server certificate (PEM cert + key) for IP addresses ``names``."""

    def __init__(self, name="Export Test Root CA"):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.pem = (x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
                    .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                    .not_valid_before(now - DAY).not_valid_after(now + 365 * DAY)
                    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                    .sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())

    def issue(self, directory, names=("127.0.0.1",), label="server"):
        """Write ``<label>.pem`` (certificate then key) in ``directory``; its path."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "export.test")]))
                .issuer_name(self.name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - DAY).not_valid_after(now + 30 * DAY)
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(n)) for n in names]),
                               critical=False)
                .sign(self.key, hashes.SHA256()))
        path = os.path.join(str(directory), "%s.pem" % label)
        with open(path, "wb") as handle:
            handle.write(cert.public_bytes(serialization.Encoding.PEM))
            handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        return path


# ---------------------------------------------------------------- FTP

class _Recording:
    """What every test FTP handler records on its server: final names in order, the data-connection commands."""

    def ftp_RNTO(self, path):
        super().ftp_RNTO(path)
        if os.path.exists(path):
            with open(path, "rb") as handle:
                data = handle.read()
            self.server.owner.files.append((os.path.relpath(os.path.dirname(path), self.server.owner.root),
                                            os.path.basename(path), data))

    def pre_process_command(self, line, cmd, arg):
        self.server.owner.commands.append(cmd)
        return super().pre_process_command(line, cmd, arg)

    def on_connect(self):
        self.server.owner.connections += 1
        super().on_connect()


class _RefuseStor:
    def ftp_STOR(self, file, mode="w"):
        self.respond("552 Requested file action aborted: exceeded storage allocation.")


class _Implicit:
    """TLS from the first byte (FTPS on port 990 practice): the banner only once the handshake is done."""

    def handle(self):
        self.secure_connection(self.ssl_context)

    def handle_ssl_established(self):
        TLS_FTPHandler.handle(self)


class FtpServer:
    """pyftpdlib on 127.0.0.1 in a thread. kind: plain, explicit, implicit; ``refuse_stor``: 552 on STOR.
    TLS servers require TLS on the control AND data connections (so PROT P is proven, not assumed)."""

    def __init__(self, root, kind="plain", certfile=None, refuse_stor=False, port=0):
        self.root = str(root)
        os.makedirs(self.root, exist_ok=True)
        self.kind = kind
        self.certfile = certfile
        self.refuse_stor = refuse_stor
        self.port = port
        self.files = []
        self.commands = []
        self.connections = 0
        self._thread = None

    def start(self):
        authorizer = DummyAuthorizer()
        authorizer.add_user(USER, PASSWORD, self.root, perm="elradfmwMT")
        bases = (_Recording,) + ((_RefuseStor,) if self.refuse_stor else ())
        if self.kind == "plain":
            bases += (FTPHandler,)
            attrs = {}
        else:
            bases += ((_Implicit,) if self.kind == "implicit" else ()) + (TLS_FTPHandler,)
            attrs = {"certfile": self.certfile, "ssl_context": None, "tls_control_required": True,
                     "tls_data_required": True}
        attrs.update(authorizer=authorizer, timeout=30, banner="test FTP server ready")
        handler = type("TestFtpHandler", bases, attrs)
        self.server = FTPServer(("127.0.0.1", self.port), handler, ioloop=IOLoop())
        self.server.owner = self
        self.port = self.server.address[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="test-ftp")
        self._thread.start()
        return self

    def _serve(self):
        while not self._stop.is_set():
            self.server.serve_forever(timeout=0.02, blocking=False, handle_exit=False)
        self.server.close_all()

    def stop(self):
        if self._thread is not None:
            self._stop.set()
            self._thread.join(10)
            self._thread = None

    def names(self):
        return [name for _folder, name, _data in self.files]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------- HTTP(S)

class HttpServer:
    """http.server in a thread: POST with Basic authentication, multipart/form-data parsed by the e-mail
    package; ``status`` is what it answers to an accepted file (201 by default)."""

    def __init__(self, certfile=None, status=201):
        self.certfile = certfile
        self.status = status
        self.files = []
        self.requests = []            # (path, authorized, field names)

    def start(self):
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                expected = "Basic " + base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()
                authorized = self.headers.get("Authorization") == expected
                message = email.message_from_bytes(
                    b"Content-Type: " + self.headers.get("Content-Type", "").encode() + b"\r\n\r\n" + body,
                    policy=email.policy.HTTP)
                parts = [(part.get_param("name", header="content-disposition"), part.get_filename(),
                          part.get_payload(decode=True)) for part in message.iter_parts()] \
                    if message.is_multipart() else []
                owner.requests.append((self.path, authorized, [p[0] for p in parts]))
                if not authorized:
                    self._answer(401, b"authentication required", [("WWW-Authenticate", 'Basic realm="push"')])
                    return
                for field, filename, data in parts:
                    if field == "file":
                        owner.files.append((self.path, filename, data))
                self._answer(owner.status, b"stored")

            def _answer(self, status, body, headers=()):
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if self.certfile:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.certfile)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name="test-http")
        self._thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)

    def names(self):
        return [name for _path, name, _data in self.files]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class SilentServer:
    """Accepts TCP connections (the kernel's backlog completes them) and never says a word."""

    def __enter__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        return self

    def __exit__(self, *exc):
        self.sock.close()


# ---------------------------------------------------------------- a server in a child process

class ChildFtpServer:
    """An FtpServer in its own process, for measuring the gateway's event loop without the test server's
    threads competing for the interpreter's lock (as a real server, on another machine, would not).
    What it stored is read from its directory."""

    def __init__(self, root, kind="plain", certfile=None, refuse_stor=False):
        self.root = str(root)
        self.args = [self.root, kind, certfile or "", "1" if refuse_stor else ""]

    def __enter__(self):
        here = os.path.dirname(os.path.abspath(__file__))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([here] + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
        self.proc = subprocess.Popen([sys.executable, "-c", "import push_servers; push_servers.child_main()"]
                                     + self.args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                                     text=True)
        self.port = int(self.proc.stdout.readline())
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait(10)
        self.proc.stdout.close()

    def stored(self):
        """Every file under the server's directory, relative paths."""
        return sorted(os.path.relpath(os.path.join(d, f), self.root) for d, _s, fs in os.walk(self.root) for f in fs)


def child_main():
    root, kind, certfile, refuse = sys.argv[1:5]
    server = FtpServer(root, kind=kind, certfile=certfile or None, refuse_stor=bool(refuse)).start()
    print(server.port, flush=True)
    threading.Event().wait()
