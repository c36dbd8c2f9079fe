"""Regenerate the seed corpus: ``python tests/fuzz/make_corpus.py`` (deterministic test PKI).

Seeds are small valid inputs (plus a few edge cases) so that fuzzing starts from the shapes
the parsers are meant for. Output: ``corpus/<harness>/<name>``.
"""

from __future__ import annotations

import base64
from datetime import date, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509 import ocsp

from jpki.apdu import CommandApdu, ResponseApdu
from jpki.sim.layout import CardInfoKeys, VisualImages, key_id, text_ap_files, visual_ap_files
from jpki.testing.pki import TestPki, sample_person

CORPUS = Path(__file__).resolve().parent / "corpus"
JPKI_AID = bytes.fromhex("D392F000260100000001")


def _join(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(2, "big") + p for p in parts)


def _ocsp_seeds(pki: TestPki) -> dict[str, bytes]:
    """Answers about the signing certificate of person 0 (what fuzz_ocsp.context() asks)."""
    cert = pki.issue_signing(sample_person(0)).cert
    ca = pki.ca("sign")
    responder = pki.issue_ocsp_responder("sign")
    now = pki.now

    def build(status: ocsp.OCSPCertStatus, signer: str = "ca", nonce: bytes | None = None) -> bytes:
        revoked = status is ocsp.OCSPCertStatus.REVOKED
        b = ocsp.OCSPResponseBuilder().add_response(
            cert=cert,
            issuer=ca.cert,
            algorithm=hashes.SHA1(),
            cert_status=status,
            this_update=now - timedelta(hours=1),
            next_update=now + timedelta(hours=23),
            revocation_time=now - timedelta(days=1) if revoked else None,
            revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
        )
        if nonce is not None:
            b = b.add_extension(x509.OCSPNonce(nonce), critical=False)
        if signer == "ca":
            b = b.responder_id(ocsp.OCSPResponderEncoding.HASH, ca.cert)
            resp = b.sign(ca.key, hashes.SHA256())
        else:
            b = b.responder_id(ocsp.OCSPResponderEncoding.NAME, responder.cert)
            resp = b.certificates([responder.cert]).sign(responder.key, hashes.SHA256())
        return resp.public_bytes(serialization.Encoding.DER)

    return {
        "good.der": build(ocsp.OCSPCertStatus.GOOD),
        "revoked.der": build(ocsp.OCSPCertStatus.REVOKED),
        "unknown.der": build(ocsp.OCSPCertStatus.UNKNOWN),
        "delegated.der": build(ocsp.OCSPCertStatus.GOOD, signer="responder"),
        "nonce.der": build(ocsp.OCSPCertStatus.GOOD, nonce=b"\x01" * 16),
        "try_later.der": ocsp.OCSPResponseBuilder.build_unsuccessful(
            ocsp.OCSPResponseStatus.TRY_LATER
        ).public_bytes(serialization.Encoding.DER),
    }


