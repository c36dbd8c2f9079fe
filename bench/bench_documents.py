"""PDF verification: ``jpki.documents.verify_pdf`` vs pyHanko's ``validate_pdf_signature``.

Same run, same file (one PAdES signature by a test-PKI signing key, made by pyHanko), same
trust root, no revocation on either side. jpki does more per signature (the CMS is checked
again at the signing time and now, JPKI kind policy, basic 4 information), so a ratio near or
above 1 is expected; the point is that it stays within a small factor of the reference.

Usage: ``python bench/bench_documents.py [--quick] [--json]``.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _time(fn: Callable[[], object], n: int) -> float:
    fn()  # warm caches on both sides
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives import serialization
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign import signers
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    from jpki.documents.verify_pdf import verify_pdf
    from jpki.testing.pki import TestPki
    from pdf_helpers import minimal_pdf

    pki = TestPki()
    leaf = pki.issue_signing()
    key_der = leaf.key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    signer = signers.SimpleSigner(
        signing_cert=asn1_x509.Certificate.load(leaf.der),
        signing_key=asn1_keys.PrivateKeyInfo.load(key_der),
        cert_registry=SimpleCertificateStore.from_certs(
            [asn1_x509.Certificate.load(pki.sign_ca.der)]
        ),
    )
    out = io.BytesIO()
    signers.sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(minimal_pdf())),
        signers.PdfSignatureMetadata(field_name="Sig1"),
        signer=signer,
        output=out,
    )
    pdf = out.getvalue()
    anchors = [pki.sign_ca.jpki]
    root = asn1_x509.Certificate.load(pki.sign_ca.der)

    def ours() -> None:
        r = verify_pdf(pdf, trust_anchors=anchors)
        assert r.valid, r.reasons

    def reference() -> None:
        vc = ValidationContext(trust_roots=[root])
        sig = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[0]
        st = validate_pdf_signature(sig, vc)
        assert st.bottom_line

    n = 10 if args.quick else 50
    t_ours, t_ref = _time(ours, n), _time(reference, n)
    row = {
        "name": "PDF verification, 1 signature (verify_pdf)",
        "value": t_ours * 1000,
        "unit": "ms",
        "reference": "pyHanko validate_pdf_signature, same file",
        "reference_value": t_ref * 1000,
        "ratio": t_ours / t_ref,
    }
    if args.json:
        print(json.dumps({"rows": [row]}))
    else:
        print(
            f"{row['name']}: {row['value']:.1f} ms; {row['reference']}: "
            f"{row['reference_value']:.1f} ms; ratio {row['ratio']:.2f}"
        )


if __name__ == "__main__":
    main()
