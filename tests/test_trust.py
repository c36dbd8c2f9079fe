"""Built-in trust: the six J-LIS roots and six CVCA keys ship in the package, pinned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jpki.errors import UsageError
from jpki.trust import CvcaKeyring, builtin_cvca_keys, jlis_roots, load_cvca_keys
from jpki.trust import cvca as cvca_mod
from jpki.trust import jlis as jlis_mod


def test_six_roots_three_generations() -> None:
    roots = jlis_roots()
    assert len(roots) == 6
    assert len(jlis_roots("sign")) == 3 and len(jlis_roots("auth")) == 3
    assert {r.serial_hex.lstrip("0") for r in jlis_roots("sign")} == {"1", "132C4AB", "67C6A21"}
    assert {r.serial_hex.lstrip("0") for r in jlis_roots("auth")} == {"1", "133C349", "6D18006"}
    # one DN per CA across generations: the keys differ
    assert len({r.subject_text for r in jlis_roots("sign")}) == 1
    assert len({r.public_key.public_numbers().n for r in roots}) == 6  # type: ignore[union-attr]


def test_unknown_purpose_is_usage_error() -> None:
    with pytest.raises(UsageError):
        jlis_roots("phone")  # type: ignore[arg-type]


def test_root_pin_mismatch_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jlis_mod, "_CACHE", {})
    monkeypatch.setitem(jlis_mod.JLIS_ROOT_FINGERPRINTS, "sign_ca_2019.pem", "00" * 32)
    with pytest.raises(RuntimeError, match="pinned"):
        jlis_roots("sign")


def test_cvca_keys_pinned_and_named() -> None:
    keys = builtin_cvca_keys()
    assert [k.key_id_text for k in keys] == [
        "5000020/001",
        "5000023/001",
        "5000033/001",
        "6000020/001",
        "6000023/001",
        "6000033/001",
    ]
    assert {k.hierarchy for k in keys} == {"production", "test"}
    ring = CvcaKeyring()
    text_test = bytes.fromhex("36303030303333080530303100000000")
    assert ring.get(text_test) is not None
    # all 16 bytes count: the MF-level ids end in A8, a near-miss is not the same key
    assert ring.get(text_test[:-1] + b"\xa8") is None


def test_cvca_pin_mismatch_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cvca_mod, "_BUILTIN", None)
    pins = dict(cvca_mod.BUILTIN_MODULUS_SHA256)
    pins["36303030303333080530303100000000"] = "00" * 32
    monkeypatch.setattr(cvca_mod, "BUILTIN_MODULUS_SHA256", pins)
    with pytest.raises(RuntimeError, match="pin"):
        builtin_cvca_keys()


def test_caller_key_directory(tmp_path: Path) -> None:
    key = builtin_cvca_keys()[-1]
    (tmp_path / "k.pem").write_text(key.public_key_pem())
    kid = "37303030303333080530303100000000"
    (tmp_path / "index.json").write_text(json.dumps([{"key_id_hex": kid, "file": "k.pem"}]))
    (loaded,) = load_cvca_keys(tmp_path)
    assert loaded.key_id_text == "7000033/001" and loaded.hierarchy == "other"
    assert CvcaKeyring([loaded]).get(bytes.fromhex(kid)) == loaded


@pytest.mark.parametrize(
    "index",
    [
        "not json",
        json.dumps({"key_id_hex": "00"}),
        json.dumps([{"key_id_hex": "0011", "file": "k.pem"}]),
        json.dumps([{"key_id_hex": "37" * 16, "file": "../k.pem"}]),
        json.dumps([{"key_id_hex": "37" * 16, "file": "missing.pem"}]),
        json.dumps([{"key_id_hex": "37" * 16, "file": "bad.pem"}]),
    ],
)
def test_bad_key_directory_is_usage_error(tmp_path: Path, index: str) -> None:
    bad = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
    (tmp_path / "bad.pem").write_text(bad)
    (tmp_path / "index.json").write_text(index)
    with pytest.raises(UsageError):
        load_cvca_keys(tmp_path)


def test_missing_directory_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        load_cvca_keys(tmp_path / "nope")
