"""JPKI certificate model: load, kind, basic 4 information.

One job per module: :mod:`~jpki.cert.model` (``JpkiCertificate``, distribution points,
names), :mod:`~jpki.cert.load` (DER/PEM/base64 input), :mod:`~jpki.cert.der` (fields read
from the raw DER), :mod:`~jpki.cert.kind` (``CertKind`` and its rule) and
:mod:`~jpki.cert.basic_info` (基本4情報). The names below are the public face.
"""

from __future__ import annotations

from jpki.cert.basic_info import (
    OID_ADDRESS,
    OID_ADDRESS_SUBSTITUTES,
    OID_BIRTH_DATE,
    OID_NAME,
    OID_NAME_SUBSTITUTES,
    OID_SEX,
    BasicInfo,
    Sex,
)
from jpki.cert.kind import CertKind
from jpki.cert.model import DistributionPointName, JpkiCertificate, name_to_text
from jpki.wareki import Era, era_for_date

__all__ = [
    "OID_ADDRESS",
    "OID_ADDRESS_SUBSTITUTES",
    "OID_BIRTH_DATE",
    "OID_NAME",
    "OID_NAME_SUBSTITUTES",
    "OID_SEX",
    "BasicInfo",
    "CertKind",
    "DistributionPointName",
    "Era",
    "JpkiCertificate",
    "Sex",
    "era_for_date",
    "name_to_text",
]
