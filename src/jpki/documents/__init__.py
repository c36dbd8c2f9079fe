"""Signed documents: CMS and PDF (PAdES) signing with the card, PDF verification.

Needs the ``pdf`` extra (pyHanko): ``pip install 'jpki[pdf]'``. PDF structure is pyHanko's;
trust, policy and revocation are jpki's (``jpki.verify``, ``jpki.revocation``).
"""

from __future__ import annotations
