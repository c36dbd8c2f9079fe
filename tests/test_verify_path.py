"""Chain validation through pyhanko-certvalidator: anchors, time, generations, revocation seam."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

import pytest

from jpki.cert import CertKind, JpkiCertificate
from jpki.errors import CertificateError, RevocationUnknown, RevokedError, UsageError
from jpki.testing.pki import SIGNING_POLICY_OID, TestPki, sample_person
from jpki.verify import Code, Policy, Status, load_trust_anchors, validate_chain

AT = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def anchors(test_pki: TestPki, test_pki_2015: TestPki) -> list[JpkiCertificate]:
    return [
        JpkiCertificate.load(c.der)
        for p in (test_pki_2015, test_pki)
        for c in (p.sign_ca, p.auth_ca)
    ]


@pytest.fixture(scope="module")
def leaf(test_pki: TestPki) -> JpkiCertificate:
    return JpkiCertificate.load(test_pki.issue_signing(sample_person(0)).der)


@pytest.fixture(scope="module")
def old_leaf(test_pki_2015: TestPki) -> JpkiCertificate:
    return JpkiCertificate.load(test_pki_2015.issue_signing(sample_person(0)).der)


def test_real_jlis_roots_load_as_anchors(jlis_roots_dir: Path) -> None:
    roots = load_trust_anchors(jlis_roots_dir)
    assert len(roots) == 6  # three generations (2015, 2019, 2023) of both CAs
    assert {r.kind for r in roots} == {CertKind.SIGNING_CA, CertKind.AUTHENTICATION_CA}
    assert all(not r.is_test for r in roots)
    # Both generations of one hierarchy share the DN but not the key.
    sign = [r for r in roots if r.kind is CertKind.SIGNING_CA]
    assert sign[0].subject == sign[1].subject
    assert sign[0].subject_key_id != sign[1].subject_key_id
    one = load_trust_anchors(jlis_roots_dir / "sign_ca_2023.pem")
    assert len(one) == 1


def test_a_root_is_never_an_end_entity(jlis_roots_dir: Path) -> None:
    roots = load_trust_anchors(jlis_roots_dir)
    root = next(r for r in roots if r.not_after.year == 2033 and r.kind is CertKind.SIGNING_CA)
    for purpose in ("sign", "any"):
        r = validate_chain(root, Policy(anchors=roots, at=AT, purpose=purpose))
        assert r.status is Status.INVALID, r.reasons
        assert r.has(Code.PURPOSE_CA_AS_END_ENTITY)


def test_builtin_jlis_policy() -> None:
    pol = Policy.jlis()
    assert len(pol.anchors) == 6 and not pol.not_anchors
    assert len(Policy.jlis("sign").anchors) == 3 and len(Policy.jlis("login").anchors) == 3
    assert {a.kind for a in Policy.jlis("login").anchors} == {CertKind.AUTHENTICATION_CA}


def test_leaf_among_anchors_is_never_an_anchor(
    anchors: list[JpkiCertificate], test_pki: TestPki
) -> None:
    # `jpki card certs --out DIR` then `--trust DIR`: the end entity sits among the anchors.
    leaf = JpkiCertificate.load(
        test_pki.issue_signing(
            sample_person(3),
            not_before=datetime(2026, 1, 1, tzinfo=UTC),
            not_after=datetime(2026, 3, 1, tzinfo=UTC),
        ).der
    )
    pol = Policy(anchors=[*anchors, leaf], at=AT)
    assert leaf not in pol.anchors and len(pol.anchors) == len(anchors)
    assert pol.not_anchors == ((leaf.subject_text, pol.not_anchors[0][1]),)
    expired = validate_chain(leaf, pol)
    assert expired.status is Status.INVALID
    assert expired.has(Code.CERT_EXPIRED) and expired.has(Code.ANCHOR_REFUSED)

    def revoked(c: JpkiCertificate, i: JpkiCertificate, t: datetime) -> Outcome:
        return Outcome(RStatus.REVOKED, "keyCompromise", AT)

    live = JpkiCertificate.load(test_pki.issue_signing(sample_person(4)).der)
    r = validate_chain(live, Policy(anchors=[*anchors, live], at=AT, revocation=revoked))
    assert r.status is Status.INVALID and r.has(Code.REVOCATION_REVOKED)
    # Only the leaf given: nothing is trusted at all.
    alone = validate_chain(live, Policy(anchors=[live], at=AT))
    assert alone.status is Status.INDETERMINATE
    assert alone.has(Code.CHAIN_NOT_VALIDATED) and alone.has(Code.ANCHOR_REFUSED)


def test_no_anchors_is_at_best_indeterminate(leaf: JpkiCertificate) -> None:
    r = validate_chain(leaf, Policy(at=AT))
    assert r.status is Status.INDETERMINATE and r.has(Code.CHAIN_NOT_VALIDATED)
    late = validate_chain(leaf, Policy(at=datetime(2045, 1, 1, tzinfo=UTC)))
    assert late.status is Status.INVALID and late.has(Code.CERT_EXPIRED)


def test_test_leaf_does_not_chain_to_real_roots(
    jlis_roots_dir: Path, leaf: JpkiCertificate
) -> None:
    r = validate_chain(leaf, Policy(anchors=load_trust_anchors(jlis_roots_dir), at=AT))
    assert r.status is Status.INVALID
    assert "does not chain to any of the 6 trusted" in r.reasons[0]


def test_generations_with_one_dn(
    anchors: list[JpkiCertificate], leaf: JpkiCertificate, old_leaf: JpkiCertificate
) -> None:
    r = validate_chain(leaf, Policy(anchors=anchors, at=AT))
    assert r.status is Status.VALID, r.reasons
    assert leaf.authority_key_id is not None
    assert leaf.authority_key_id.hex() in r.reasons[0]  # picked by key, not by name
    assert len(r.chain) == 2
    # The 2015 leaf chains to the 2015 CA while that CA was valid.
    r_old = validate_chain(old_leaf, Policy(anchors=anchors, at=datetime(2021, 1, 1, tzinfo=UTC)))
    assert r_old.status is Status.VALID, r_old.reasons
    # Only the other generation trusted: same issuer DN, wrong key -> invalid.
    only_2015 = [a for a in anchors if a.not_after.year == 2025]
    assert validate_chain(leaf, Policy(anchors=only_2015, at=AT)).status is Status.INVALID


def test_expired_and_not_yet_valid(anchors: list[JpkiCertificate], leaf: JpkiCertificate) -> None:
    late = validate_chain(leaf, Policy(anchors=anchors, at=datetime(2045, 1, 1, tzinfo=UTC)))
    assert late.status is Status.INVALID
    assert late.reasons[0].code is Code.CERT_EXPIRED and "expired" in late.reasons[0]
    early = validate_chain(leaf, Policy(anchors=anchors, at=datetime(2020, 1, 1, tzinfo=UTC)))
    assert early.status is Status.INVALID
    assert early.reasons[0].code is Code.CERT_NOT_YET_VALID
    assert "not valid before" in early.reasons[0]


def test_key_usage_and_kind(test_pki: TestPki, anchors: list[JpkiCertificate]) -> None:
    auth = JpkiCertificate.load(test_pki.issue_auth().der)
    assert (
        validate_chain(auth, Policy(anchors=anchors, at=AT, purpose="login")).status is Status.VALID
    )
    r = validate_chain(auth, Policy(anchors=anchors, at=AT, purpose="sign"))
    assert r.status is Status.INVALID
    assert any("non repudiation" in x for x in r.reasons)
    over = validate_chain(auth, Policy(anchors=anchors, at=AT, purpose="any"))
    assert over.status is Status.VALID
    assert any("overridden" in x for x in over.reasons)


def test_policy_check(anchors: list[JpkiCertificate], leaf: JpkiCertificate) -> None:
    good = validate_chain(
        leaf, Policy(anchors=anchors, at=AT, required_policies=[SIGNING_POLICY_OID.dotted_string])
    )
    assert good.status is Status.VALID, good.reasons
    bad = validate_chain(leaf, Policy(anchors=anchors, at=AT, required_policies=["1.2.3.4"]))
    assert bad.status is Status.INVALID
    assert "polic" in bad.reasons[0]


def test_bad_arguments(anchors: list[JpkiCertificate], leaf: JpkiCertificate) -> None:
    with pytest.raises(UsageError, match="out of range"):
        validate_chain(leaf, Policy(anchors=anchors, at=datetime(9999, 12, 31, tzinfo=UTC)))
    with pytest.raises(UsageError, match="timezone-aware"):
        validate_chain(leaf, Policy(anchors=anchors, at=datetime(2026, 1, 1)))


def test_load_trust_anchors_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_bytes(
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    )
    with pytest.raises(CertificateError, match=r"junk\.pem"):
        load_trust_anchors(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="no CA certificates"):
        load_trust_anchors(empty)
    with pytest.raises(UsageError, match="cannot read"):
        load_trust_anchors(tmp_path / "missing.pem")


def test_pem_bundle_and_der(tmp_path: Path, test_pki: TestPki, test_pki_2015: TestPki) -> None:
    (tmp_path / "bundle.pem").write_bytes(test_pki.sign_ca.pem + test_pki_2015.sign_ca.pem)
    (tmp_path / "auth.der").write_bytes(test_pki.auth_ca.der)
    (tmp_path / "README.md").write_text("ignored")
    assert len(load_trust_anchors(tmp_path)) == 3


# --- revocation seam --------------------------------------------------------------------------


class RStatus(Enum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Outcome:
    status: RStatus
    reason: str | None = None
    revoked_at: datetime | None = None
    source: str | None = "crl"
    detail: str | None = None


def test_revocation_seam(anchors: list[JpkiCertificate], leaf: JpkiCertificate) -> None:
    seen: list[tuple[str, str, datetime]] = []

    def good(cert: JpkiCertificate, issuer: JpkiCertificate, at: datetime) -> Outcome:
        seen.append((cert.subject_text, issuer.subject_text, at))
        return Outcome(RStatus.GOOD)

    r = validate_chain(leaf, Policy(anchors=anchors, at=AT, revocation=good))
    assert r.status is Status.VALID
    assert seen == [(leaf.subject_text, leaf.issuer_text, AT)]
    assert "not revoked (from crl)" in r.reasons[-1]

    revoked = validate_chain(
        leaf,
        Policy(
            anchors=anchors,
            at=AT,
            revocation=lambda c, i, t: Outcome(RStatus.REVOKED, "affiliationChanged", AT),
        ),
    )
    assert revoked.status is Status.INVALID
    assert "REVOKED (affiliationChanged)" in revoked.reasons[-1]

    def unknown(c: JpkiCertificate, i: JpkiCertificate, t: datetime) -> Outcome:
        return Outcome(RStatus.UNKNOWN, detail="no CRL covers this certificate")

    hard = validate_chain(leaf, Policy(anchors=anchors, at=AT, revocation=unknown))
    assert hard.status is Status.INDETERMINATE
    assert "no CRL covers" in hard.reasons[-1]
    soft = validate_chain(leaf, Policy(anchors=anchors, at=AT, revocation=unknown, soft_fail=True))
    assert soft.status is Status.VALID
    assert "soft-fail" in soft.reasons[-1]
    assert "revocation status NOT established" in soft.reasons[-1]
    assert "not revoked" not in soft.reasons[-1]


def test_policy_soft_fail_answer_is_not_reported_as_not_revoked(
    anchors: list[JpkiCertificate], leaf: JpkiCertificate
) -> None:
    # jpki.revocation.policy answers GOOD with source "soft-fail" under a soft-fail policy:
    # the result must still say revocation was not established.
    def policy_soft(c: JpkiCertificate, i: JpkiCertificate, t: datetime) -> Outcome:
        return Outcome(RStatus.GOOD, source="soft-fail", detail="treated as good: crl: stale")

    r = validate_chain(leaf, Policy(anchors=anchors, at=AT, revocation=policy_soft))
    assert r.status is Status.VALID
    assert "revocation status NOT established" in r.reasons[-1]
    assert "stale" in r.reasons[-1] and "soft-fail" in r.reasons[-1]
    assert "not revoked" not in r.reasons[-1]


def test_revocation_seam_exceptions(anchors: list[JpkiCertificate], leaf: JpkiCertificate) -> None:
    def raises_revoked(c: JpkiCertificate, i: JpkiCertificate, t: datetime) -> Outcome:
        raise RevokedError("keyCompromise", AT)

    def raises_unknown(c: JpkiCertificate, i: JpkiCertificate, t: datetime) -> Outcome:
        raise RevocationUnknown("OCSP responder unreachable")

    assert (
        validate_chain(leaf, Policy(anchors=anchors, at=AT, revocation=raises_revoked)).status
        is Status.INVALID
    )
    r = validate_chain(leaf, Policy(anchors=anchors, at=AT, revocation=raises_unknown))
    assert r.status is Status.INDETERMINATE and "unreachable" in r.reasons[-1]


def test_revocation_not_consulted_for_broken_chain(
    anchors: list[JpkiCertificate], leaf: JpkiCertificate
) -> None:
    def boom(c: JpkiCertificate, i: JpkiCertificate, t: datetime) -> Outcome:
        raise AssertionError("must not be called")

    late = datetime(2045, 1, 1, tzinfo=UTC)
    assert (
        validate_chain(leaf, Policy(anchors=anchors, at=late, revocation=boom)).status
        is Status.INVALID
    )


def test_basic_constraints_end_entity_cannot_issue(
    test_pki: TestPki, anchors: list[JpkiCertificate]
) -> None:
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    signer = test_pki.issue_signing(sample_person(0))
    sub_key = test_pki.key("bc-victim")
    ski = signer.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    forged = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "forged")]))
        .issuer_name(signer.cert.subject)
        .public_key(sub_key.public_key())
        .serial_number(12345)
        .not_valid_before(AT - timedelta(days=1))
        .not_valid_after(AT + timedelta(days=30))
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False),
            critical=True,
        )
        .sign(signer.key, hashes.SHA256())
    )
    leaf = JpkiCertificate.from_cryptography(forged)
    r = validate_chain(
        leaf,
        Policy(anchors=anchors, at=AT, purpose="any"),
        intermediates=[JpkiCertificate.load(signer.der)],
    )
    assert r.status is Status.INVALID
    text = " ".join(r.reasons).lower()
    assert "is not a ca" in text, r.reasons  # BasicConstraints: an end entity issued it
