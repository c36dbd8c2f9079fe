"""The OID vocabulary of the package, one class per namespace (dotted strings).

Like cryptography's ``x509/oid.py``: code names an OID by meaning (``ExtensionOID.KEY_USAGE``,
``JpkiPolicyOID.AUTHENTICATION``) and this module is the only place that spells it out.
"""

from __future__ import annotations

__all__ = [
    "JPKI_ARC",
    "BasicInfoOID",
    "CmsOID",
    "CrlEntryOID",
    "ExtensionOID",
    "HashOID",
    "JpkiPolicyOID",
    "NameOID",
    "SignatureOID",
]

#: 公的個人認証サービス (J-LIS JPKI) arc.
JPKI_ARC = "1.2.392.200149.8.5"


class JpkiPolicyOID:
    """Certificate policies of the JPKI end-entity certificates."""

    ARC = f"{JPKI_ARC}.1."
    TEST_ARC = f"{JPKI_ARC}.1.0."  # test cards
    SIGNING = f"{JPKI_ARC}.1.1.20"
    SIGNING_TEST = f"{JPKI_ARC}.1.0.20"
    PHONE_SIGNING = f"{JPKI_ARC}.1.1.40"
    AUTHENTICATION = f"{JPKI_ARC}.1.3.30"
    PHONE_AUTHENTICATION = f"{JPKI_ARC}.1.3.40"  # by analogy with PHONE_SIGNING, unconfirmed


class BasicInfoOID:
    """subjectAltName otherName type-ids of the basic 4 information (基本4情報)."""

    NAME = f"{JPKI_ARC}.5.1"
    NAME_SUBSTITUTES = f"{JPKI_ARC}.5.2"
    SEX = f"{JPKI_ARC}.5.3"
    BIRTH_DATE = f"{JPKI_ARC}.5.4"
    ADDRESS = f"{JPKI_ARC}.5.5"
    ADDRESS_SUBSTITUTES = f"{JPKI_ARC}.5.6"


class NameOID:
    COUNTRY = "2.5.4.6"
    ORGANIZATION = "2.5.4.10"
    ORGANIZATIONAL_UNIT = "2.5.4.11"
    COMMON_NAME = "2.5.4.3"


class ExtensionOID:
    SUBJECT_KEY_IDENTIFIER = "2.5.29.14"
    KEY_USAGE = "2.5.29.15"
    SUBJECT_ALT_NAME = "2.5.29.17"
    BASIC_CONSTRAINTS = "2.5.29.19"
    CRL_DISTRIBUTION_POINTS = "2.5.29.31"
    CERTIFICATE_POLICIES = "2.5.29.32"
    AUTHORITY_KEY_IDENTIFIER = "2.5.29.35"
    EXTENDED_KEY_USAGE = "2.5.29.37"


class CrlEntryOID:
    REASON_CODE = "2.5.29.21"
    HOLD_INSTRUCTION = "2.5.29.23"
    INVALIDITY_DATE = "2.5.29.24"
    CERTIFICATE_ISSUER = "2.5.29.29"


class HashOID:
    """digestAlgorithm OIDs."""

    SHA1 = "1.3.14.3.2.26"
    SHA256 = "2.16.840.1.101.3.4.2.1"
    SHA384 = "2.16.840.1.101.3.4.2.2"
    SHA512 = "2.16.840.1.101.3.4.2.3"


class SignatureOID:
    RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
    SHA1_WITH_RSA = "1.2.840.113549.1.1.5"
    SHA224_WITH_RSA = "1.2.840.113549.1.1.14"
    SHA256_WITH_RSA = "1.2.840.113549.1.1.11"
    SHA384_WITH_RSA = "1.2.840.113549.1.1.12"
    SHA512_WITH_RSA = "1.2.840.113549.1.1.13"


class CmsOID:
    DATA = "1.2.840.113549.1.7.1"
    SIGNED_DATA = "1.2.840.113549.1.7.2"
    CONTENT_TYPE = "1.2.840.113549.1.9.3"
    MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
    SIGNING_TIME = "1.2.840.113549.1.9.5"
