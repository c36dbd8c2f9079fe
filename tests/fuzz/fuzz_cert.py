"""Fuzz certificate loading (DER/PEM/base64) and every lazily decoded JPKI field."""

from __future__ import annotations

from _harness import fuzz_main, guarded, touch

from jpki.cert import JpkiCertificate

NAME = "cert"


@guarded
def target(data: bytes) -> None:
    cert = JpkiCertificate.load(data)
    touch(cert, "der", "tbs_der", "public_key", "kind", "is_test", "crl_dp_directory_names")
    cert.as_dict()  # every field the CLI prints, basic_info included


if __name__ == "__main__":
    fuzz_main(NAME, target)
