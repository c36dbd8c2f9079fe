"""`verify_pdf` / `jpki verify pdf` against PDFs signed by pyHanko (library and CLI) with an
openssl-made JPKI-shaped certificate, by the simulated card, and against known attacks."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import cms as asn1_cms
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.fields import SigSeedSubFilter

from jpki.card.jpki_ap import JpkiAp
from jpki.cert import JpkiCertificate
from jpki.cli import main
from jpki.documents.pdf import sign_pdf
from jpki.documents.verify_pdf import RevocationSources, verify_pdf
from jpki.errors import DocumentError
from jpki.secret import Secret
from jpki.sim import open_simulated_card
from jpki.testing.pki import TestPki
from jpki.transport.simulated import SimulatedConnection
from jpki.verify import Status
from pdf_helpers import append_page_text, fill_text_field, minimal_pdf
from tsa_helpers import TestTsa, openssl_tsa

_BASIC4 = [
    ("1", "見本\u3000花子"),
    ("4", "419920229"),
    ("3", "2"),
    ("5", "大阪府大阪市北区見本町4-5-6"),
    ("2", "00000"),
    ("6", "0000000000000000"),
]
# openssl reads UTF8: values byte by byte (as Latin-1) unless told FORMAT:UTF8.
_EXT = (
    "[ext]\n"
    "keyUsage = critical, digitalSignature, nonRepudiation\n"
    "certificatePolicies = 1.2.392.200149.8.5.1.1.20\n"
    "subjectKeyIdentifier = hash\n"
    "authorityKeyIdentifier = keyid\n"
    "subjectAltName = @alt\n"
    "[alt]\n"
    + "".join(
        f"otherName.{n} = 1.2.392.200149.8.5.5.{arc};FORMAT:UTF8,UTF8:{v}\n"
        for n, (arc, v) in enumerate(_BASIC4, 1)
    )
)


@dataclass(frozen=True)
class OpensslSigner:
    key: Path
    cert: Path
    ca: Path


def _pem_key(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _openssl_cert(d: Path, name: str, ca_cert: Path, ca_key: Path, key: Path) -> Path:
    (d / "ext.cnf").write_text(_EXT, encoding="utf-8")
    csr, cert = d / f"{name}.csr", d / f"{name}.pem"
    subprocess.run(
        [
            *("openssl", "req", "-new", "-key", str(key), "-out", str(csr)),
            *("-subj", f"/C=JP/L=Osaka/CN={name}"),
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_cert)),
            *("-CAkey", str(ca_key), "-set_serial", "0x4a504b49", "-days", "365"),
            *("-sha256", "-extfile", str(d / "ext.cnf"), "-extensions", "ext"),
            *("-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert


@pytest.fixture(scope="module")
def openssl_signer(test_pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> OpensslSigner:
    """A JPKI-shaped signing certificate made by `openssl x509` under the test signing CA."""
    d = tmp_path_factory.mktemp("openssl")
    ca_cert, ca_key, key = d / "ca.pem", d / "ca.key", d / "ee.key"
    ca_cert.write_bytes(test_pki.sign_ca.cert.public_bytes(serialization.Encoding.PEM))
    ca_key.write_bytes(_pem_key(test_pki.sign_ca.key))
    key.write_bytes(_pem_key(test_pki.key("openssl-signer")))
    return OpensslSigner(key, _openssl_cert(d, "openssl-signer", ca_cert, ca_key, key), ca_cert)


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory, test_pki: TestPki) -> OpensslSigner:
    """The same shape under a CA nobody trusts (its own self-signed root)."""
    d = tmp_path_factory.mktemp("stranger")
    ca_key, key = d / "ca.key", d / "ee.key"
    ca_key.write_bytes(_pem_key(test_pki.key("stranger-ca")))
    key.write_bytes(_pem_key(test_pki.key("stranger-ee")))
    ca_cert = d / "ca.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-new", "-key", str(ca_key), "-out", str(ca_cert)),
            *("-subj", "/C=JP/O=JPKI-TEST/OU=JPKI-TEST for digital signature", "-days", "30"),
        ],
        check=True,
        capture_output=True,
    )
    return OpensslSigner(key, _openssl_cert(d, "stranger", ca_cert, ca_key, key), ca_cert)


def _pyhanko_sign(pdf: bytes, who: OpensslSigner, field: str = "Sig1", **meta: object) -> bytes:
    signer = signers.SimpleSigner.load(str(who.key), str(who.cert), ca_chain_files=(str(who.ca),))
    assert signer is not None
    out = io.BytesIO()
    signers.sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(pdf)),
        signers.PdfSignatureMetadata(field_name=field, **meta),  # type: ignore[arg-type]
        signer=signer,
        output=out,
    )
    return out.getvalue()


@pytest.fixture(scope="module")
def anchors(test_pki: TestPki) -> list[JpkiCertificate]:
    return [test_pki.sign_ca.jpki]


@pytest.fixture(scope="module")
def signed(openssl_signer: OpensslSigner) -> bytes:
    return _pyhanko_sign(minimal_pdf(), openssl_signer)


# --- peers ---------------------------------------------------------------------------------


def test_pyhanko_library_signature_is_valid(signed: bytes, anchors: list[JpkiCertificate]) -> None:
    r = verify_pdf(signed, trust_anchors=anchors)
    assert r.status is Status.VALID, r.to_dict()
    (s,) = r.signatures
    assert s.field == "Sig1" and s.coverage == "entire file" and s.changes_after == "none"
    assert s.certificate_kind == "signing"
    assert s.basic_info is not None and s.basic_info["name"] == "見本\u3000花子"
    assert s.basic_info["birth_date"] == "1992-02-29" and s.basic_info["sex"] == "female"
    assert s.signing_time is not None and not s.signing_time_proven
    assert any("NOT proven" in x for x in s.reasons)
    # No anchors, or the wrong ones: never valid.
    assert verify_pdf(signed, trust_anchors=None).status is Status.INDETERMINATE
    other = TestPki(generation=2015).sign_ca.jpki
    assert verify_pdf(signed, trust_anchors=[other]).status is Status.INVALID


def test_pyhanko_cli_signature_is_valid(
    openssl_signer: OpensslSigner, tmp_path: Path, anchors: list[JpkiCertificate]
) -> None:
    src, out = tmp_path / "in.pdf", tmp_path / "out.pdf"
    src.write_bytes(minimal_pdf())
    run = subprocess.run(
        [
            *(sys.executable, "-m", "pyhanko", "sign", "addsig", "--field", "申請者"),
            *("pemder", "--key", str(openssl_signer.key), "--cert", str(openssl_signer.cert)),
            *("--chain", str(openssl_signer.ca), "--no-pass", str(src), str(out)),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    r = verify_pdf(out.read_bytes(), trust_anchors=anchors)
    assert r.status is Status.VALID, r.to_dict()
    assert r.signatures[0].field == "申請者"


def test_pkcs7_subfilter_from_pyhanko(
    openssl_signer: OpensslSigner, anchors: list[JpkiCertificate]
) -> None:
    pdf = _pyhanko_sign(
        minimal_pdf(), openssl_signer, subfilter=SigSeedSubFilter.ADOBE_PKCS7_DETACHED
    )
    r = verify_pdf(pdf, trust_anchors=anchors)
    assert r.status is Status.VALID, r.to_dict()
    assert r.signatures[0].subfilter == "adbe.pkcs7.detached"


@pytest.fixture(scope="module")
def tsa(test_pki: TestPki) -> Iterator[TestTsa]:
    with openssl_tsa(test_pki) as running:
        yield running


@pytest.fixture
def card(sim_profile: Path) -> Iterator[JpkiAp]:
    conn = SimulatedConnection(open_simulated_card(sim_profile))
    try:
        yield JpkiAp(conn)
    finally:
        conn.close()


def _pin() -> Secret:
    return Secret("JPKITEST01")


def test_card_b_t_proven_time_and_revocation_after_signing(
    card: JpkiAp, tsa: TestTsa, test_pki: TestPki, anchors: list[JpkiCertificate]
) -> None:
    pdf = sign_pdf(card, minimal_pdf(), _pin, tsa_url=tsa.url)
    serial = x509.load_der_x509_certificate(card.read_certificate("sign")).serial_number
    now = datetime.now(UTC) + timedelta(hours=2)
    later = datetime.now(UTC) + timedelta(hours=1)
    fresh = now - timedelta(minutes=30)
    # An address change after signing (affiliationChanged) does not reach back.
    moved = test_pki.make_crl(
        entries=[(serial, x509.ReasonFlags.affiliation_changed, later)], this_update=fresh
    )
    src = RevocationSources(crls=[moved])
    r = verify_pdf(pdf, trust_anchors=anchors, timestamp_trust=anchors, revocation=src, at=now)
    s = r.signatures[0]
    assert r.status is Status.VALID, r.to_dict()
    assert s.signing_time_proven and s.timestamp is not None
    assert s.timestamp.status is Status.VALID
    assert any("revoked only after the signing time" in x for x in s.reasons)
    assert s.now is not None and s.now.status is Status.INVALID
    # Without trusting the TSA, the time is unproven: it must hold now too, and it does not.
    r2 = verify_pdf(pdf, trust_anchors=anchors, revocation=src, at=now)
    assert r2.status is Status.INVALID
    assert not r2.signatures[0].signing_time_proven
    # A key compromise reaches back before the signature: invalid even with the timestamp.
    stolen = test_pki.make_crl(
        entries=[(serial, x509.ReasonFlags.key_compromise, later)], this_update=fresh
    )
    r3 = verify_pdf(
        pdf,
        trust_anchors=anchors,
        timestamp_trust=anchors,
        revocation=RevocationSources(crls=[stolen]),
        at=now,
    )
    assert r3.status is Status.INVALID
    good = test_pki.make_crl(this_update=fresh)
    r4 = verify_pdf(
        pdf, trust_anchors=anchors, timestamp_trust=anchors, revocation=RevocationSources([good]),
        at=now,
    )  # fmt: skip
    assert r4.status is Status.VALID, r4.to_dict()


def test_card_b_lt_and_pkcs7_verify(
    card: JpkiAp, test_pki: TestPki, anchors: list[JpkiCertificate]
) -> None:
    crl = test_pki.make_crl(this_update=datetime.now(UTC) - timedelta(hours=1))
    lt = sign_pdf(
        card, minimal_pdf(), _pin, embed_revocation=True, crls=[crl], trust_anchors=anchors
    )
    r = verify_pdf(lt, trust_anchors=anchors, revocation=RevocationSources(crls=[crl]))
    assert r.status is Status.VALID, r.to_dict()
    # The DSS update after the signature is not "unsigned content".
    assert r.signatures[0].changes_after == "lta updates"
    assert r.unsigned_changes_after_last is None


# --- attacks -------------------------------------------------------------------------------


def _replace_same_length(data: bytes, old: bytes, new: bytes) -> bytes:
    assert len(new) <= len(old)
    return data.replace(old, new.ljust(len(old)), 1)


def test_byterange_not_covering_the_file(signed: bytes, anchors: list[JpkiCertificate]) -> None:
    m = re.search(rb"/ByteRange \[([0-9 ]+)\]", signed)
    assert m is not None
    a, b, c, d = (int(x) for x in m.group(1).split())
    # Leave the last 30 bytes of the file outside the signed range.
    forged = _replace_same_length(signed, m.group(0), f"/ByteRange [{a} {b} {c} {d - 30}]".encode())
    r = verify_pdf(forged, trust_anchors=anchors)
    assert r.status is Status.INVALID
    assert any("ByteRange" in x for x in r.signatures[0].reasons), r.to_dict()


def test_unsigned_revision_appended(signed: bytes, anchors: list[JpkiCertificate]) -> None:
    tampered = append_page_text(signed, "Amount: 1,000,000 JPY")
    r = verify_pdf(tampered, trust_anchors=anchors)
    assert r.status is Status.INVALID
    assert r.unsigned_changes_after_last is not None or any(
        "not permitted" in x for x in r.signatures[0].reasons
    ), r.to_dict()
    assert (
        any("after the last signature" in x for x in r.reasons)
        or r.signatures[0].status is Status.INVALID
    )


def test_permitted_change_after_signing_still_unsigned(
    openssl_signer: OpensslSigner, anchors: list[JpkiCertificate]
) -> None:
    form = _pyhanko_sign(minimal_pdf(text_field="Amount"), openssl_signer)
    filled = fill_text_field(form, "1,000,000 JPY")
    r = verify_pdf(filled, trust_anchors=anchors)
    assert r.signatures[0].status is Status.VALID  # the change is one the signer permits ...
    assert r.status is Status.INVALID, r.signatures[0].to_dict()  # ... but nobody signed it
    assert r.unsigned_changes_after_last == "form filling", r.to_dict()
    allowed = verify_pdf(filled, trust_anchors=anchors, allow_unsigned_changes=True)
    assert allowed.status is Status.VALID, allowed.to_dict()


def _contents_span(pdf: bytes) -> tuple[int, int]:
    m = re.search(rb"/Contents <([0-9a-fA-F]+)>", pdf)
    assert m is not None
    return m.start(1), m.end(1)


def test_cms_over_other_bytes(
    openssl_signer: OpensslSigner, signed: bytes, anchors: list[JpkiCertificate]
) -> None:
    other = _pyhanko_sign(minimal_pdf("another document"), openssl_signer)
    s1, e1 = _contents_span(signed)
    s2, e2 = _contents_span(other)
    assert e1 - s1 == e2 - s2
    forged = signed[:s1] + other[s2:e2] + signed[e1:]
    r = verify_pdf(forged, trust_anchors=anchors)
    assert r.status is Status.INVALID
    assert any("messageDigest" in x for x in r.signatures[0].reasons), r.to_dict()


def test_swapped_signer_certificate(
    signed: bytes, anchors: list[JpkiCertificate], test_pki: TestPki
) -> None:
    s, e = _contents_span(signed)
    raw = bytes.fromhex(signed[s:e].decode())
    ci = asn1_cms.ContentInfo.load(raw)
    n = len(ci.dump())
    ci = asn1_cms.ContentInfo.load(raw[:n])
    someone = test_pki.issue_signing()  # a real, trusted signing certificate of another person
    from asn1crypto import x509 as asn1_x509

    cert = asn1_x509.Certificate.load(someone.der)
    sd = ci["content"]
    sd["certificates"] = [cert]
    sd["signer_infos"][0]["sid"] = asn1_cms.SignerIdentifier(
        name="issuer_and_serial_number",
        value={"issuer": cert.issuer, "serial_number": cert.serial_number},
    )
    new_hex = ci.dump().hex().encode()
    assert len(new_hex) <= e - s
    forged = signed[:s] + new_hex.ljust(e - s, b"0") + signed[e:]
    r = verify_pdf(forged, trust_anchors=anchors)
    assert r.status is Status.INVALID, r.to_dict()
    assert r.signatures[0].subject is not None


def test_two_signatures_one_bad(
    openssl_signer: OpensslSigner, stranger: OpensslSigner, anchors: list[JpkiCertificate]
) -> None:
    first = _pyhanko_sign(minimal_pdf(), stranger, field="Untrusted")
    both = _pyhanko_sign(first, openssl_signer, field="Trusted")
    r = verify_pdf(both, trust_anchors=anchors)
    assert r.status is Status.INVALID
    by_field = {s.field: s.status for s in r.signatures}
    assert by_field == {"Untrusted": Status.INVALID, "Trusted": Status.VALID}, r.to_dict()
    assert r.reasons[0] == "1 of 2 signature(s) valid"


def test_unsigned_and_garbage_pdfs(anchors: list[JpkiCertificate]) -> None:
    r = verify_pdf(minimal_pdf(), trust_anchors=anchors)
    assert r.status is Status.INVALID and not r.signatures
    for bad in (b"", b"%PDF-1.7\n", b"not a pdf at all"):
        with pytest.raises(DocumentError):
            verify_pdf(bad, trust_anchors=anchors)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_mutated_signed_pdf_never_valid_never_traceback(
    signed: bytes, anchors: list[JpkiCertificate], data: st.DataObject
) -> None:
    pos = data.draw(st.integers(0, len(signed) - 1))
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != signed[pos]))
    mutated = signed[:pos] + bytes([byte]) + signed[pos + 1 :]
    try:
        r = verify_pdf(mutated, trust_anchors=anchors)
    except DocumentError:
        return
    # A changed byte inside the signed range must never verify; one in the /Contents padding
    # or an ignorable spot (whitespace after %%EOF) may.
    s, e = _contents_span(signed)
    if not s <= pos < e:
        assert (
            r.status is not Status.VALID
            or signed[pos : pos + 1].isspace()
            or pos >= len(signed.rstrip())
        ), (pos, r.to_dict())


# --- CLI -----------------------------------------------------------------------------------


def test_cli_verify_pdf_exit_codes(
    signed: bytes, tmp_path: Path, openssl_signer: OpensslSigner
) -> None:
    good = tmp_path / "good.pdf"
    good.write_bytes(signed)
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(append_page_text(signed))
    runner = CliRunner()
    ok = runner.invoke(
        main, ["verify", "pdf", str(good), "--trust", str(openssl_signer.ca), "--json"]
    )
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.output)
    assert data["status"] == "valid" and data["signatures"][0]["basic_info"]["sex"] == "female"
    text = runner.invoke(main, ["verify", "pdf", str(good), "--trust", str(openssl_signer.ca)])
    assert text.exit_code == 0 and "基本4情報" in text.output
    assert (
        runner.invoke(
            main, ["verify", "pdf", str(bad), "--trust", str(openssl_signer.ca)]
        ).exit_code
        == 1
    )
    # The built-in J-LIS roots do not trust the test CA.
    assert runner.invoke(main, ["verify", "pdf", str(good)]).exit_code == 1
    junk = tmp_path / "junk.pdf"
    junk.write_bytes(b"junk")
    res = runner.invoke(main, ["verify", "pdf", str(junk)])
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_revocation_from_the_store_at_signing_time(
    card: JpkiAp, tsa: TestTsa, test_pki: TestPki, anchors: list[JpkiCertificate], tmp_path: Path
) -> None:
    from jpki.revocation.store import RevocationStore

    pdf = sign_pdf(card, minimal_pdf(), _pin, tsa_url=tsa.url)
    serial = x509.load_der_x509_certificate(card.read_certificate("sign")).serial_number
    now = datetime.now(UTC) + timedelta(hours=2)
    crl = test_pki.make_crl(
        entries=[(serial, x509.ReasonFlags.affiliation_changed, now - timedelta(minutes=60))],
        this_update=now - timedelta(minutes=30),
    )
    db = tmp_path / "rev.db"
    with RevocationStore(db) as store:
        store.load(crl, [test_pki.sign_ca.cert])
        src = RevocationSources(store=store)
        proven = verify_pdf(
            pdf, trust_anchors=anchors, timestamp_trust=anchors, revocation=src, at=now
        )
        unproven = verify_pdf(pdf, trust_anchors=anchors, revocation=src, at=now)
    assert proven.status is Status.VALID, proven.to_dict()
    assert unproven.status is Status.INVALID
    f = tmp_path / "signed.pdf"
    f.write_bytes(pdf)
    ca = tmp_path / "ca.pem"
    ca.write_bytes(test_pki.sign_ca.cert.public_bytes(serialization.Encoding.PEM))
    base = [
        "verify",
        "pdf",
        str(f),
        "--trust",
        str(ca),
        "--store",
        str(db),
        "--at",
        now.isoformat(),
    ]
    ok = CliRunner().invoke(main, [*base, "--tsa-trust", str(ca)])
    assert ok.exit_code == 0, ok.output
    assert CliRunner().invoke(main, base).exit_code == 1


def test_document_timestamp_after_the_signature(
    signed: bytes, tsa: TestTsa, anchors: list[JpkiCertificate]
) -> None:
    from pyhanko.sign.signers import PdfTimeStamper
    from pyhanko.sign.timestamps import HTTPTimeStamper

    w = IncrementalPdfFileWriter(io.BytesIO(signed))
    out = PdfTimeStamper(HTTPTimeStamper(tsa.url)).timestamp_pdf(w, "sha256")
    stamped = out.getvalue()
    r = verify_pdf(stamped, trust_anchors=anchors, timestamp_trust=anchors)
    assert r.status is Status.VALID, r.to_dict()
    kinds = [(s.kind, s.status) for s in r.signatures]
    assert kinds == [("signature", Status.VALID), ("document timestamp", Status.VALID)]
    assert r.signatures[1].signing_time_proven
    # Untrusted TSA: the document timestamp proves nothing, and the document is not valid.
    assert verify_pdf(stamped, trust_anchors=anchors).status is Status.INDETERMINATE
