"""Test utilities that ship with jpki: the deterministic test PKI and synthetic CRLs.

Kept apart from the verifiers (nothing in the library imports this package except simulator
profile creation, ``jpki smoke`` and ``jpki conformance``).
"""
