"""Build hook for the optional compiled loop (jpki[native]); all metadata is in pyproject.toml.

``jpki.verify._native`` (native/verify.c, against the system libcrypto) is compiled whenever a
C compiler, Python's headers and OpenSSL >= 3.0 headers are present, and silently left out
otherwise (``optional``): ``verify_batch`` then runs its pure-Python loop, with the same
results. An extra cannot change how a package is built, so the build is attempted always;
``JPKI_BUILD_NATIVE=0`` skips it, ``JPKI_BUILD_NATIVE=1`` makes a failed build an error (CI).
"""

from __future__ import annotations

import os

from setuptools import Extension, setup

_choice = os.environ.get("JPKI_BUILD_NATIVE", "").strip()
_native = Extension(
    "jpki.verify._native",
    sources=["native/verify.c"],
    libraries=["crypto"],
    optional=_choice != "1",
)
setup(ext_modules=[] if _choice == "0" else [_native])
