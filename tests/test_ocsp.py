"""OCSP against a real `openssl ocsp` responder on 127.0.0.1, plus parser property tests."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jpki.errors import OcspError
from jpki.revocation.index import RevocationReason
from jpki.revocation.ocsp import build_request, check_ocsp, parse_response, post
from jpki.revocation.policy import RevocationPolicy, RevocationStatus, check_revocation
from jpki.testing.pki import Issued, TestPki, sample_person
from ocsp_helpers import (
    free_port,
    key_pem,
    openssl_responder,
    request_nonce,
    revoked_response,
    stalling_server,
    write_index,
)

# openssl ocsp stamps responses with the real clock, so these tests use it too.
REAL_NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def pki() -> TestPki:
    return TestPki(now=REAL_NOW - timedelta(days=1))


@pytest.fixture(scope="module")
def pki_2015() -> TestPki:
    return TestPki(generation=2015, now=datetime(2024, 3, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def certs(pki: TestPki) -> dict[str, Issued]:
    return {
        "good": pki.issue_signing(sample_person(0), label="ocsp-good"),
        "revoked": pki.issue_signing(sample_person(1), label="ocsp-revoked"),
        "unknown": pki.issue_signing(sample_person(2), label="ocsp-unknown"),
    }


@pytest.fixture(scope="module")
def responder_dir(
    tmp_path_factory: pytest.TempPathFactory, pki: TestPki, certs: dict[str, Issued]
) -> Path:
    d = tmp_path_factory.mktemp("ocsp")
    (d / "ca.pem").write_bytes(pki.sign_ca.pem)
    (d / "ca.key").write_bytes(key_pem(pki.sign_ca.key))
    resp = pki.issue_ocsp_responder("sign")
    (d / "resp.pem").write_bytes(resp.pem)
    (d / "resp.key").write_bytes(key_pem(resp.key))
    write_index(
        d / "index.txt",
        good=[certs["good"].cert.serial_number],
        revoked=[certs["revoked"].cert.serial_number],
    )
    return d


def _start(d: Path, rsigner: Path, rkey: Path) -> Iterator[str]:
    with openssl_responder(d / "index.txt", d / "ca.pem", rsigner, rkey) as url:
        yield url


@pytest.fixture(scope="module")
def delegated_url(responder_dir: Path) -> Iterator[str]:
    yield from _start(responder_dir, responder_dir / "resp.pem", responder_dir / "resp.key")


@pytest.fixture(scope="module")
def ca_signed_url(responder_dir: Path) -> Iterator[str]:
    yield from _start(responder_dir, responder_dir / "ca.pem", responder_dir / "ca.key")


@pytest.fixture(scope="module")
def wrong_key_url(responder_dir: Path, pki_2015: TestPki) -> Iterator[str]:
    # The 2015 CA has the same DN as the 2023 CA, so openssl happily signs as "the CA" with it.
    d = responder_dir
    (d / "old.pem").write_bytes(pki_2015.sign_ca.pem)
    (d / "old.key").write_bytes(key_pem(pki_2015.sign_ca.key))
    yield from _start(d, d / "old.pem", d / "old.key")


@pytest.fixture(scope="module")
def foreign_responder_url(responder_dir: Path, pki_2015: TestPki) -> Iterator[str]:
    # A delegated responder with OCSPSigning, but issued by the other CA generation.
    d = responder_dir
    other = pki_2015.issue_ocsp_responder("sign")
    (d / "foreign.pem").write_bytes(other.pem)
    (d / "foreign.key").write_bytes(key_pem(other.key))
    yield from _start(d, d / "foreign.pem", d / "foreign.key")


def _now() -> datetime:
    return datetime.now(UTC)


def test_good_via_delegated_responder(
    delegated_url: str, pki: TestPki, certs: dict[str, Issued]
) -> None:
    res = check_ocsp(certs["good"].cert, pki.sign_ca.cert, delegated_url, at=_now(), timeout=10)
    assert res.status is RevocationStatus.GOOD
    assert res.source.startswith("ocsp:")


def test_revoked_with_reason(delegated_url: str, pki: TestPki, certs: dict[str, Issued]) -> None:
    res = check_ocsp(certs["revoked"].cert, pki.sign_ca.cert, delegated_url, at=_now())
    assert res.status is RevocationStatus.REVOKED
    assert res.reason is RevocationReason.AFFILIATION_CHANGED
    assert res.revoked_at == datetime(2025, 1, 1, tzinfo=UTC)


def test_unknown(delegated_url: str, pki: TestPki, certs: dict[str, Issued]) -> None:
    res = check_ocsp(certs["unknown"].cert, pki.sign_ca.cert, delegated_url, at=_now())
    assert res.status is RevocationStatus.UNKNOWN


def test_signed_by_the_ca_itself(
    ca_signed_url: str, pki: TestPki, certs: dict[str, Issued]
) -> None:
    res = check_ocsp(certs["revoked"].cert, pki.sign_ca.cert, ca_signed_url, at=_now())
    assert res.status is RevocationStatus.REVOKED


def test_wrong_key_is_rejected(wrong_key_url: str, pki: TestPki, certs: dict[str, Issued]) -> None:
    with pytest.raises(OcspError, match="signature"):
        check_ocsp(certs["good"].cert, pki.sign_ca.cert, wrong_key_url, at=_now())


def test_responder_from_other_generation_rejected(
    foreign_responder_url: str, pki: TestPki, certs: dict[str, Issued]
) -> None:
    with pytest.raises(OcspError, match=r"not signed by the CA|not issued|authorised"):
        check_ocsp(certs["good"].cert, pki.sign_ca.cert, foreign_responder_url, at=_now())


def test_stale_response_rejected(
    delegated_url: str, pki: TestPki, certs: dict[str, Issued]
) -> None:
    # nextUpdate is 30 minutes out: two hours later the answer is too old
    with pytest.raises(OcspError, match="expired"):
        check_ocsp(
            certs["good"].cert, pki.sign_ca.cert, delegated_url, at=_now() + timedelta(hours=2)
        )


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers."""
    with stalling_server("slow-accept") as url:
        yield url


