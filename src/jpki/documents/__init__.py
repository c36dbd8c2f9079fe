"""Signed documents: CMS and PDF (PAdES) signing with the card, PDF verification.

Needs the ``pdf`` extra (pyHanko): ``pip install 'jpki[pdf]'``. PDF structure is pyHanko's;
trust, policy and revocation are jpki's (``jpki.verify``, ``jpki.revocation``).
"""

from __future__ import annotations

# asn1crypto caches its name -> OID table for CMS attributes on the first lookup by name;
# names registered after that (asn1crypto.tsp's signing_certificate_v2, pyHanko's CAdES
# attributes) are then unknown and pyHanko's signer fails with a bare ValueError. A process
# that verified a CMS before its first signing hits exactly that, so load every registration
# now and rebuild the cache from the complete table.
import pyhanko.sign  # noqa: F401  (registers the CAdES attributes)
from asn1crypto import cms as _cms
from asn1crypto import pdf as _pdf  # noqa: F401  (registers Adobe's revocation attribute)
from asn1crypto import tsp as _tsp  # noqa: F401  (registers signing_certificate(_v2))

if _cms.CMSAttributeType._reverse_map is not None:
    _cms.CMSAttributeType._reverse_map = {v: k for k, v in _cms.CMSAttributeType._map.items()}
