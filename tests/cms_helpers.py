"""Build a one-signer CMS SignedData around a signature made elsewhere (test key or card)."""

from __future__ import annotations

from asn1crypto import algos, cms
from asn1crypto import x509 as asn1_x509


def signed_data(
    cert_der: bytes, signed_attrs: cms.CMSAttributes, signature: bytes, content: bytes | None
) -> bytes:
    """ContentInfo DER: SHA-256 / rsassa_pkcs1v15 signer by issuer and serial, the signer's
    certificate embedded; ``content`` None makes it detached."""
    leaf = asn1_x509.Certificate.load(cert_der)
    signer = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": cms.IssuerAndSerialNumber(
                        {"issuer": leaf.issuer, "serial_number": leaf.serial_number}
                    )
                }
            ),
            "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
            "signed_attrs": signed_attrs,
            "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"}),
            "signature": signature,
        }
    )
    encap: dict[str, object] = {"content_type": "data"}
    if content is not None:
        encap["content"] = content
    sd = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
            "encap_content_info": encap,
            "certificates": [leaf],
            "signer_infos": [signer],
        }
    )
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": sd}).dump())
