"""A real RFC 3161 timestamp authority for tests: ``openssl ts -reply`` behind a tiny HTTP
server on 127.0.0.1 (started and stopped by the test that uses it)."""

from __future__ import annotations

import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from jpki.testing.pki import Issued, TestPki

TSA_POLICY = "1.2.392.200149.8.5.99.1"  # a test policy OID under the JPKI arc, not a real one


def issue_tsa(pki: TestPki, *, eku_critical: bool = True) -> Issued:
    """A TSA certificate from the test signing CA: digitalSignature, critical timeStamping EKU."""
    key = pki.key("tsa")
    now = datetime.now(UTC)
    ca = pki.sign_ca
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI-TEST"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "Test Time Stamping Authority"),
                ]
            )
        )
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(0x75A)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(min(now + timedelta(days=365), pki.ca_not_after))
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), eku_critical)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(key, cert)


_CONF = """
[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
dir = {dir}
serial = $dir/serial
signer_cert = $dir/tsa.pem
certs = $dir/ca.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = {policy}
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


class TestTsa:
    """The running TSA: ``url``, the TSA certificate, and how many requests it answered."""

    __test__ = False

    def __init__(self, url: str, cert: Issued) -> None:
        self.url = url
        self.cert = cert
        self.requests = 0
        #: Answer HTTP 503 from this request number on (1-based); None: always answer.
        self.fail_from: int | None = None


@contextmanager
def openssl_tsa(pki: TestPki, *, cert: Issued | None = None) -> Iterator[TestTsa]:
    """Run the TSA on a free 127.0.0.1 port until the block ends."""
    issued = cert or issue_tsa(pki)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "tsa.pem").write_bytes(issued.cert.public_bytes(serialization.Encoding.PEM))
        (d / "ca.pem").write_bytes(pki.sign_ca.cert.public_bytes(serialization.Encoding.PEM))
        (d / "tsa.key").write_bytes(
            issued.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        (d / "serial").write_text("01\n")
        conf = d / "tsa.cnf"
        conf.write_text(_CONF.format(dir=d, policy=TSA_POLICY))
        lock = threading.Lock()
        state: dict[str, TestTsa] = {}

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                tsa = state["tsa"]
                if tsa.fail_from is not None and tsa.requests + 1 >= tsa.fail_from:
                    tsa.requests += 1
                    self.send_response(503)
                    self.end_headers()
                    return
                with lock:  # openssl updates the serial file: one reply at a time
                    query = d / "q.tsq"
                    query.write_bytes(body)
                    out = subprocess.run(
                        [
                            *("openssl", "ts", "-reply", "-config", str(conf)),
                            *("-queryfile", str(query), "-out", "-"),
                        ],
                        capture_output=True,
                        check=False,
                    )
                    state["tsa"].requests += 1
                if out.returncode != 0:
                    self.send_response(500)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(out.stdout)))
                self.end_headers()
                self.wfile.write(out.stdout)

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        tsa = TestTsa(f"http://127.0.0.1:{server.server_address[1]}/tsa", issued)
        state["tsa"] = tsa
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield tsa
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)


def closed_port_url() -> str:
    """A 127.0.0.1 URL where nothing listens (an unreachable TSA)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/tsa"
