"""Signatures, CMS and logins made by the simulated card (through the real card client)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asn1crypto import cms, core

from cms_helpers import signed_data
from jpki.card.jpki_ap import JpkiAp
from jpki.cert import JpkiCertificate
from jpki.digestinfo import digest_info_for
from jpki.secret import Secret
from jpki.sim import open_simulated_card
from jpki.sim.create import create_profile
from jpki.transport.simulated import SimulatedConnection
from jpki.verify import (
    LoginVerifier,
    MemoryChallengeStore,
    Policy,
    Status,
    verify_cms,
    verify_signature,
)

AT = datetime(2026, 6, 1, tzinfo=UTC)
DOC = "申込書: 口座開設\n".encode()


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JpkiAp]:
    path = tmp_path_factory.mktemp("sim") / "card"
    create_profile(path)
    conn = SimulatedConnection(open_simulated_card(path))
    try:
        yield JpkiAp(conn)
    finally:
        conn.close()


def test_document_signature_from_card(card: JpkiAp) -> None:
    card.verify_pin("sign", Secret("JPKITEST01"))  # also needed to read the certificate
    cert = JpkiCertificate.load(card.read_certificate("sign"))
    ca = JpkiCertificate.load(card.read_certificate("sign-ca"))
    sig = card.sign_data("sign", DOC)
    policy = Policy(anchors=[ca], at=AT)
    r = verify_signature(cert, sig, data=DOC, policy=policy)
    assert r.status is Status.VALID, r.reasons
    assert verify_signature(cert, sig, data=DOC + b" ", policy=policy).status is Status.INVALID
    from jpki.verify import validate_chain

    chain = validate_chain(cert, policy)
    assert chain.status is Status.VALID, chain.reasons


def test_cms_signed_by_card(card: JpkiAp) -> None:
    card.verify_pin("sign", Secret("JPKITEST01"))
    cert_der = card.read_certificate("sign")
    ca = JpkiCertificate.load(card.read_certificate("sign-ca"))
    attrs = cms.CMSAttributes(
        [
            cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
            cms.CMSAttribute({"type": "message_digest", "values": [hashlib.sha256(DOC).digest()]}),
            cms.CMSAttribute(
                {"type": "signing_time", "values": [cms.Time({"utc_time": core.UTCTime(AT)})]}
            ),
        ]
    )
    # The card signs DigestInfo(SHA-256(DER of the attributes as SET OF)).
    signature = card.sign("sign", digest_info_for(attrs.dump()))
    blob = signed_data(cert_der, attrs, signature, None)  # detached
    r = verify_cms(blob, Policy(anchors=[ca], at=AT), content=DOC)
    assert r.status is Status.VALID, r.reasons
    assert r.signing_time == AT
    assert verify_cms(blob, Policy(at=AT), content=DOC[:-1]).status is Status.INVALID


def test_login_with_card(card: JpkiAp, tmp_path: Path) -> None:
    auth_cert = card.read_certificate("auth")
    ca = JpkiCertificate.load(card.read_certificate("auth-ca"))
    v = LoginVerifier(MemoryChallengeStore(), Policy(anchors=[ca]))
    ch = v.issue()
    card.verify_pin("auth", Secret("1234"))
    sig = card.sign_data("auth", ch.nonce)
    r = v.verify(ch.id, sig, auth_cert)
    assert r.status is Status.VALID, r.reasons
    assert r.account_key and len(r.account_key) == 64
    assert v.verify(ch.id, sig, auth_cert).status is Status.INVALID  # replay
