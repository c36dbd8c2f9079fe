"""`jpki card …`: talk to a My Number card (simulator, PC/SC reader or vpcd bridge)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from jpki.card import CertSlot, JpkiAp, KeyKind, TextAp, VisualAp
from jpki.card.protocol import CardProtocol
from jpki.card.text_ap import CardInfo, IntegrityResult, IntegrityStatus
from jpki.cli._common import (
    Exit,
    card_options,
    emit,
    handle_errors,
    open_connection,
    pin_options,
    read_input_file,
    read_secret,
)
from jpki.digestinfo import HashName, build_digest_info, digest_info_for, hash_name
from jpki.errors import ApduError, CardError, JpkiError, UsageError
from jpki.secret import Secret

_KEYS = click.Choice([k.value for k in KeyKind])
_SLOTS = click.Choice([s.value for s in CertSlot])


@contextlib.contextmanager
def _card(opts: dict[str, Any]) -> Iterator[CardProtocol]:
    """The card named by the ``card_options`` values in ``opts`` (a command's ``**kwargs``)."""
    conn = open_connection(
        sim=opts["sim"], reader=opts["reader"], bridge=opts["bridge"], timeout=opts["timeout"]
    )
    with conn:
        yield CardProtocol(conn)


def _secret(env: str | None, stdin: bool, prompt: str) -> Secret:
    return read_secret(env=env, stdin=stdin, prompt=prompt)


def _pin_prompt(kind: KeyKind) -> str:
    return "Auth PIN (4 digits)" if kind is KeyKind.AUTH else "Signing password"


def _load_cert(der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        raise CardError("certificate on the card is not valid DER X.509") from None


def _subject(der: bytes) -> str:
    return _load_cert(der).subject.rfc4514_string()


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _mkdir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {path}: {exc.strerror or exc}") from None


def _cert_bytes(der: bytes, pem: bool) -> bytes:
    return _load_cert(der).public_bytes(serialization.Encoding.PEM) if pem else der


@click.group("card")
def card_group() -> None:
    """Read certificates, check PINs and sign with a My Number card."""


# --- status -------------------------------------------------------------------------------


@card_group.command("status")
@card_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def status_cmd(as_json: bool, **kwargs: Any) -> None:
    """Token label, tries left for each PIN (spends none), certificate subjects."""
    with _card(kwargs) as proto:
        jpki = JpkiAp(proto)
        info = jpki.token_info()
        auth = jpki.pin_status(KeyKind.AUTH)
        sign = jpki.pin_status(KeyKind.SIGNING)
        subjects: dict[str, str | None] = {}
        for slot in (CertSlot.AUTH, CertSlot.AUTH_CA, CertSlot.SIGNING_CA):
            subjects[slot.value] = _subject(jpki.read_certificate(slot))
        subjects[CertSlot.SIGNING.value] = None  # needs the signing password
        support: int | None = None
        with contextlib.suppress(ApduError):
            support = TextAp(proto).pin_status().tries_left
    data = {
        "token_label": info.label,
        "token_kind": info.kind.value,
        "auth_pin_tries_left": auth.tries_left,
        "sign_pin_tries_left": sign.tries_left,
        "support_pin_tries_left": support,
        "certificates": subjects,
    }

    def text() -> str:
        def tries(n: int | None, m: int) -> str:
            return "unknown" if n is None else ("BLOCKED" if n == 0 else f"{n}/{m}")

        lines = [
            f"token           {info.label} ({info.kind.value})",
            f"auth PIN        {tries(auth.tries_left, 3)} tries left",
            f"signing pass.   {tries(sign.tries_left, 5)} tries left",
            f"input-support   {tries(support, 3)} tries left",
        ]
        for name, subj in subjects.items():
            lines.append(f"cert {name:<10} {subj or '(needs the signing password)'}")
        return "\n".join(lines)

    emit(data, as_json, text)


# --- certificates -------------------------------------------------------------------------


def _verify_signing_for_cert(jpki: JpkiAp, env: str | None, stdin: bool, force: bool) -> None:
    secret = _secret(env, stdin, _pin_prompt(KeyKind.SIGNING))
    jpki.verify_pin(KeyKind.SIGNING, secret, force=force)


@card_group.command("read-cert")
@click.argument("slot", type=_SLOTS)
@card_options
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Output file.")
@click.option("--pem", is_flag=True, help="Write PEM instead of DER.")
@pin_options(what="the signing password (only for `sign`)")
@click.option("--force", is_flag=True, help="Try the password even with one try left.")
@handle_errors
def read_cert_cmd(
    slot: str,
    out: Path,
    pem: bool,
    pin_env: str | None,
    pin_stdin: bool,
    force: bool,
    **kwargs: Any,
) -> None:
    """Write one certificate (auth, sign, auth-ca, sign-ca); `sign` asks for the password."""
    cert_slot = CertSlot(slot)
    with _card(kwargs) as proto:
        jpki = JpkiAp(proto)
        if cert_slot is CertSlot.SIGNING:
            _verify_signing_for_cert(jpki, pin_env, pin_stdin, force)
        der = jpki.read_certificate(cert_slot)
    _write(out, _cert_bytes(der, pem))
    click.echo(f"{slot}: {_subject(der)} -> {out}")


@card_group.command("certs")
@card_options
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Directory.")
@click.option("--pem", is_flag=True, help="Write PEM instead of DER.")
@click.option("--with-sign", is_flag=True, help="Also the signing certificate (asks password).")
@pin_options(what="the signing password (with --with-sign)")
@click.option("--force", is_flag=True, help="Try the password even with one try left.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def certs_cmd(
    out: Path,
    pem: bool,
    with_sign: bool,
    pin_env: str | None,
    pin_stdin: bool,
    force: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Write the certificates to DIR as auth.der, auth-ca.der, sign-ca.der (and sign.der)."""
    slots = [CertSlot.AUTH, CertSlot.AUTH_CA, CertSlot.SIGNING_CA]
    written: dict[str, dict[str, str]] = {}
    _mkdir(out)
    with _card(kwargs) as proto:
        jpki = JpkiAp(proto)
        if with_sign:
            _verify_signing_for_cert(jpki, pin_env, pin_stdin, force)
            slots.append(CertSlot.SIGNING)
        for slot in slots:
            der = jpki.read_certificate(slot)
            path = out / f"{slot.value}.{'pem' if pem else 'der'}"
            _write(path, _cert_bytes(der, pem))
            written[slot.value] = {"path": str(path), "subject": _subject(der)}
    emit(
        {"certificates": written},
        as_json,
        lambda: "\n".join(f"{k:<8} {v['subject']} -> {v['path']}" for k, v in written.items()),
    )


# --- PINs ---------------------------------------------------------------------------------


@card_group.command("verify-pin")
@click.argument("kind", type=_KEYS)
@card_options
@pin_options()
@click.option("--force", is_flag=True, help="Try even when only one try is left.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def verify_pin_cmd(
    kind: str, pin_env: str | None, pin_stdin: bool, force: bool, as_json: bool, **kwargs: Any
) -> None:
    """Check a PIN once (never retried; refuses at one try left unless --force)."""
    key = KeyKind(kind)
    secret = _secret(pin_env, pin_stdin, _pin_prompt(key))
    with _card(kwargs) as proto:
        jpki = JpkiAp(proto)
        jpki.verify_pin(key, secret, force=force)
        after = jpki.pin_status(key).tries_left
    emit(
        {"pin": key.value, "verified": True, "tries_left": after},
        as_json,
        f"{key.pin_name}: correct ({after if after is not None else 'unknown'} tries left)",
    )


@card_group.command("change-pin")
@click.argument("kind", type=_KEYS)
@card_options
@pin_options(what="the current PIN")
@pin_options("new-pin", what="the new PIN")
@click.option("--force", is_flag=True, help="Try the current PIN even with one try left.")
@handle_errors
def change_pin_cmd(
    kind: str,
    pin_env: str | None,
    pin_stdin: bool,
    new_pin_env: str | None,
    new_pin_stdin: bool,
    force: bool,
    **kwargs: Any,
) -> None:
    """Change a JPKI PIN: verify the current one, then set the new one.

    With both --pin-stdin and --new-pin-stdin, stdin holds the current PIN on the first line
    and the new one on the second.
    """
    key = KeyKind(kind)
    old = _secret(pin_env, pin_stdin, f"Current {_pin_prompt(key).lower()}")
    if new_pin_env or new_pin_stdin:
        new = _secret(new_pin_env, new_pin_stdin, "")
    else:
        first = _secret(None, False, f"New {_pin_prompt(key).lower()}")
        again = _secret(None, False, "Repeat the new value")
        if not first.matches(again):
            raise UsageError("the two new values differ; nothing was changed")
        new = first
    with _card(kwargs) as proto:
        JpkiAp(proto).change_pin(key, old, new, force=force)
    click.echo(f"{key.pin_name} changed")


# --- signing ------------------------------------------------------------------------------


@card_group.command("sign")
@click.argument("kind", type=_KEYS)
@card_options
@click.option(
    "--in", "--data", "data_file", metavar="FILE", help="Data to hash and sign ('-': stdin)."
)
@click.option("--digest", "digest_hex", metavar="HEX", help="Sign this precomputed digest.")
@click.option(
    "--hash",
    "hash_opt",
    type=click.Choice([h.value for h in HashName]),
    default="sha256",
    show_default=True,
)
@click.option("--out", type=click.Path(path_type=Path), help="Write the raw signature here.")
@pin_options()
@click.option("--force", is_flag=True, help="Try the PIN even when only one try is left.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def sign_cmd(
    kind: str,
    data_file: str | None,
    digest_hex: str | None,
    hash_opt: str,
    out: Path | None,
    pin_env: str | None,
    pin_stdin: bool,
    force: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Sign a file (or a digest) with the auth or signing key: PKCS#1 v1.5 over a DigestInfo."""
    key = KeyKind(kind)
    if (data_file is None) == (digest_hex is None):
        raise UsageError("give exactly one of --in/--data FILE or --digest HEX")
    if data_file == "-" and pin_stdin:
        raise UsageError("stdin cannot carry both the data (--in -) and the PIN (--pin-stdin)")
    if digest_hex is not None:
        try:
            digest = bytes.fromhex(digest_hex)
        except ValueError:
            raise UsageError("--digest is not hex") from None
        digest_info = build_digest_info(hash_opt, digest)
    else:
        assert data_file is not None
        digest_info = digest_info_for(read_input_file(data_file), hash_name(hash_opt))
    secret = _secret(pin_env, pin_stdin, _pin_prompt(key))
    with _card(kwargs) as proto:
        jpki = JpkiAp(proto)
        jpki.verify_pin(key, secret, force=force)
        signature = jpki.sign(key, digest_info)
    if out is not None:
        _write(out, signature)
    data = {
        "key": key.value,
        "hash": hash_opt,
        "digest_info": digest_info.hex(),
        "signature": signature.hex(),
        "out": str(out) if out else None,
    }
    emit(data, as_json, f"signed with the {key.value} key -> {out}" if out else signature.hex())


# --- text AP / visual AP --------------------------------------------------------------------


def _integrity_exit(result: IntegrityResult) -> Exit:
    return {
        IntegrityStatus.VALID: Exit.OK,
        IntegrityStatus.INVALID: Exit.INVALID,
        IntegrityStatus.INDETERMINATE: Exit.INDETERMINATE,
    }[result.status]


def card_info_json(info: CardInfo, *, show_my_number: bool) -> dict[str, Any]:
    """The `jpki card info --json` object (docs/card-client.md)."""
    return {
        "name": info.name,
        "address": info.address,
        "birth_date": info.birth_date.isoformat(),
        "sex": info.sex.name.lower(),
        "sex_code": int(info.sex),
        "my_number": info.my_number.reveal() if show_my_number else str(info.my_number),
        "integrity": info.integrity.status.value,
        "integrity_reasons": list(info.integrity.reasons),
    }


@card_group.command("info")
@card_options
@pin_options(what="the input-support PIN")
@click.option("--show-my-number", is_flag=True, help="Print the My Number (redacted otherwise).")
@click.option("--force", is_flag=True, help="Try the PIN even when only one try is left.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def info_cmd(
    pin_env: str | None,
    pin_stdin: bool,
    show_my_number: bool,
    force: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Basic 4 information and My Number from the input-support AP, with its integrity check.

    Exit 0 if the issuer signature and hashes match, 1 if not, 3 if they could not be read.
    """
    # The PIN is read before the card is opened: a missing variable must not wait for a card.
    secret = _secret(pin_env, pin_stdin, "Input-support PIN (4 digits)")
    with _card(kwargs) as proto:
        text_ap = TextAp(proto)
        text_ap.verify_pin(secret, force=force)
        info = text_ap.read_card_info()
    data = card_info_json(info, show_my_number=show_my_number)

    def text() -> str:
        return "\n".join(
            [
                f"name        {info.name}",
                f"address     {info.address}",
                f"birth date  {info.birth_date.isoformat()}",
                f"sex         {info.sex.name.lower()}",
                f"My Number   {info.my_number.format(redact=not show_my_number)}",
                f"integrity   {info.integrity.status.value} ({'; '.join(info.integrity.reasons)})",
            ]
        )

    emit(data, as_json, text)
    raise SystemExit(int(_integrity_exit(info.integrity)))


def _issuer_key(proto: CardProtocol) -> rsa.RSAPublicKey | None:
    """The text AP issuer key (EF 0004, free) to check the visual AP key against."""
    try:
        return TextAp(proto).read_issuer_key()
    except JpkiError:
        return None


@card_group.command("surface")
@card_options
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Directory.")
@pin_options(what="the input-support PIN (unlocks with the My Number as collation A)")
@click.option(
    "--collation-b-env",
    metavar="VAR",
    help="Unlock with collation B (14 digits: era birth date YYMMDD + expiry year + code).",
)
@click.option(
    "--show-my-number",
    is_flag=True,
    help="Also write my_number.png, the My Number as printed (only with the PIN).",
)
@click.option("--force", is_flag=True, help="Try even when only one try is left.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def surface_cmd(
    out: Path,
    pin_env: str | None,
    pin_stdin: bool,
    collation_b_env: str | None,
    show_my_number: bool,
    force: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Card-surface AP: write the face photo and name/address images, check the signature.

    Exit 0 if the signature verifies, 1 if not, 3 if it could not be checked.
    """
    if show_my_number and collation_b_env:
        raise UsageError("--show-my-number needs the input-support PIN (collation A)")
    if collation_b_env and (pin_env or pin_stdin):
        raise UsageError("give either the input-support PIN or --collation-b-env, not both")
    _mkdir(out)
    # Secrets are read before the card is opened: a missing variable must not wait for a card.
    if collation_b_env:
        secret = read_secret(env=collation_b_env, stdin=False, prompt="Collation B")
    else:
        secret = _secret(pin_env, pin_stdin, "Input-support PIN (4 digits)")
    with _card(kwargs) as proto:
        issuer = _issuer_key(proto)
        my_number_png: bytes | None = None
        if collation_b_env:
            visual = VisualAp(proto)
            visual.unlock_collation_b(secret, force=force)
        else:
            text_ap = TextAp(proto)
            text_ap.verify_pin(secret, force=force)
            my_number = text_ap.read_my_number()
            visual = VisualAp(proto)  # selecting it clears the text AP PIN, as on a real card
            visual.unlock_collation_a(my_number, force=force)
            if show_my_number:  # specific personal information: only when asked, like `info`
                with contextlib.suppress(JpkiError):
                    my_number_png = visual.read_my_number_image().png
        surface = visual.read_surface()
    result = surface.verify(issuer)
    files = {
        "name_image": ("name.png", surface.name_png),
        "address_image": ("address.png", surface.address_png),
        "face_photo": ("face.jp2", surface.face_jp2),
    }
    if surface.security_code_png is not None:
        files["security_code_image"] = ("security_code.png", surface.security_code_png)
    if my_number_png is not None:
        files["my_number_image"] = ("my_number.png", my_number_png)
    written: dict[str, str] = {}
    for key, (name, content) in files.items():
        _write(out / name, content)
        written[key] = str(out / name)
    data = {
        "birth_date": surface.birth_date.isoformat() if surface.birth_date else None,
        "sex": surface.sex.name.lower() if surface.sex is not None else None,
        "expiry_date": surface.expiry_date.isoformat() if surface.expiry_date else None,
        "integrity": result.status.value,
        "integrity_reasons": list(result.reasons),
        "files": written,
    }

    def text() -> str:
        lines = [f"{k:<12} {data[k]}" for k in ("birth_date", "sex", "expiry_date")]
        lines.append(f"integrity    {result.status.value} ({'; '.join(result.reasons)})")
        lines += [f"wrote        {p}" for p in written.values()]
        return "\n".join(lines)

    emit(data, as_json, text)
    raise SystemExit(int(_integrity_exit(result)))


commands: list[click.Command] = [card_group]

from jpki.cli import documents as _documents  # noqa: E402, F401  (sign-cms, sign-pdf)
