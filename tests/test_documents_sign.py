"""Signing CMS and PDFs with the simulated card; checked by real peers (openssl cms, pyHanko)."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from jpki.card.jpki_ap import JpkiAp
from jpki.documents.cms import sign_cms
from jpki.documents.pdf import sign_pdf
from jpki.errors import DocumentError, TimestampError, UsageError, WrongPin
from jpki.secret import Secret
from jpki.sim import open_simulated_card
from jpki.testing.pki import TestPki
from jpki.transport.simulated import SimulatedConnection
from jpki.verify import Policy, Status, verify_cms
from pdf_helpers import minimal_pdf
from tsa_helpers import TestTsa, closed_port_url, openssl_tsa

PASSWORD = "JPKITEST01"
DOC = "契約書: 住宅ローン\n".encode()


class PinCounter:
    """A PIN source that counts how often it was asked."""

    def __init__(self, value: str = PASSWORD) -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> Secret:
        self.calls += 1
        return Secret(self.value)


@pytest.fixture
def ap(sim_profile: Path) -> Iterator[JpkiAp]:
    conn = SimulatedConnection(open_simulated_card(sim_profile))
    try:
        yield JpkiAp(conn)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def tsa(test_pki: TestPki) -> Iterator[TestTsa]:
    with openssl_tsa(test_pki) as running:
        yield running


@pytest.fixture(scope="module")
def ca_pem(test_pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "sign-ca.pem"
    path.write_bytes(test_pki.sign_ca.cert.public_bytes(serialization.Encoding.PEM))
    return path


def _tries(ap: JpkiAp) -> int | None:
    return ap.pin_status("sign").tries_left


def _signed_attr_names(der: bytes) -> list[str]:
    si = asn1_cms.ContentInfo.load(der)["content"]["signer_infos"][0]
    return [a["type"].native for a in si["signed_attrs"]]


# --- CMS -----------------------------------------------------------------------------------


def test_cms_detached_verified_by_openssl_and_jpki(
    ap: JpkiAp, tmp_path: Path, ca_pem: Path, test_pki: TestPki
) -> None:
    pin = PinCounter()
    der = sign_cms(ap, DOC, pin)
    assert pin.calls == 1
    names = _signed_attr_names(der)
    for attr in ("content_type", "message_digest", "signing_time", "signing_certificate_v2"):
        assert attr in names, names
    sd = asn1_cms.ContentInfo.load(der)["content"]
    certs = [c.chosen for c in sd["certificates"]]
    assert any(
        c.subject == asn1_x509.Certificate.load(ap.read_certificate("sign")).subject for c in certs
    )
    (tmp_path / "doc.txt").write_bytes(DOC)
    (tmp_path / "doc.p7s").write_bytes(der)
    out = subprocess.run(
        [
            *("openssl", "cms", "-verify", "-binary", "-inform", "DER"),
            *("-in", str(tmp_path / "doc.p7s"), "-content", str(tmp_path / "doc.txt")),
            *("-CAfile", str(ca_pem), "-purpose", "any", "-out", str(tmp_path / "out.txt")),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "Verification successful" in out.stderr
    r = verify_cms(der, Policy(anchors=[test_pki.sign_ca.jpki]), content=DOC)
    assert r.status is Status.VALID, r.reasons
    assert verify_cms(der, Policy(anchors=[test_pki.sign_ca.jpki]), content=DOC + b"x").status is (
        Status.INVALID
    )


def test_cms_attached_with_timestamp(
    ap: JpkiAp, tmp_path: Path, ca_pem: Path, tsa: TestTsa, test_pki: TestPki
) -> None:
    der = sign_cms(ap, DOC, PinCounter(), attached=True, tsa_url=tsa.url)
    (tmp_path / "a.p7s").write_bytes(der)
    out = subprocess.run(
        [
            *("openssl", "cms", "-verify", "-binary", "-inform", "DER"),
            *("-in", str(tmp_path / "a.p7s"), "-CAfile", str(ca_pem), "-purpose", "any"),
        ],
        capture_output=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == DOC
    anchors = [test_pki.sign_ca.jpki]
    r = verify_cms(der, Policy(anchors=anchors, timestamp_anchors=anchors))
    assert r.status is Status.VALID, r.reasons
    assert r.timestamp is not None and r.timestamp.status is Status.VALID, r.timestamp
    assert r.timestamp.tsa and "Time Stamping" in r.timestamp.tsa
    assert abs(r.timestamp.time - datetime.now(UTC)) < timedelta(minutes=5)  # type: ignore[operator]
    # Without TSA anchors the time is reported, not proven; the signature stays valid.
    r2 = verify_cms(der, Policy(anchors=anchors))
    assert r2.status is Status.VALID
    assert r2.timestamp is not None and r2.timestamp.status is Status.INDETERMINATE


def test_cms_timestamp_from_another_signature_is_invalid(
    ap: JpkiAp, tsa: TestTsa, test_pki: TestPki
) -> None:
    one = asn1_cms.ContentInfo.load(sign_cms(ap, DOC + b"1", PinCounter(), tsa_url=tsa.url))
    two = asn1_cms.ContentInfo.load(sign_cms(ap, DOC, PinCounter(), tsa_url=tsa.url))
    # Graft the first signer's timestamp token onto the second signer.
    two["content"]["signer_infos"][0]["unsigned_attrs"] = one["content"]["signer_infos"][0][
        "unsigned_attrs"
    ]
    anchors = [test_pki.sign_ca.jpki]
    r = verify_cms(two.dump(), Policy(anchors=anchors, timestamp_anchors=anchors), content=DOC)
    assert r.status is Status.INVALID
    assert r.timestamp is not None and r.timestamp.status is Status.INVALID
    assert any("messageImprint does not match" in x for x in r.timestamp.reasons)


def test_auth_key_refused_before_anything(ap: JpkiAp) -> None:
    pin = PinCounter("1234")
    with pytest.raises(UsageError, match="nonRepudiation"):
        sign_cms(ap, DOC, pin, key="auth")
    with pytest.raises(UsageError, match="signing key"):
        sign_pdf(ap, minimal_pdf(), pin, key="auth")
    assert pin.calls == 0


def test_unreachable_tsa_costs_no_pin(ap: JpkiAp) -> None:
    before = _tries(ap)
    pin = PinCounter("WRONG0")  # would spend a try if it were ever sent
    with pytest.raises(TimestampError, match="no usable timestamp"):
        sign_cms(ap, DOC, pin, tsa_url=closed_port_url(), tsa_timeout=2)
    with pytest.raises(TimestampError):
        sign_pdf(ap, minimal_pdf(), pin, tsa_url=closed_port_url(), tsa_timeout=2)
    assert pin.calls == 0
    assert _tries(ap) == before == 5


def test_bad_input_pdf_costs_no_pin(ap: JpkiAp) -> None:
    pin = PinCounter("WRONG0")
    for bad in (b"", b"%PDF-1.7\nnot really", b"hello"):
        with pytest.raises(DocumentError):
            sign_pdf(ap, bad, pin)
    with pytest.raises(UsageError, match="needs the CRL"):
        sign_pdf(ap, minimal_pdf(), pin, embed_revocation=True)
    assert pin.calls == 0
    assert _tries(ap) == 5


def test_tsa_failing_after_the_probe(ap: JpkiAp, test_pki: TestPki) -> None:
    with openssl_tsa(test_pki) as flaky:
        flaky.fail_from = 2  # the probe works, the real request does not
        pin = PinCounter()
        with pytest.raises(TimestampError, match="no usable timestamp"):
            sign_cms(ap, DOC, pin, tsa_url=flaky.url)
        assert flaky.requests == 2
    # The password was right: the card's counter is full again; the user just retries.
    assert pin.calls == 1 and _tries(ap) == 5


def test_wrong_pin_spends_exactly_one_try(ap: JpkiAp) -> None:
    pin = PinCounter("WRONG0")
    with pytest.raises(WrongPin):
        sign_pdf(ap, minimal_pdf(), pin)
    assert pin.calls == 1 and _tries(ap) == 4


# --- PDF -----------------------------------------------------------------------------------


def _pyhanko_status(pdf: bytes, pki: TestPki, index: int = 0) -> object:
    vc = ValidationContext(trust_roots=[asn1_x509.Certificate.load(pki.sign_ca.der)])
    sig = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[index]
    return validate_pdf_signature(sig, vc)


def test_pades_b_b_intact_and_trusted_for_pyhanko(ap: JpkiAp, test_pki: TestPki) -> None:
    pin = PinCounter()
    out = sign_pdf(ap, minimal_pdf(), pin, field="契約者署名")
    assert pin.calls == 1
    st = _pyhanko_status(out, test_pki)
    assert st.intact and st.valid and st.trusted, st.summary()  # type: ignore[attr-defined]
    sig = PdfFileReader(io.BytesIO(out)).embedded_signatures[0]
    assert sig.field_name == "契約者署名"
    assert sig.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"


def test_pades_b_t_and_b_lt(ap: JpkiAp, test_pki: TestPki, tsa: TestTsa) -> None:
    crl = test_pki.make_crl(this_update=datetime.now(UTC) - timedelta(hours=1))
    out = sign_pdf(
        ap,
        minimal_pdf(),
        PinCounter(),
        tsa_url=tsa.url,
        embed_revocation=True,
        crls=[crl],
        trust_anchors=[test_pki.sign_ca.jpki],
    )
    st = _pyhanko_status(out, test_pki)
    assert st.intact and st.trusted, st.summary()  # type: ignore[attr-defined]
    ts = st.timestamp_validity  # type: ignore[attr-defined]
    assert ts is not None and ts.intact and ts.trusted
    reader = PdfFileReader(io.BytesIO(out))
    dss = reader.root["/DSS"]
    assert len(dss["/CRLs"]) >= 1
    crl_der = dss["/CRLs"][0].get_object().data
    assert crl_der == crl


def test_subfilter_pkcs7(ap: JpkiAp, test_pki: TestPki) -> None:
    out = sign_pdf(ap, minimal_pdf(), PinCounter(), subfilter="pkcs7")
    sig = PdfFileReader(io.BytesIO(out)).embedded_signatures[0]
    assert sig.sig_object["/SubFilter"] == "/adbe.pkcs7.detached"
    st = _pyhanko_status(out, test_pki)
    assert st.intact and st.trusted  # type: ignore[attr-defined]
    # adbe.pkcs7.detached keeps signingTime in the signed attributes (PAdES forbids it).
    assert "signing_time" in [a["type"].native for a in sig.signer_info["signed_attrs"]]


def test_second_signature_into_a_signed_pdf(ap: JpkiAp, test_pki: TestPki) -> None:
    once = sign_pdf(ap, minimal_pdf(), PinCounter())
    twice = sign_pdf(ap, once, PinCounter())
    sigs = PdfFileReader(io.BytesIO(twice)).embedded_signatures
    assert [s.field_name for s in sigs] == ["Signature1", "Signature2"]
    with pytest.raises(DocumentError, match="already signed"):
        sign_pdf(ap, twice, PinCounter(), field="Signature1")


def test_pdf_signed_over_the_vpcd_bridge(sim_profile: Path, test_pki: TestPki) -> None:
    # The private-key operation over another transport: the vpcd wire protocol on loopback,
    # as a phone relay would carry it.
    from jpki.sim.vpcd_card import VpcdCardSide
    from jpki.transport.vpcd import VpcdListener

    with VpcdListener("127.0.0.1", 0, timeout=5.0) as listener:
        side = VpcdCardSide(
            open_simulated_card(sim_profile), *listener.address, retry_interval=0.05
        )
        side.start()
        try:
            with listener.accept_connection(timeout=5) as conn:
                out = sign_pdf(JpkiAp(conn), minimal_pdf(), PinCounter(), subfilter="pkcs7")
        finally:
            side.stop()
    st = _pyhanko_status(out, test_pki)
    assert st.intact and st.trusted  # type: ignore[attr-defined]


def test_b_lt_refuses_to_embed_nothing(ap: JpkiAp, test_pki: TestPki) -> None:
    # A CRL from the other CA generation (same DN, other key) cannot show the card good.
    other = TestPki(generation=2015)
    crl = other.make_crl(this_update=datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(DocumentError, match="does not validate"):
        sign_pdf(
            ap,
            minimal_pdf(),
            PinCounter(),
            embed_revocation=True,
            crls=[crl],
            trust_anchors=[test_pki.sign_ca.jpki],
        )


def test_signing_after_an_earlier_cms_lookup_by_name_in_the_same_process() -> None:
    # asn1crypto caches CMS attribute names on the first lookup by name: a long-lived process
    # that built or checked a CMS before it first signs must still find the names pyHanko's
    # signer uses (registered later, by asn1crypto.tsp and pyHanko), not end in a ValueError.
    script = (
        "from asn1crypto import cms\n"
        "cms.CMSAttributeType('message_digest')\n"
        "import jpki.documents.cms\n"
        "for name in ('signing_certificate_v2', 'signature_policy_identifier',\n"
        "             'adobe_revocation_info_archival'):\n"
        "    cms.CMSAttributeType(name)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
