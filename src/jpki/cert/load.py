"""Loading a certificate: DER checked by its header, PEM or bare base64; decode errors.

Errors cryptography raises while decoding a malformed certificate become ``CertificateError``.
"""

from __future__ import annotations

import base64
import binascii
import warnings

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.utils import CryptographyDeprecationWarning

from jpki.errors import CertificateError, TlvError
from jpki.tlv import parse_length, parse_tag

# Errors cryptography raises while lazily decoding a malformed certificate.
DECODE_ERRORS = (
    ValueError,
    TypeError,
    OverflowError,
    KeyError,  # unknown string tag inside a Name
    UnsupportedAlgorithm,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)


def parse_der(data: bytes) -> x509.Certificate:
    try:
        tag, pos = parse_tag(data)
        length, pos = parse_length(data, pos)
    except TlvError as exc:
        raise CertificateError(f"not a DER certificate: {exc}") from None
    if tag != 0x30:
        raise CertificateError("not a DER certificate: does not start with a SEQUENCE")
    if pos + length != len(data):
        raise CertificateError(
            f"not a DER certificate: header says {pos + length} bytes, got {len(data)}"
        )
    try:
        with warnings.catch_warnings():
            # e.g. a non-positive serial: deprecated now, rejected by later cryptography
            warnings.simplefilter("error", CryptographyDeprecationWarning)
            return x509.load_der_x509_certificate(data)
    except (*DECODE_ERRORS, x509.InvalidVersion, CryptographyDeprecationWarning) as exc:
        raise CertificateError(f"malformed certificate: {exc}") from None


def pem_to_der(data: bytes) -> bytes:
    begin = b"-----BEGIN CERTIFICATE-----"
    end = b"-----END CERTIFICATE-----"
    start = data.find(begin)
    stop = data.find(end, start + len(begin))
    if start < 0 or stop < 0:
        raise CertificateError("PEM input has no complete CERTIFICATE block")
    return b64(data[start + len(begin) : stop])


def b64(body: bytes) -> bytes:
    compact = b"".join(body.split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise CertificateError("certificate is neither DER, PEM nor valid base64") from None
