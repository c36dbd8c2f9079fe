"""CRL loading, signature (over the raw TBS), issuer generations, freshness, scope, deltas."""

from __future__ import annotations

import mmap
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jpki.errors import CrlError
from jpki.revocation import crl as crl_module
from jpki.revocation.crl import Crl, lookup_with_delta, select_crls
from jpki.revocation.index import RevocationReason
from jpki.testing.crl import Synthetic, header_crl, splice_entries, synthetic_crl
from jpki.testing.pki import Issued, TestPki, sample_person
from revocation_helpers import NOW, R, crl_with_ext, make_idp


@pytest.fixture(scope="module")
def leaf(pki: TestPki) -> Issued:
    return pki.issue_signing(sample_person(0), label="crl-leaf")


@pytest.fixture(scope="module")
def other_leaf(pki: TestPki) -> Issued:
    return pki.issue_signing(sample_person(3), label="crl-other")


def _crl(
    pki: TestPki, entries: list[tuple[int, x509.ReasonFlags | None, datetime]], **kw: object
) -> Crl:
    return Crl.load(pki.make_crl("sign", entries, this_update=NOW, **kw))  # type: ignore[arg-type]


def test_load_verify_lookup(pki: TestPki, leaf: Issued) -> None:
    when = NOW - timedelta(days=2)
    crl = _crl(
        pki, [(leaf.cert.serial_number, R.affiliation_changed, when), (77, None, when)], number=5
    )
    assert crl.verify([pki.sign_ca.cert]) == pki.sign_ca.cert
    assert crl.number == 5 and len(crl) == 2 and not crl.is_delta
    hit = crl.lookup(leaf.cert.serial_number)
    assert hit is not None
    assert hit.reason is RevocationReason.AFFILIATION_CHANGED
    assert hit.revocation_date == when.replace(microsecond=0)
    plain = crl.lookup(77)
    assert plain is not None and plain.reason is None
    assert crl.lookup(78) is None
    assert crl.authority_key_id is not None


def test_pem_loads_the_same(pki: TestPki) -> None:
    der = pki.make_crl("sign", [(9, R.superseded, NOW)], this_update=NOW)
    pem = x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM)
    assert Crl.load(pem).lookup(9) is not None


def test_issuer_generations_share_a_dn(pki: TestPki, pki_2015: TestPki) -> None:
    assert pki.sign_ca.cert.subject == pki_2015.sign_ca.cert.subject
    crl = _crl(pki, [(1, None, NOW)])
    # The older generation is tried too (same DN) but only the 2023 key verifies.
    assert crl.verify([pki_2015.sign_ca.cert, pki.sign_ca.cert]) == pki.sign_ca.cert
    with pytest.raises(CrlError, match="does not verify"):
        Crl.load(crl.der).verify([pki_2015.sign_ca.cert])
    with pytest.raises(CrlError, match="issuer name"):
        crl.verify([pki.auth_ca.cert])


def test_tampered_crl_fails_signature(pki: TestPki) -> None:
    der = bytearray(pki.make_crl("sign", [(0x1234, R.key_compromise, NOW)], this_update=NOW))
    i = der.find(bytes.fromhex("02021234"))
    assert i > 0
    der[i + 3] ^= 0x01  # a different serial, same structure
    crl = Crl.load(bytes(der))
    with pytest.raises(CrlError):
        crl.verify([pki.sign_ca.cert])


def test_freshness(pki: TestPki) -> None:
    crl = _crl(pki, [], next_update=NOW + timedelta(hours=24))
    crl.check_fresh(NOW + timedelta(hours=1))
    with pytest.raises(CrlError, match="stale"):
        crl.check_fresh(NOW + timedelta(hours=25))
    with pytest.raises(CrlError, match="not yet valid"):
        crl.check_fresh(NOW - timedelta(hours=1))
    with pytest.raises(CrlError, match="maximum age"):
        crl.check_fresh(NOW + timedelta(hours=3), max_age=timedelta(hours=2))
    with pytest.raises(CrlError, match="aware"):
        crl.check_fresh(datetime(2026, 3, 1))
    assert len(crl) == 0  # no revokedCertificates field at all


