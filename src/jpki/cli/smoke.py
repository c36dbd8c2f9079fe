"""`jpki smoke`: an end-to-end session against the built-in simulator through the client stack."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from jpki.card import CertSlot, JpkiAp, KeyKind, TextAp, TokenKind, VisualAp
from jpki.card.protocol import CardProtocol
from jpki.checks import CheckFailed, CheckStatus, run_check
from jpki.cli._common import Exit, emit, handle_errors
from jpki.errors import UsageError
from jpki.secret import Secret
from jpki.trust.cvca import CvcaKey, CvcaKeyring


@dataclass(frozen=True)
class Check:
    """One smoke step's outcome: its name, pass or fail, and what was seen."""

    name: str
    ok: bool
    detail: str


class _Failed(CheckFailed):
    """A check did not hold (the message says what was seen)."""


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise _Failed(message)


def profile_cvca_keys(path: Path) -> tuple[CvcaKey, ...]:
    """The test CVCA keys a simulator profile lists (`jpki sim show --json` cvca_keys)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from jpki.cli.sim import describe
    from jpki.sim.profile import ProfileStore

    out = []
    for entry in describe(ProfileStore(path)).get("cvca_keys", []):
        key = serialization.load_pem_public_key(entry["public_key_pem"].encode("ascii"))
        if isinstance(key, rsa.RSAPublicKey):
            out.append(CvcaKey(bytes.fromhex(entry["key_id_hex"]), key))
    return tuple(out)


def _profile_pins(path: Path) -> dict[str, str]:
    """Current PINs of a simulator profile (changed ones win over the issued ones)."""
    from jpki.sim.profile import ProfileStore

    store = ProfileStore(path)
    return {k.value: pin for k, pin in store.load_state().current_pins(store.profile).items()}


class Session:
    """Runs the checks in order; each records pass/fail and the session goes on."""

    def __init__(
        self, proto: CardProtocol, pins: dict[str, str], keyring: CvcaKeyring | None = None
    ) -> None:
        self.proto = proto
        self.pins = pins
        self.keyring = keyring or CvcaKeyring()
        self.checks: list[Check] = []
        self.certs: dict[CertSlot, x509.Certificate] = {}
        self.jpki: JpkiAp | None = None

    def run(self, name: str, step: Callable[[], str]) -> None:
        # The conformance suite's runner; a smoke session goes on after a failed step.
        """Run one step and record its outcome; a failed step does not stop the session."""
        outcome = run_check(step, also_failures=(InvalidSignature, ValueError))
        self.checks.append(Check(name, outcome.status is CheckStatus.PASS, outcome.detail))

    def ap(self) -> JpkiAp:
        """The JPKI AP session, selected on first use (again after another AP was selected)."""
        if self.jpki is None:
            self.jpki = JpkiAp(self.proto)
        return self.jpki

    # --- steps ---------------------------------------------------------------------------

    def token_info(self) -> str:
        """Step: EF 0006 names a My Number card."""
        info = self.ap().token_info()
        _require(info.kind is TokenKind.MY_NUMBER_CARD, f"unexpected label {info.label!r}")
        return f"{info.label} ({info.kind.value})"

    def pin_status(self) -> str:
        """Step: both PIN counters read twice, unchanged and more than one try left."""
        jpki = self.ap()
        first = [jpki.pin_status(k).tries_left for k in KeyKind]
        again = [jpki.pin_status(k).tries_left for k in KeyKind]
        _require(first == again, f"reading the counters changed them: {first} -> {again}")
        _require(all(t is not None and t > 1 for t in first), f"tries left {first}")
        return f"auth {first[0]}/3, signing {first[1]}/5 (read twice, no try spent)"

    def certificates(self) -> str:
        """Step: the four certificates read, and each leaf verifies under its CA."""
        jpki = self.ap()
        jpki.verify_pin(KeyKind.SIGNING, Secret(self.pins["sign_pin"]))
        for slot in CertSlot:
            self.certs[slot] = x509.load_der_x509_certificate(jpki.read_certificate(slot))
        for leaf, ca in (
            (CertSlot.AUTH, CertSlot.AUTH_CA),
            (CertSlot.SIGNING, CertSlot.SIGNING_CA),
        ):
            self.certs[leaf].verify_directly_issued_by(self.certs[ca])
        sizes = ", ".join(f"{s.value}" for s in self.certs)
        return f"{sizes}; both leaves verify under their CA"

    def verify_auth_pin(self) -> str:
        """Step: the auth PIN is accepted and its counter is back at the maximum."""
        jpki = self.ap()
        jpki.verify_pin(KeyKind.AUTH, Secret(self.pins["auth_pin"]))
        status = jpki.pin_status(KeyKind.AUTH)
        _require(status.tries_left == status.max_tries, f"after a good VERIFY: {status}")
        return f"accepted; counter back at {status.tries_left}/{status.max_tries}"

    def sign_challenge(self) -> str:
        """Step: a random challenge signed by the auth key verifies with its certificate."""
        cert = self.certs.get(CertSlot.AUTH)
        _require(cert is not None, "no auth certificate was read")
        assert cert is not None
        challenge = os.urandom(32)
        signature = self.ap().sign_data(KeyKind.AUTH, challenge, "sha256")
        key = cert.public_key()
        _require(isinstance(key, rsa.RSAPublicKey), "auth certificate key is not RSA")
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(signature, challenge, padding.PKCS1v15(), hashes.SHA256())
        return f"{len(signature) * 8}-bit PKCS#1 v1.5 signature verifies with the certificate key"

    def card_info(self) -> str:
        """Step: the text AP's My Number and basic 4 information, integrity VALID."""
        text_ap = TextAp(self.proto, keyring=self.keyring)
        self.jpki = None  # selecting another DF cleared the JPKI PINs
        text_ap.verify_pin(Secret(self.pins["support_pin"]))
        info = text_ap.read_card_info()
        _require(info.integrity.valid, "; ".join(info.integrity.reasons))
        return (
            f"My Number {info.my_number} (check digit ok), born {info.birth_date.isoformat()}, "
            f"integrity {info.integrity.status.value}"
        )

    def surface(self) -> str:
        """Step: the visual AP's card surface verifies and holds a JP2 photo and PNG images."""
        text_ap = TextAp(self.proto)
        text_ap.verify_pin(Secret(self.pins["support_pin"]))
        my_number = text_ap.read_my_number()
        visual = VisualAp(self.proto, keyring=self.keyring)
        visual.unlock_collation_a(my_number)
        surface = visual.read_surface()
        result = visual.check(surface)
        _require(result.valid, "; ".join(result.reasons))
        _require(surface.face_jp2[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n", "photo is not JP2")
        _require(surface.name_png[:8] == b"\x89PNG\r\n\x1a\n", "name image is not PNG")
        return "photo (JPEG 2000) and name/address images (PNG) signed by the issuer key"


STEPS: tuple[tuple[str, str], ...] = (
    ("token info", "token_info"),
    ("PIN status", "pin_status"),
    ("read 4 certificates", "certificates"),
    ("verify auth PIN", "verify_auth_pin"),
    ("sign challenge with auth key", "sign_challenge"),
    ("card info (input-support AP)", "card_info"),
    ("card surface (visual AP)", "surface"),
)


def run_smoke(profile: Path | None) -> tuple[list[Check], str | None]:
    """Run every check; returns the checks and the profile path used (None: temporary)."""
    from jpki.sim import open_simulated_card
    from jpki.sim.create import create_profile
    from jpki.transport.simulated import SimulatedConnection

    with tempfile.TemporaryDirectory(prefix="jpki-smoke-") as tmp:
        checks: list[Check] = []
        path = profile
        if path is None:
            path = Path(tmp) / "card"
            t0 = time.perf_counter()
            create_profile(path)
            checks.append(
                Check("create simulator profile", True, f"in {time.perf_counter() - t0:.2f} s")
            )
        elif not path.is_dir():
            raise UsageError(f"no simulator profile at {path} (create one: jpki sim init DIR)")
        pins = _profile_pins(path)
        with SimulatedConnection(open_simulated_card(path)) as conn:
            # The profile's own test CVCA signs its CVCs: trust it for this self-test.
            ring = CvcaKeyring(profile_cvca_keys(path))
            session = Session(CardProtocol(conn), pins, ring)
            for name, method in STEPS:
                session.run(name, getattr(session, method))
        checks += session.checks
    return checks, str(profile) if profile else None


@click.command("smoke")
@click.option(
    "--profile",
    type=click.Path(path_type=Path),
    help="Use this simulator profile instead of a fresh temporary one (its PINs are used).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def smoke_cmd(profile: Path | None, as_json: bool) -> None:
    """End-to-end session against the built-in simulator: exit 0 only if every check passes."""
    checks, used = run_smoke(profile)
    ok = all(c.ok for c in checks)
    data: dict[str, Any] = {
        "ok": ok,
        "profile": used,
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
    }

    def text() -> str:
        lines = [f"[{'ok' if c.ok else 'FAIL'}] {c.name}: {c.detail}" for c in checks]
        passed = sum(c.ok for c in checks)
        lines.append(f"{'PASS' if ok else 'FAIL'}: {passed}/{len(checks)} checks passed")
        return "\n".join(lines)

    emit(data, as_json, text)
    raise SystemExit(int(Exit.OK if ok else Exit.INVALID))


commands: list[click.Command] = [smoke_cmd]