def test_timeout(silent_server: str, pki: TestPki, certs: dict[str, Issued]) -> None:
    t0 = time.monotonic()
    with pytest.raises(OcspError, match="did not answer"):
        check_ocsp(certs["good"].cert, pki.sign_ca.cert, silent_server, at=_now(), timeout=0.5)
    assert time.monotonic() - t0 < 30  # generous: only guards against hanging forever
    res = check_revocation(
        certs["good"].cert,
        pki.sign_ca.cert,
        ocsp_url=silent_server,
        at=_now(),
        policy=RevocationPolicy(ocsp_timeout=0.5),
    )
    assert res.status is RevocationStatus.UNKNOWN


def test_connection_refused(pki: TestPki, certs: dict[str, Issued]) -> None:
    with pytest.raises(OcspError, match="cannot reach"):
        check_ocsp(
            certs["good"].cert, pki.sign_ca.cert, f"http://127.0.0.1:{free_port()}/", at=_now()
        )


def test_policy_prefers_ocsp(delegated_url: str, pki: TestPki, certs: dict[str, Issued]) -> None:
    stale_crl = pki.make_crl("sign", [], this_update=_now() - timedelta(days=3))
    res = check_revocation(
        certs["revoked"].cert,
        pki.sign_ca.cert,
        crls=[stale_crl],
        ocsp_url=delegated_url,
        at=_now(),
        policy=RevocationPolicy(prefer="ocsp"),
    )
    assert res.status is RevocationStatus.REVOKED and res.source.startswith("ocsp")
    # CRL first: stale -> falls through to OCSP
    res2 = check_revocation(
        certs["good"].cert, pki.sign_ca.cert, crls=[stale_crl], ocsp_url=delegated_url, at=_now()
    )
    assert res2.status is RevocationStatus.GOOD and res2.source.startswith("ocsp")