def seeds() -> dict[str, dict[str, bytes]]:
    pki = TestPki()
    person = sample_person(0)
    sign = pki.issue_signing(person)
    auth = pki.issue_auth()
    out: dict[str, dict[str, bytes]] = {}

    out["apdu"] = {
        "select": CommandApdu(0x00, 0xA4, 0x04, 0x0C, JPKI_AID).encode(),
        "verify_empty": bytes.fromhex("00200080"),
        "verify": CommandApdu(0x00, 0x20, 0x00, 0x80, b"1234").encode(),
        "change": CommandApdu(0x00, 0x24, 0x01, 0x80, b"JPKITEST02").encode(),
        "read": CommandApdu(0x00, 0xB0, 0x00, 0x00, le=256).encode(),
        "sign_ext": CommandApdu(0x80, 0x2A, 0x00, 0x80, b"\x30" * 51, 65536).encode(True),
        "resp_ok": ResponseApdu(b"\x30\x82\x05\x00", 0x9000).encode(),
        "resp_tries": bytes.fromhex("63C3"),
    }

    keys = CardInfoKeys(
        cvca=pki.key("fuzz-cvc-root"),
        cvca_id=key_id("7000033"),
        ap=pki.key("fuzz-text-issuer"),
        ap_id=key_id("7100033"),
        card=pki.key("fuzz-text-card"),
    )
    files = text_ap_files(
        my_number=person.my_number,
        name=person.name,
        address=person.address,
        birth_date=person.birth_date,
        sex=person.sex,
        keys=keys,
        session_key=pki.key("fuzz-text-session").public_key(),
        basic_key_id=key_id("7000034"),
    )
    long_files = text_ap_files(
        my_number=person.my_number,
        name=person.name,
        address=person.address,
        birth_date=person.birth_date,
        sex=person.sex,
        keys=keys,
        session_key=pki.key("fuzz-text-session").public_key(),
        basic_key_id=key_id("7000034"),
        long_form=True,
    )
    out["tlv"] = {
        "my_number": files.ef0001,
        "basic_info": files.ef0002,
        "basic_info_long_form": long_files.ef0002,
        "cert_header": auth.der[:8],
        "multi_byte_tags": bytes.fromhex("7F2106 5F4E03 900101 1F81010100 DF2100".replace(" ", "")),
    }

    out["cert"] = {
        "auth.der": auth.der,
        "sign.pem": sign.pem,
        "sign.b64": base64.b64encode(sign.der),
        "sign_ca.der": pki.sign_ca.der,
    }

    now = pki.now
    entries = [
        (1, x509.ReasonFlags.key_compromise, now - timedelta(days=3)),
        (auth.cert.serial_number, None, now - timedelta(days=2)),
        (2**150 + 7, x509.ReasonFlags.cessation_of_operation, now - timedelta(days=1)),
    ]
    out["crl"] = {
        "three.der": pki.make_crl("sign", entries, number=7),
        "empty.der": pki.make_crl("auth", (), number=1),
        "idp.der": pki.make_crl("sign", entries[:1], number=8, idp_name=pki.crl_dp_name(person)),
    }

    content = b"jpki fuzz seed\n"
    key = pki.key(f"sign-{person.my_number}")
    opts_detached = [pkcs7.PKCS7Options.DetachedSignature]
    builder = pkcs7.PKCS7SignatureBuilder().set_data(content)
    signer = builder.add_signer(sign.cert, key, hashes.SHA256())
    out["cms"] = {
        "attached.der": signer.sign(serialization.Encoding.DER, []),
        "detached.der": signer.sign(serialization.Encoding.DER, opts_detached),
        "no_attrs.der": signer.sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.NoAttributes]),
        "attached.pem": signer.sign(serialization.Encoding.PEM, []),
    }

    out["ocsp"] = _ocsp_seeds(pki)

    images = VisualImages(
        name_png=b"\x89PNG name",
        address_png=b"\x89PNG address",
        face_jp2=b"\x00\x00\x00\x0cjP  face",
        security_code_png=b"\x89PNG code",
        my_number_png=b"\x89PNG number",
    )
    vis = visual_ap_files(
        birth_date=person.birth_date,
        sex=person.sex,
        expiry_date=date(2033, 1, 1),
        municipality_code="13101",
        images=images,
        keys=CardInfoKeys(
            cvca=pki.key("fuzz-cvc-root"),
            cvca_id=key_id("7000023"),
            ap=pki.key("fuzz-visual-issuer"),
            ap_id=key_id("7100023"),
            card=pki.key("fuzz-visual-card"),
        ),
    )
    vis2, vis5 = vis.ef0002, vis.ef0005
    spki = (
        pki.key("fuzz-visual-issuer")
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    out["cardinfo"] = {
        "0_my_number": b"\x00" + files.ef0001,
        "1_basic_info": b"\x01" + files.ef0002,
        "1_basic_info_long": b"\x01" + long_files.ef0002,
        "2_cvc": b"\x02" + files.ef0004,
        "3_surface": b"\x03" + vis2,
        "4_my_number_image": b"\x04" + vis5,
        "5_integrity": b"\x05" + _join(files.ef0001, files.ef0002, files.ef0003, files.ef0004),
        "6_spki": b"\x06" + spki,
    }
    return out


def main() -> None:
    for harness, files in seeds().items():
        folder = CORPUS / harness
        folder.mkdir(parents=True, exist_ok=True)
        # Inputs that once crashed a parser (crash-*) are kept: they are regression seeds.
        for old in folder.iterdir():
            if not old.name.startswith("crash-"):
                old.unlink()
        for name, data in files.items():
            (folder / name).write_bytes(data)
        print(f"{harness}: {len(files)} seeds, {sum(map(len, files.values()))} bytes")


if __name__ == "__main__":
    main()