def test_scope_by_directory_name_dp(pki: TestPki, leaf: Issued, other_leaf: Issued) -> None:
    dp = pki.crl_dp_name(sample_person(0))
    assert dp != pki.crl_dp_name(sample_person(3))
    crl = _crl(pki, [(leaf.cert.serial_number, R.cessation_of_operation, NOW)], idp_name=dp)
    assert crl.idp_names == (dp,)
    assert crl.covers(leaf.cert)
    assert not crl.covers(other_leaf.cert)
    full = _crl(pki, [])
    assert full.covers(leaf.cert) and full.covers(other_leaf.cert)
    assert not full.covers(pki.issue_auth(label="crl-auth").cert)


def test_unknown_critical_crl_extension_is_unusable(pki: TestPki) -> None:
    odd = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4.5"), b"\x05\x00")
    Crl.load(crl_with_ext(pki, odd, critical=False))  # non-critical: ignored
    with pytest.raises(CrlError, match="critical"):
        Crl.load(crl_with_ext(pki, odd, critical=True))


def test_unknown_critical_entry_extension_is_unusable(pki: TestPki) -> None:
    ca = pki.sign_ca
    entry = (
        x509.RevokedCertificateBuilder()
        .serial_number(5)
        .revocation_date(NOW)
        .add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4.6"), b"\x05\x00"), True
        )
        .build()
    )
    der = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(NOW)
        .next_update(NOW + timedelta(days=1))
        .add_revoked_certificate(entry)
        .sign(ca.key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    with pytest.raises(CrlError, match="critical"):
        Crl.load(der)


def test_delta_crl(pki: TestPki) -> None:
    base = _crl(pki, [(1, R.certificate_hold, NOW), (2, R.key_compromise, NOW)], number=10)
    delta = Crl.load(
        splice_entries(
            header_crl(
                pki.sign_ca.key,
                pki.sign_ca.cert.subject,
                this_update=NOW,
                next_update=NOW + timedelta(days=1),
                number=11,
                extensions=[x509.DeltaCRLIndicator(10)],
            ),
            _entries_der(pki, [(1, R.remove_from_crl), (3, R.superseded)]),
            pki.sign_ca.key,
        )
    )
    delta.verify([pki.sign_ca.cert])
    assert delta.is_delta and delta.base_number == 10
    assert lookup_with_delta(base, delta, 1) is None  # released from hold
    hit2 = lookup_with_delta(base, delta, 2)
    assert hit2 is not None and hit2.reason is RevocationReason.KEY_COMPROMISE
    hit3 = lookup_with_delta(base, delta, 3)
    assert hit3 is not None and hit3.reason is RevocationReason.SUPERSEDED
    assert lookup_with_delta(base, None, 1) is not None
    assert select_crls([delta, base], pki.issue_signing(sample_person(0), label="d").cert) == (
        base,
        delta,
    )
    old_base = _crl(pki, [], number=9)
    with pytest.raises(CrlError, match="base CRL number"):
        lookup_with_delta(old_base, delta, 1)


def _entries_der(pki: TestPki, items: list[tuple[int, x509.ReasonFlags]]) -> bytes:
    der = pki.make_crl("sign", [(s, r, NOW) for s, r in items], this_update=NOW)
    crl = Crl.load(der)
    assert crl.layout.revoked is not None
    _, s, e = crl.layout.revoked
    return der[s:e]


@pytest.mark.parametrize(
    "oid_hex", ["2a864886f70d01010c", "2a864886f70d01010d", "2a864886f70d010105"]
)
def test_other_rsa_hashes(pki: TestPki, oid_hex: str, tmp_path: Path) -> None:
    # sha384 / sha512 / sha1 with RSA: swap the algorithm OID in the header, then re-sign.
    header = header_crl(
        pki.sign_ca.key,
        pki.sign_ca.cert.subject,
        this_update=NOW,
        next_update=NOW + timedelta(days=1),
        number=1,
    )
    header = header.replace(bytes.fromhex("2a864886f70d01010b"), bytes.fromhex(oid_hex))
    der = splice_entries(header, _entries_der(pki, [(42, R.superseded)]), pki.sign_ca.key)
    crl = Crl.load(der)
    assert crl.verify([pki.sign_ca.cert]) == pki.sign_ca.cert
    # cross-check with openssl (cryptography refuses SHA-1 signatures)
    (tmp_path / "c.der").write_bytes(der)
    (tmp_path / "ca.pem").write_bytes(pki.sign_ca.pem)
    out = subprocess.run(
        [
            "openssl",
            "crl",
            "-inform",
            "DER",
            "-in",
            str(tmp_path / "c.der"),
            "-noout",
            "-CAfile",
            str(tmp_path / "ca.pem"),
        ],
        capture_output=True,
        text=True,
    )
    assert "verify OK" in out.stderr + out.stdout
    assert crl.lookup(42) is not None


def _synthetic(pki: TestPki, n: int, *, seed: int = 0, serial_bits: int = 63) -> Synthetic:
    ca, nu = pki.sign_ca, NOW + timedelta(days=1)
    return synthetic_crl(
        n,
        ca.key,
        ca.cert.subject,
        this_update=NOW,
        next_update=nu,
        seed=seed,
        serial_bits=serial_bits,
    )


def test_synthetic_crl_matches_cryptography(pki: TestPki) -> None:
    syn = _synthetic(pki, 300, serial_bits=63)
    ref = x509.load_der_x509_crl(syn.der)
    assert ref.is_signature_valid(pki.sign_ca.key.public_key())
    crl = Crl.load(syn.der)
    crl.verify([pki.sign_ca.cert])
    assert len(crl) == len(ref) == 300
    for rc in list(ref)[:50]:
        hit = crl.lookup(rc.serial_number)
        assert hit is not None
        try:
            want = rc.extensions.get_extension_for_class(x509.CRLReason).value.reason.value
        except x509.ExtensionNotFound:
            want = None
        assert (hit.reason.value if hit.reason else None) == want


# --- openssl ca -gencrl ------------------------------------------------------------------


def _openssl_ca(tmp: Path, ca: Issued, index_lines: list[str]) -> Path:
    (tmp / "ca.pem").write_bytes(ca.pem)
    (tmp / "ca.key").write_bytes(
        ca.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp / "index.txt").write_text("".join(line + "\n" for line in index_lines))
    (tmp / "crlnumber").write_text("1000\n")
    (tmp / "ca.cnf").write_text(
        "[ca]\ndefault_ca = CA_default\n[CA_default]\n"
        f"dir = {tmp}\ndatabase = $dir/index.txt\ncrlnumber = $dir/crlnumber\n"
        "certificate = $dir/ca.pem\nprivate_key = $dir/ca.key\n"
        "default_md = sha256\ndefault_crl_days = 2\ncrl_extensions = crl_ext\n"
        "[crl_ext]\nauthorityKeyIdentifier = keyid:always\n"
    )
    out = tmp / "crl.pem"
    subprocess.run(
        ["openssl", "ca", "-gencrl", "-config", str(tmp / "ca.cnf"), "-out", str(out)],
        check=True,
        capture_output=True,
    )
    return out


def test_openssl_ca_gencrl_is_accepted(pki: TestPki, leaf: Issued, tmp_path: Path) -> None:
    subj = "/C=JP/CN=x"
    lines = [
        f"R\t301231000000Z\t260101000000Z,affiliationChanged\t{leaf.cert.serial_number:X}\tunknown\t{subj}",
        f"R\t301231000000Z\t260102000000Z,cessationOfOperation\t0A1B\tunknown\t{subj}",
        f"R\t301231000000Z\t260103000000Z\t0C\tunknown\t{subj}",
        f"V\t301231000000Z\t\t0D\tunknown\t{subj}",
    ]
    crl = Crl.from_file(_openssl_ca(tmp_path, pki.sign_ca, lines))
    crl.verify([pki.sign_ca.cert])
    assert crl.number == 0x1000 and len(crl) == 3
    hit = crl.lookup(leaf.cert.serial_number)
    assert hit is not None and hit.reason is RevocationReason.AFFILIATION_CHANGED
    assert hit.revocation_date == datetime(2026, 1, 1, tzinfo=UTC)
    hit2 = crl.lookup(0x0A1B)
    assert hit2 is not None and hit2.reason is RevocationReason.CESSATION_OF_OPERATION
    hit3 = crl.lookup(0x0C)
    assert hit3 is not None and hit3.reason is None
    assert crl.lookup(0x0D) is None
    assert (
        crl.authority_key_id
        == leaf.cert.extensions.get_extension_for_class(
            x509.AuthorityKeyIdentifier
        ).value.key_identifier
    )


# --- malformed input ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_crl(pki: TestPki) -> bytes:
    return pki.make_crl(
        "sign",
        [(i * 7919, R.superseded if i % 2 else None, NOW) for i in range(1, 6)],
        this_update=NOW,
        idp_name=pki.crl_dp_name(sample_person(0)),
    )


@settings(
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    deadline=None,
)
@given(data=st.data())
def test_mutated_crl_raises_only_crl_error(
    small_crl: bytes, pki: TestPki, data: st.DataObject
) -> None:
    der = bytearray(small_crl)
    for _ in range(data.draw(st.integers(1, 4))):
        der[data.draw(st.integers(0, len(der) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        del der[data.draw(st.integers(0, len(der))) :]
    try:
        crl = Crl.load(bytes(der))
        crl.verify([pki.sign_ca.cert])
        for i in range(1, 6):
            crl.lookup(i * 7919)
    except CrlError:
        pass


@given(st.binary(max_size=200))
@settings(max_examples=200)
def test_random_bytes_raise_crl_error(data: bytes) -> None:
    with pytest.raises(CrlError):
        Crl.load(data)


# --- memory-mapped files ------------------------------------------------------------------


def test_big_file_is_mapped_and_walked_in_chunks(
    pki: TestPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 200k entries (~6 MB): several 1 MiB walk chunks, entries straddling their boundaries;
    # mapped (threshold lowered) with pages dropped as the walk passes, and read from bytes.
    syn = _synthetic(pki, 200_000, seed=3, serial_bits=40)  # packed in-place sort
    path = tmp_path / "big.crl"
    path.write_bytes(syn.der)
    monkeypatch.setattr(crl_module, "MAP_THRESHOLD", 1 << 20)
    mapped = Crl.from_file(path)
    from_bytes = Crl.load(syn.der)
    assert isinstance(mapped._der, mmap.mmap)  # the lean path was taken
    assert mapped.verify([pki.sign_ca.cert]) == pki.sign_ca.cert
    assert mapped.tbs_digest() == from_bytes.tbs_digest()
    assert len(mapped) == len(from_bytes) == 200_000
    for a, b in zip(mapped.index.columns, from_bytes.index.columns, strict=True):
        assert np.array_equal(a, b)
    assert np.array_equal(mapped.index.offsets, from_bytes.index.offsets)
    for s, code in zip(syn.serials[::997].tolist(), syn.reasons[::997].tolist(), strict=True):
        hit = mapped.lookup(s)
        assert hit is not None and hit.serial == s
        assert (hit.reason.code if hit.reason else -1) == code
    assert mapped.lookup(1 << 62) is None
    assert mapped.der == syn.der


def test_mapped_file_errors_and_pem(
    pki: TestPki, small_crl: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(crl_module, "MAP_THRESHOLD", 1)
    der = tmp_path / "small.der"
    der.write_bytes(small_crl)
    crl = Crl.from_file(der)
    assert isinstance(crl._der, mmap.mmap)
    crl.verify([pki.sign_ca.cert])
    assert crl.lookup(7919) is not None
    pem = tmp_path / "small.pem"
    pem.write_bytes(x509.load_der_x509_crl(small_crl).public_bytes(serialization.Encoding.PEM))
    assert Crl.from_file(pem).lookup(7919 * 2) is not None
    (tmp_path / "empty.der").write_bytes(b"")
    (tmp_path / "cut.der").write_bytes(small_crl[:-10])
    for name in ("empty.der", "cut.der", "missing.der"):
        with pytest.raises(CrlError):
            Crl.from_file(tmp_path / name)


def test_partition_named_by_uri_covers_only_its_certificates(pki: TestPki, leaf: Issued) -> None:
    """A CRL for one URI-named partition must not answer for certificates of another."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    from jpki.revocation.policy import RevocationStatus, check_revocation

    uri = x509.UniformResourceIdentifier("http://crl.example/part7.crl")
    part7 = crl_with_ext(pki, make_idp(full_name=[uri]))
    assert Crl.load(part7).idp_names == ()
    assert not Crl.load(part7).covers(leaf.cert)  # leaf's DP is a directoryName
    res = check_revocation(leaf.cert, pki.sign_ca.cert, crls=[part7], at=NOW)
    assert res.status is RevocationStatus.UNKNOWN
    # a certificate naming that URI as its CRL DP is covered by it
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    dp = x509.DistributionPoint(full_name=[uri], relative_name=None, reasons=None, crl_issuer=None)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "uri-dp")]))
        .issuer_name(pki.sign_ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(4242)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.CRLDistributionPoints([dp]), critical=False)
        .sign(pki.sign_ca.key, hashes.SHA256())
    )
    assert Crl.load(part7).covers(cert)
    assert check_revocation(cert, pki.sign_ca.cert, crls=[part7], at=NOW).is_good
    listed = crl_with_ext(pki, make_idp(full_name=[uri]), serials=[4242])
    res = check_revocation(cert, pki.sign_ca.cert, crls=[listed], at=NOW)
    assert res.status is RevocationStatus.REVOKED


def test_idp_only_flags_limit_scope(pki: TestPki, leaf: Issued) -> None:
    assert not Crl.load(crl_with_ext(pki, make_idp(only_contains_attribute_certs=True))).covers(
        leaf.cert
    )
    assert not Crl.load(crl_with_ext(pki, make_idp(only_contains_ca_certs=True))).covers(leaf.cert)
    assert Crl.load(crl_with_ext(pki, make_idp(only_contains_user_certs=True))).covers(leaf.cert)


def test_a_final_revocation_in_an_out_of_date_crl_still_counts(pki: TestPki, leaf: Issued) -> None:
    from jpki.revocation.policy import RevocationStatus, check_revocation

    serial = leaf.cert.serial_number
    ca = pki.sign_ca.cert
    when = NOW - timedelta(days=20)

    def crl(entries: list[tuple[int, x509.ReasonFlags | None, datetime]], days_ago: int) -> bytes:
        start = NOW - timedelta(days=days_ago)
        return pki.make_crl(
            "sign", entries, this_update=start, next_update=start + timedelta(days=1),
            number=100 - days_ago,
        )  # fmt: skip

    fresh_empty = crl([], 0)
    stale_listed = crl([(serial, R.key_compromise, when)], 10)
    stale_hold = crl([(serial, R.certificate_hold, when)], 10)
    stale_empty = crl([], 10)

    def check(*crls: bytes) -> tuple[RevocationStatus, str]:
        res = check_revocation(leaf.cert, ca, crls=crls, at=NOW + timedelta(hours=1))
        return res.status, res.source

    assert check(fresh_empty) == (RevocationStatus.GOOD, "crl#100")
    # A fresh list that no longer shows it (or a stale delta that does) must not win over a
    # CA-signed final revocation: never GOOD for a certificate the CA said is revoked.
    status, source = check(fresh_empty, stale_listed)
    assert status is RevocationStatus.REVOKED and "not fresh" in source
    assert check(stale_listed)[0] is RevocationStatus.REVOKED
    # A hold can be lifted, and an out-of-date list proves nothing about now.
    assert check(fresh_empty, stale_hold)[0] is RevocationStatus.GOOD
    assert check(stale_hold)[0] is RevocationStatus.UNKNOWN
    assert check(stale_empty)[0] is RevocationStatus.UNKNOWN