def test_cli_check_ocsp(
    delegated_url: str, responder_dir: Path, certs: dict[str, Issued], tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from jpki.cli import main

    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(certs["revoked"].pem)
    r = CliRunner().invoke(
        main,
        [
            "revocation",
            "check",
            str(leaf),
            "--issuer",
            str(responder_dir / "ca.pem"),
            "--ocsp",
            delegated_url,
            "--json",
        ],
    )
    assert r.exit_code == 1, r.output
    assert '"affiliationChanged"' in r.output


# --- response parsing (no network) ----------------------------------------------------------------


def _response(
    pki: TestPki, cert: x509.Certificate, nonce: bytes, *, signer: Issued | None = None
) -> bytes:
    return revoked_response(
        pki,
        cert,
        nonce,
        now=_now(),
        reason=x509.ReasonFlags.cessation_of_operation,
        signer=signer,
    )


def test_parse_built_response_and_nonce(pki: TestPki, certs: dict[str, Issued]) -> None:
    nonce = os.urandom(16)
    der = _response(pki, certs["good"].cert, nonce)
    res = parse_response(der, certs["good"].cert, pki.sign_ca.cert, at=_now(), nonce=nonce)
    assert res.status is RevocationStatus.REVOKED
    assert res.reason is RevocationReason.CESSATION_OF_OPERATION
    with pytest.raises(OcspError, match="nonce"):
        parse_response(der, certs["good"].cert, pki.sign_ca.cert, at=_now(), nonce=b"x" * 16)
    with pytest.raises(OcspError, match="does not cover"):
        parse_response(der, certs["revoked"].cert, pki.sign_ca.cert, at=_now(), nonce=nonce)
    assert build_request(certs["good"].cert, pki.sign_ca.cert, nonce)[:1] == b"\x30"


def test_delegated_without_ocsp_signing_rejected(pki: TestPki, certs: dict[str, Issued]) -> None:
    # a signing certificate of a person is issued by the CA but is no OCSP responder
    nonce = os.urandom(8)
    der = _response(pki, certs["good"].cert, nonce, signer=certs["unknown"])
    with pytest.raises(OcspError, match="OCSPSigning"):
        parse_response(der, certs["good"].cert, pki.sign_ca.cert, at=_now(), nonce=nonce)


@pytest.fixture(scope="module")
def sample_response(pki: TestPki, certs: dict[str, Issued]) -> bytes:
    return _response(pki, certs["good"].cert, b"N" * 16)


@settings(
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    deadline=None,
)
@given(data=st.data())
def test_mutated_responses_raise_only_ocsp_error(
    sample_response: bytes, pki: TestPki, certs: dict[str, Issued], data: st.DataObject
) -> None:
    der = bytearray(sample_response)
    for _ in range(data.draw(st.integers(1, 4))):
        der[data.draw(st.integers(0, len(der) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        del der[data.draw(st.integers(0, len(der))) :]
    try:
        res = parse_response(
            bytes(der), certs["good"].cert, pki.sign_ca.cert, at=_now(), nonce=b"N" * 16
        )
    except OcspError:
        return
    # anything accepted must still be the genuine answer (the signature covers it)
    assert res.status is RevocationStatus.REVOKED


@given(st.binary(max_size=300))
@settings(
    max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
def test_random_bytes_are_ocsp_errors(pki: TestPki, certs: dict[str, Issued], blob: bytes) -> None:
    with pytest.raises(OcspError):
        parse_response(blob, certs["good"].cert, pki.sign_ca.cert, at=_now(), nonce=None)


# --- misrouted / replayed answers from the real responder -------------------------------------


def _proxy(rewrite: Callable[[bytes], bytes], upstream: str) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that forwards ``rewrite(request)`` to the real responder."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            answer = post(upstream, rewrite(body), timeout=10)
            self.send_response(200)
            self.send_header("Content-Type", "application/ocsp-response")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    srv = HTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/"
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=5)


@pytest.fixture
def replaying_url(delegated_url: str, pki: TestPki, certs: dict[str, Issued]) -> Iterator[str]:
    """Always forwards one old request (for 'good', fixed nonce): a replayed answer."""
    old = build_request(certs["good"].cert, pki.sign_ca.cert, b"R" * 16)
    yield from _proxy(lambda _req: old, delegated_url)


@pytest.fixture
def misrouting_url(delegated_url: str, pki: TestPki, certs: dict[str, Issued]) -> Iterator[str]:
    """Forwards the client's nonce but asks about 'good': right nonce, wrong CertID."""
    yield from _proxy(
        lambda req: build_request(certs["good"].cert, pki.sign_ca.cert, request_nonce(req)),
        delegated_url,
    )


def test_real_responder_nonce_mismatch_is_not_good(
    replaying_url: str, pki: TestPki, certs: dict[str, Issued]
) -> None:
    with pytest.raises(OcspError, match="nonce mismatch"):
        check_ocsp(certs["good"].cert, pki.sign_ca.cert, replaying_url, at=_now())
    res = check_revocation(certs["good"].cert, pki.sign_ca.cert, ocsp_url=replaying_url, at=_now())
    assert res.status is RevocationStatus.UNKNOWN and "nonce" in res.detail


def test_real_responder_certid_mismatch_is_not_good(
    misrouting_url: str, pki: TestPki, certs: dict[str, Issued]
) -> None:
    # the responder signs a genuine, fresh 'good' for another certificate with our nonce
    with pytest.raises(OcspError, match="does not cover"):
        check_ocsp(certs["revoked"].cert, pki.sign_ca.cert, misrouting_url, at=_now())
    for name in ("revoked", "unknown"):
        res = check_revocation(
            certs[name].cert, pki.sign_ca.cert, ocsp_url=misrouting_url, at=_now()
        )
        assert res.status is RevocationStatus.UNKNOWN and "does not cover" in res.detail


def test_preference_decides_between_disagreeing_sources(
    delegated_url: str, pki: TestPki, certs: dict[str, Issued]
) -> None:
    """A fresh CRL that does not list the certificate vs the responder saying revoked."""
    fresh_crl = pki.make_crl(
        "sign", [], this_update=_now() - timedelta(hours=1), next_update=_now() + timedelta(days=1)
    )
    cert, ca = certs["revoked"].cert, pki.sign_ca.cert
    kw: dict[str, Any] = {"crls": [fresh_crl], "ocsp_url": delegated_url, "at": _now()}
    by_crl = check_revocation(cert, ca, **kw, policy=RevocationPolicy(prefer="crl"))
    assert by_crl.status is RevocationStatus.GOOD and by_crl.source.startswith("crl#")
    by_ocsp = check_revocation(cert, ca, **kw, policy=RevocationPolicy(prefer="ocsp"))
    assert by_ocsp.status is RevocationStatus.REVOKED and by_ocsp.source.startswith("ocsp:")
    # OCSP first but unreachable: falls back to the CRL
    down = f"http://127.0.0.1:{free_port()}/"
    fallback = check_revocation(
        cert, ca, crls=[fresh_crl], ocsp_url=down, at=_now(), policy=RevocationPolicy(prefer="ocsp")
    )
    assert fallback.status is RevocationStatus.GOOD and fallback.source.startswith("crl#")
