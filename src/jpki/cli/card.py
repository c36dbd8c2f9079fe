"""`jpki card …`: talk to a My Number card (simulator, PC/SC reader or vpcd bridge)."""

from __future__ import annotations

import contextlib
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from jpki.apdu import SW, redact_command
from jpki.card import CertSlot, JpkiAp, KeyKind, SignScheme, TextAp, VisualAp
from jpki.card.constants import JpkiFile, TextFile, VisualFile
from jpki.card.presence import new_challenge, text_ap_presence, visual_ap_presence
from jpki.card.protocol import CardProtocol
from jpki.card.text_ap import CardInfo, IntegrityResult, IntegrityStatus
from jpki.card.visual_ap import age_on
from jpki.cert import name_to_text
from jpki.cli import documents
from jpki.cli._card_session import open_card as _card
from jpki.cli._card_session import pin_prompt as _pin_prompt
from jpki.cli._card_session import write_file as _write
from jpki.cli._common import (
    Exit,
    card_options,
    emit,
    handle_errors,
    pin_options,
    read_input_file,
    read_secret,
)
from jpki.digestinfo import HashName, build_digest_info, digest_info_for, hash_name
from jpki.errors import ApduError, CardError, JpkiError, UsageError
from jpki.secret import Secret
from jpki.trust.cvca import CvcaKeyring, load_cvca_keys

_KEYS = click.Choice([k.value for k in KeyKind])
_SLOTS = click.Choice([s.value for s in CertSlot])


def _secret(env: str | None, stdin: bool, prompt: str) -> Secret:
    return read_secret(env=env, stdin=stdin, prompt=prompt)


def _load_cert(der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        raise CardError("certificate on the card is not valid DER X.509") from None


def _subject(der: bytes) -> str:
    return name_to_text(_load_cert(der).subject)


def _key(slot: CertSlot) -> str:
    """JSON keys are snake_case in every command (``auth_ca``; the CLI argument is auth-ca)."""
    return slot.value.replace("-", "_")


def _mkdir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {path}: {exc.strerror or exc}") from None


def _cert_bytes(der: bytes, pem: bool) -> bytes:
    return _load_cert(der).public_bytes(serialization.Encoding.PEM) if pem else der


def cvca_option(fn: Any) -> Any:
    """``--cvca-keys DIR``: trust these CVCA keys too (index.json + PEM, like the built-in set)."""
    return click.option(
        "--cvca-keys",
        "cvca_keys",
        metavar="DIR",
        type=click.Path(path_type=Path),
        help="Also trust the CVCA public keys in DIR (index.json with key_id_hex and file, "
        "plus PEM files), e.g. a simulator profile's test CVCA.",
    )(fn)


def keyring(directory: Path | None) -> CvcaKeyring:
    """The built-in J-LIS CVCA keys plus those in ``directory``."""
    return CvcaKeyring(load_cvca_keys(directory) if directory is not None else ())


def _early_secret(env: str | None, stdin: bool, prompt: str) -> Secret | None:
    """A secret given by --*-env/--*-stdin is read at once; a prompt waits (None)."""
    if env or stdin:
        return _secret(env, stdin, prompt)
    return None


def _signing_available(jpki: JpkiAp) -> None:
    """EF 0008 before the signing password: on a card without a signing certificate (holders
    under 15, or declined) the password cannot help, so it is not asked for."""
    if jpki.cert_availability().signing is False:
        raise CardError(
            "this card has no signing certificate (EF 0008): the signing password cannot help"
        )


def _verify_auth_if_needed(
    jpki: JpkiAp, secret: Secret | None, env: str | None, stdin: bool, force: bool
) -> bool:
    """On an Android phone token the auth certificate needs the auth PIN; verify it if given
    (or prompt). Returns whether the auth certificate is readable now."""
    if not jpki.auth_cert_needs_pin():
        return True
    if secret is None:
        if not sys.stdin.isatty() and not (env or stdin):
            return False
        secret = _secret(env, stdin, "Auth PIN (4 digits; this token's auth certificate needs it)")
    jpki.verify_pin(KeyKind.AUTH, secret, force=force)
    return True


def _integrity_json(result: IntegrityResult) -> dict[str, Any]:
    return result.as_dict()


@click.group("card")
def card_group() -> None:
    """Read certificates, check PINs and sign with a My Number card."""


# --- status -------------------------------------------------------------------------------


@card_group.command("status")
@card_options
@pin_options(what="the auth PIN (only phone tokens: their auth certificate needs it)")
@click.option("--force", is_flag=True, help="Try the PIN even with one try left.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def status_cmd(
    pin_env: str | None, pin_stdin: bool, force: bool, as_json: bool, **kwargs: Any
) -> None:
    """Token info, certificate availability, tries left for each PIN (spends none), subjects."""
    early = _early_secret(pin_env, pin_stdin, "Auth PIN (4 digits)")
    with _card(kwargs) as proto:
        jpki = JpkiAp(proto)
        info = jpki.token_info()
        avail = jpki.cert_availability()
        auth = jpki.pin_status(KeyKind.AUTH)
        sign = jpki.pin_status(KeyKind.SIGNING)
        subjects: dict[str, str | None] = {}
        readable = _verify_auth_if_needed(jpki, early, pin_env, pin_stdin, force)
        for slot in (CertSlot.AUTH, CertSlot.AUTH_CA, CertSlot.SIGNING_CA):
            if slot is CertSlot.AUTH and not readable:
                subjects[_key(slot)] = None  # needs the auth PIN on this token
                continue
            subjects[_key(slot)] = _subject(jpki.read_certificate(slot))
        subjects[_key(CertSlot.SIGNING)] = None  # needs the signing password
        support: int | None = None
        with contextlib.suppress(ApduError):
            support = TextAp(proto).pin_status().tries_left
    data = {
        "token_label": info.label,
        "token_kind": info.kind.value,
        "token_info": info.as_dict(),
        "certificates_available": {"sign": avail.signing, "auth": avail.auth},
        "auth_pin_tries_left": auth.tries_left,
        "sign_pin_tries_left": sign.tries_left,
        "support_pin_tries_left": support,
        "certificates": subjects,
    }

    def text() -> str:
        def tries(n: int | None, m: int) -> str:
            return "unknown" if n is None else ("BLOCKED" if n == 0 else f"{n}/{m}")

        def has(v: bool | None) -> str:
            return "unknown" if v is None else ("yes" if v else "no")

        lines = [
            f"token           {info.label} ({info.kind.value})",
            f"certificates    sign {has(avail.signing)}, auth {has(avail.auth)} (EF 0008)",
            f"auth PIN        {tries(auth.tries_left, 3)} tries left",
            f"signing pass.   {tries(sign.tries_left, 5)} tries left",
            f"input-support   {tries(support, 3)} tries left",
        ]
        for name, subj in subjects.items():
            need = "(needs the signing password)" if name == "sign" else "(needs the auth PIN)"
            lines.append(f"cert {name:<10} {subj or need}")
        return "\n".join(lines)

    emit(data, as_json, text)


# --- certificates -------------------------------------------------------------------------


def _verify_signing_for_cert(
    jpki: JpkiAp, early: Secret | None, env: str | None, stdin: bool, force: bool
) -> None:
    _signing_available(jpki)
    secret = early or _secret(env, stdin, _pin_prompt(KeyKind.SIGNING))
    jpki.verify_pin(KeyKind.SIGNING, secret, force=force)


@card_group.command("read-cert")
@click.argument("slot", type=_SLOTS)
@card_options
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Output file.")
@click.option("--pem", is_flag=True, help="Write PEM instead of DER.")
@pin_options(what="the signing password for `sign`; the auth PIN for `auth` on a phone token")
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
    early = None
    if cert_slot in (CertSlot.SIGNING, CertSlot.AUTH):
        prompt = _pin_prompt(KeyKind.SIGNING if cert_slot is CertSlot.SIGNING else KeyKind.AUTH)
        early = _early_secret(pin_env, pin_stdin, prompt)
    with _card(kwargs) as proto:
        jpki = JpkiAp(proto)
        if cert_slot is CertSlot.SIGNING:
            _verify_signing_for_cert(jpki, early, pin_env, pin_stdin, force)
        elif cert_slot is CertSlot.AUTH:
            _verify_auth_if_needed(jpki, early, pin_env, pin_stdin, force)
        der = jpki.read_certificate(cert_slot)
    _write(out, _cert_bytes(der, pem))
    click.echo(f"{slot}: {_subject(der)} -> {out}")


@card_group.command("certs")
@card_options
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Directory.")
@click.option("--pem", is_flag=True, help="Write PEM instead of DER.")
@click.option("--with-sign", is_flag=True, help="Also the signing certificate (asks password).")
@pin_options(what="the signing password (with --with-sign)")
@pin_options("auth-pin", what="the auth PIN (only phone tokens: their auth certificate needs it)")
@click.option("--force", is_flag=True, help="Try the password even with one try left.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def certs_cmd(
    out: Path,
    pem: bool,
    with_sign: bool,
    pin_env: str | None,
    pin_stdin: bool,
    auth_pin_env: str | None,
    auth_pin_stdin: bool,
    force: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Write the certificates to DIR as auth.der, auth-ca.der, sign-ca.der (and sign.der)."""
    if pin_stdin and auth_pin_stdin:
        raise UsageError("only one of --pin-stdin and --auth-pin-stdin can use stdin")
    slots = [CertSlot.AUTH, CertSlot.AUTH_CA, CertSlot.SIGNING_CA]
    written: dict[str, dict[str, str]] = {}
    _mkdir(out)
    early_sign = _early_secret(pin_env, pin_stdin, _pin_prompt(KeyKind.SIGNING))
    early_auth = _early_secret(auth_pin_env, auth_pin_stdin, _pin_prompt(KeyKind.AUTH))
    with _card(kwargs) as proto:
        jpki = JpkiAp(proto)
        _verify_auth_if_needed(jpki, early_auth, auth_pin_env, auth_pin_stdin, force)
        if with_sign:
            _verify_signing_for_cert(jpki, early_sign, pin_env, pin_stdin, force)
            slots.append(CertSlot.SIGNING)
        for slot in slots:
            der = jpki.read_certificate(slot)
            path = out / f"{slot.value}.{'pem' if pem else 'der'}"
            _write(path, _cert_bytes(der, pem))
            written[_key(slot)] = {"path": str(path), "subject": _subject(der)}
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

#: `card sign --scheme` names for COMPUTE DIGITAL SIGNATURE P1 00-05 (card-protocol.md §4).
SCHEMES: dict[str, SignScheme] = {
    "pkcs1": SignScheme.DIGEST_INFO,
    "pkcs1-sha256-bare": SignScheme.SHA256_BARE,
    "pkcs1-sha256-digest": SignScheme.SHA256_HASH,
    "pkcs1-sha256": SignScheme.SHA256,
    "pss-sha256-digest": SignScheme.PSS_HASH,
    "pss-sha256": SignScheme.PSS,
}
_MESSAGE_SCHEMES = (SignScheme.SHA256_BARE, SignScheme.SHA256, SignScheme.PSS)


def _sign_input(
    scheme: SignScheme, data_file: str | None, digest_hex: str | None, hash_opt: str
) -> bytes:
    """What is sent for ``scheme``: a DigestInfo (00), the message (01/03/05) or a hash."""
    if (data_file is None) == (digest_hex is None):
        raise UsageError("give exactly one of --in/--data FILE or --digest HEX")
    digest: bytes | None = None
    if digest_hex is not None:
        try:
            digest = bytes.fromhex(digest_hex)
        except ValueError:
            raise UsageError("--digest is not hex") from None
    if scheme is SignScheme.DIGEST_INFO:
        if digest is not None:
            return build_digest_info(hash_opt, digest)
        assert data_file is not None
        return digest_info_for(read_input_file(data_file), hash_name(hash_opt))
    if hash_opt != HashName.SHA256.value:
        raise UsageError(f"scheme P1={scheme.value:02X} uses SHA-256 only")
    if scheme in _MESSAGE_SCHEMES:
        if data_file is None:
            raise UsageError(f"scheme P1={scheme.value:02X} hashes on the card: give --in FILE")
        return read_input_file(data_file)
    if digest is None:
        assert data_file is not None
        digest = digest_info_for(read_input_file(data_file), HashName.SHA256)[-32:]
    return digest


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
@click.option(
    "--scheme",
    type=click.Choice(list(SCHEMES)),
    default="pkcs1",
    show_default=True,
    help="P1 00 pkcs1 (DigestInfo sent), 01 pkcs1-sha256-bare, 02 pkcs1-sha256-digest, "
    "03 pkcs1-sha256, 04 pss-sha256-digest, 05 pss-sha256 (01/03/05 hash on the card).",
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
    scheme: str,
    out: Path | None,
    pin_env: str | None,
    pin_stdin: bool,
    force: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Sign a file (or a digest) with the auth or signing key (PKCS#1 v1.5 or RSASSA-PSS)."""
    key = KeyKind(kind)
    p1 = SCHEMES[scheme]
    if data_file == "-" and pin_stdin:
        raise UsageError("stdin cannot carry both the data (--in -) and the PIN (--pin-stdin)")
    payload = _sign_input(p1, data_file, digest_hex, hash_opt)
    p1.check_input(payload)  # before any APDU
    early = _early_secret(pin_env, pin_stdin, _pin_prompt(key))
    with _card(kwargs) as proto:
        jpki = JpkiAp(proto)
        if key is KeyKind.SIGNING:
            _signing_available(jpki)
        secret = early or _secret(pin_env, pin_stdin, _pin_prompt(key))
        jpki.verify_pin(key, secret, force=force)
        signature = jpki.sign(key, payload, p1)
    if out is not None:
        _write(out, signature)
    data = {
        "key": key.value,
        "hash": hash_opt,
        "scheme": scheme,
        "p1": f"{p1.value:02X}",
        "digest_info": payload.hex() if p1 is SignScheme.DIGEST_INFO else None,
        "input": payload.hex(),
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


def _integrity_text(result: IntegrityResult) -> str:
    where = f", CVCA {result.cvca} ({result.hierarchy})" if result.cvca else ""
    return f"{result.status.value}{where} ({'; '.join(result.reasons)})"


def card_info_json(info: CardInfo, *, show_my_number: bool) -> dict[str, Any]:
    """The `jpki card info --json` object (docs/card-client.md)."""
    return {
        "name": info.name,
        "address": info.address,
        "birth_date": info.birth_date.isoformat(),
        "sex": info.sex.name.lower(),
        "sex_code": int(info.sex),
        "my_number": info.my_number.reveal() if show_my_number else str(info.my_number),
        "integrity": _integrity_json(info.integrity),
    }


@card_group.command("info")
@card_options
@pin_options(what="the input-support PIN")
@cvca_option
@click.option("--show-my-number", is_flag=True, help="Print the My Number (redacted otherwise).")
@click.option("--force", is_flag=True, help="Try the PIN even when only one try is left.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def info_cmd(
    pin_env: str | None,
    pin_stdin: bool,
    cvca_keys: Path | None,
    show_my_number: bool,
    force: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Basic 4 information and My Number from the input-support AP, with its integrity check.

    Exit 0 if CVCA → EF 0004 → EF 0003 → the files all verify, 1 if a signature or digest
    fails, 3 if it could not be decided (unknown CVCA key, unreadable layout).
    """
    ring = keyring(cvca_keys)
    # The PIN is read before the card is opened: a missing variable must not wait for a card.
    secret = _secret(pin_env, pin_stdin, "Input-support PIN (4 digits)")
    with _card(kwargs) as proto:
        text_ap = TextAp(proto, keyring=ring)
        text_ap.verify_pin(secret, force=force)
        info = text_ap.read_card_info()
        basic: dict[str, Any] | None = None
        with contextlib.suppress(JpkiError):
            ap_data = text_ap.read_ap_basic_data()
            basic = {"identification": ap_data.identification.hex(), "key_id": ap_data.key_id}
    data = card_info_json(info, show_my_number=show_my_number)
    if basic is not None:
        from jpki.trust.cvca import key_id_text

        basic["key_id"] = key_id_text(basic["key_id"])
    data["ap_basic_data"] = basic

    def text() -> str:
        return "\n".join(
            [
                f"name        {info.name}",
                f"address     {info.address}",
                f"birth date  {info.birth_date.isoformat()}",
                f"sex         {info.sex.name.lower()}",
                f"My Number   {info.my_number.format(redact=not show_my_number)}",
                f"integrity   {_integrity_text(info.integrity)}",
            ]
        )

    emit(data, as_json, text)
    raise SystemExit(int(_integrity_exit(info.integrity)))


@card_group.command("surface")
@card_options
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Directory.")
@pin_options(what="the input-support PIN (unlocks with the My Number as collation A)")
@click.option(
    "--collation-b-env",
    metavar="VAR",
    help="Unlock with collation B (14 digits: era birth date YYMMDD + expiry year + code).",
)
@cvca_option
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
    cvca_keys: Path | None,
    show_my_number: bool,
    force: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Card-surface AP: write the face photo and name/address images, check the signature.

    Exit 0 if CVCA → EF 0004 → DF28 verifies, 1 if it fails, 3 if it could not be decided.
    """
    if show_my_number and collation_b_env:
        raise UsageError("--show-my-number needs the input-support PIN (collation A)")
    if collation_b_env and (pin_env or pin_stdin):
        raise UsageError("give either the input-support PIN or --collation-b-env, not both")
    ring = keyring(cvca_keys)
    _mkdir(out)
    # Secrets are read before the card is opened: a missing variable must not wait for a card.
    if collation_b_env:
        secret = read_secret(env=collation_b_env, stdin=False, prompt="Collation B")
    else:
        secret = _secret(pin_env, pin_stdin, "Input-support PIN (4 digits)")
    with _card(kwargs) as proto:
        my_number_png: bytes | None = None
        if collation_b_env:
            visual = VisualAp(proto, keyring=ring)
            visual.unlock_collation_b(secret, force=force)
        else:
            text_ap = TextAp(proto)
            text_ap.verify_pin(secret, force=force)
            my_number = text_ap.read_my_number()
            visual = VisualAp(proto, keyring=ring)  # clears the text AP PIN, as on a real card
            visual.unlock_collation_a(my_number, force=force)
            if show_my_number:  # specific personal information: only when asked, like `info`
                with contextlib.suppress(JpkiError):
                    my_number_png = visual.read_my_number_image().png
        surface = visual.read_surface()
        result = visual.check(surface)
        municipality: str | None = None
        with contextlib.suppress(JpkiError):
            municipality = visual.read_ap_basic_data().municipality_code
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
        "municipality_code": municipality,
        "integrity": _integrity_json(result),
        "files": written,
    }

    def text() -> str:
        keys = ("birth_date", "sex", "expiry_date", "municipality_code")
        lines = [f"{k:<12} {data[k]}" for k in keys]
        lines.append(f"integrity    {_integrity_text(result)}")
        lines += [f"wrote        {p}" for p in written.values()]
        return "\n".join(lines)

    emit(data, as_json, text)
    raise SystemExit(int(_integrity_exit(result)))


def _birth_date(secret: Secret) -> date:
    """YYYY-MM-DD or YYYYMMDD; the value is never quoted in an error."""
    text = secret.reveal().decode("ascii", "replace").strip()
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise UsageError("the birth date must be YYYY-MM-DD")


@card_group.command("age")
@card_options
@click.option("--over", "over", type=click.IntRange(0, 150), required=True, help="Age N.")
@click.option(
    "--at",
    "at",
    type=click.DateTime(["%Y-%m-%d"]),
    help="Check the age on this date (default: today).",
)
@pin_options("birth-date", what="the holder's birth date (YYYY-MM-DD), the visual AP key")
@cvca_option
@click.option("--force", is_flag=True, help="Try even when only one try is left.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def age_cmd(
    over: int,
    at: datetime | None,
    birth_date_env: str | None,
    birth_date_stdin: bool,
    cvca_keys: Path | None,
    force: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Least-disclosure age check: is the holder at least N years old? Nothing else is shown.

    The birth-date key opens only the visual AP age record (no name, address or photo); its
    signature is checked along CVCA → EF 0004. Exit 0 when the record verifies, 1 when it
    fails, 3 when it could not be decided; the answer itself is in the output.
    """
    ring = keyring(cvca_keys)
    on = at.date() if at is not None else date.today()
    birth = _birth_date(_secret(birth_date_env, birth_date_stdin, "Holder's birth date"))
    with _card(kwargs) as proto:
        visual = VisualAp(proto, keyring=ring)
        visual.unlock_birth_date(birth, force=force)
        record = visual.read_age_record()
        result = visual.check(record)
    is_over = age_on(record.birth_date, on) >= over
    data = {
        "over": over,
        "at": on.isoformat(),
        "is_over": is_over,
        "integrity": {"status": result.status.value, "cvca": result.cvca},
    }
    word = "at least" if is_over else "NOT at least"
    emit(
        data,
        as_json,
        f"holder is {word} {over} years old on {on.isoformat()} "
        f"(age record signature: {result.status.value})",
    )
    raise SystemExit(int(_integrity_exit(result)))


@card_group.command("presence")
@card_options
@click.option(
    "--ap",
    type=click.Choice(["visual", "text"]),
    default="visual",
    show_default=True,
    help="visual: age record (birth-date key); text: EF 0007 (input-support PIN).",
)
@pin_options(what="the input-support PIN (--ap text)")
@pin_options("birth-date", what="the holder's birth date YYYY-MM-DD (--ap visual)")
@click.option("--challenge", "challenge_hex", metavar="HEX", help="Challenge (default: random).")
@cvca_option
@click.option("--force", is_flag=True, help="Try even when only one try is left.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def presence_cmd(
    ap: str,
    pin_env: str | None,
    pin_stdin: bool,
    birth_date_env: str | None,
    birth_date_stdin: bool,
    challenge_hex: str | None,
    cvca_keys: Path | None,
    force: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Is the card itself present? A fresh challenge signed by the card-info AP's own key,
    checked against the card key in a record that chains to the CVCA.

    Exit 0 when it does, 1 when a signature fails, 3 when it could not be decided.
    """
    ring = keyring(cvca_keys)
    try:
        challenge = bytes.fromhex(challenge_hex) if challenge_hex else new_challenge()
    except ValueError:
        raise UsageError("--challenge is not hex") from None
    if not 1 <= len(challenge) <= 1024:
        raise UsageError("--challenge must be 1-1024 bytes")
    if ap == "text":
        secret = _secret(pin_env, pin_stdin, "Input-support PIN (4 digits)")
    else:
        secret = _secret(birth_date_env, birth_date_stdin, "Holder's birth date")
    with _card(kwargs) as proto:
        if ap == "text":
            text_ap = TextAp(proto, keyring=ring)
            text_ap.verify_pin(secret, force=force)
            result = text_ap_presence(text_ap, challenge)
        else:
            visual = VisualAp(proto, keyring=ring)
            visual.unlock_birth_date(_birth_date(secret), force=force)
            result = visual_ap_presence(visual, challenge)
    data = {"challenge": challenge.hex(), **result.as_dict()}
    emit(
        data,
        as_json,
        f"card presence ({ap} AP): {result.status.value} ({'; '.join(result.reasons)})",
    )
    raise SystemExit(int(_integrity_exit(IntegrityResult(result.status, result.reasons))))


# --- dumps ------------------------------------------------------------------------------------

#: The EFs a dump may read, per AP: never a key EF (0011-0015, 0017/0018/001A/001B).
DUMP_FILES: dict[str, tuple[int, ...]] = {
    "jpki": (
        JpkiFile.SIGNING_CERT,
        JpkiFile.SIGNING_CA_CERT,
        JpkiFile.TOKEN_INFO,
        JpkiFile.CERT_AVAILABILITY,
        JpkiFile.AUTH_CERT,
        JpkiFile.AUTH_CA_CERT,
    ),
    "text": tuple(
        f.value
        for f in (
            TextFile.MY_NUMBER,
            TextFile.BASIC_INFO,
            TextFile.SIGNATURE,
            TextFile.ISSUER_CERT,
            TextFile.AP_BASIC_DATA,
            TextFile.SESSION_KEY,
            TextFile.SIGNED_KEY,
            TextFile.UNKNOWN_0008,
        )
    ),
    "visual": tuple(
        f.value
        for f in (
            VisualFile.AGE_RECORD,
            VisualFile.SURFACE,
            VisualFile.AP_BASIC_DATA,
            VisualFile.ISSUER_CERT,
            VisualFile.MY_NUMBER_IMAGE,
            VisualFile.UNKNOWN_0006,
        )
    ),
}


def _dump_read(proto: CardProtocol, fid: int) -> bytes | str:
    """The physical content of ``fid``, or why it could not be read."""
    try:
        proto.select_ef(fid)
        return proto.read_file(0x7FFF)
    except ApduError as exc:
        if exc.sw == SW.SECURITY_STATUS_NOT_SATISFIED:
            return "needs a PIN or collation value that was not given"
        if exc.sw == SW.FILE_NOT_FOUND:
            return "not on this card"
        return f"card answered {exc.sw:04X}"


@card_group.command("dump")
@card_options
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Directory.")
@pin_options(what="the input-support PIN (text AP; its My Number then opens the visual AP)")
@pin_options("auth-pin", what="the auth PIN (phone tokens: the auth certificate)")
@pin_options("sign-pin", what="the signing password (the signing certificate EF 0001)")
@click.option("--collation-b-env", metavar="VAR", help="Collation B (text and visual AP).")
@pin_options("birth-date", what="the birth date YYYY-MM-DD (visual AP age record)")
@click.option("--force", is_flag=True, help="Try even when only one try is left.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def dump_cmd(
    out: Path,
    pin_env: str | None,
    pin_stdin: bool,
    auth_pin_env: str | None,
    auth_pin_stdin: bool,
    sign_pin_env: str | None,
    sign_pin_stdin: bool,
    collation_b_env: str | None,
    birth_date_env: str | None,
    birth_date_stdin: bool,
    force: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Write every EF the given credentials may read as DIR/<ap>-<fid>.bin, raw as read
    (physical content, filler included): jpki, text and visual AP.

    Key EFs, PINs and collation values are never written. Files that need a credential not
    given are listed as skipped. With no credential only the free files are dumped.
    """
    if sum((pin_stdin, auth_pin_stdin, sign_pin_stdin, birth_date_stdin)) > 1:
        raise UsageError("only one --*-stdin option can read stdin")
    secrets: dict[str, Secret | None] = {
        "pin": _early_secret(pin_env, pin_stdin, ""),
        "auth": _early_secret(auth_pin_env, auth_pin_stdin, ""),
        "sign": _early_secret(sign_pin_env, sign_pin_stdin, ""),
        "b": read_secret(env=collation_b_env, stdin=False, prompt="") if collation_b_env else None,
        "birth": _early_secret(birth_date_env, birth_date_stdin, ""),
    }
    birth = _birth_date(secrets["birth"]) if secrets["birth"] is not None else None
    _mkdir(out)
    written: dict[str, str] = {}
    skipped: dict[str, str] = {}

    def take(ap: str, proto: CardProtocol, fids: tuple[int, ...]) -> dict[int, bytes]:
        got: dict[int, bytes] = {}
        for fid in fids:
            name = f"{ap}-{fid:04x}.bin"
            data = _dump_read(proto, fid)
            if isinstance(data, str):
                skipped[name] = data
                continue
            _write(out / name, data)
            written[name] = str(out / name)
            got[fid] = data
        return got

    with _card(kwargs) as proto:
        jpki = JpkiAp(proto)
        if secrets["auth"] is not None:
            jpki.verify_pin(KeyKind.AUTH, secrets["auth"], force=force)
        # EF 0008 first: without a signing certificate the password is not sent at all.
        if secrets["sign"] is not None and jpki.cert_availability().signing is not False:
            jpki.verify_pin(KeyKind.SIGNING, secrets["sign"], force=force)
        take("jpki", proto, DUMP_FILES["jpki"])

        text_ap = TextAp(proto)
        my_number = None
        if secrets["pin"] is not None:
            text_ap.verify_pin(secrets["pin"], force=force)
        elif secrets["b"] is not None:
            text_ap.unlock_collation_b(secrets["b"], force=force)
        text = take("text", proto, DUMP_FILES["text"])
        if secrets["pin"] is not None and TextFile.MY_NUMBER in text:
            from jpki.card.text_ap import parse_my_number_file

            my_number = parse_my_number_file(text[TextFile.MY_NUMBER])

        visual = VisualAp(proto)
        if birth is not None:
            visual.unlock_birth_date(birth, force=force)
        if my_number is not None:
            visual.unlock_collation_a(my_number, force=force)
        elif secrets["b"] is not None:
            visual.unlock_collation_b(secrets["b"], force=force)
        take("visual", proto, DUMP_FILES["visual"])

    emit(
        {"out": str(out), "written": written, "skipped": skipped},
        as_json,
        lambda: "\n".join(
            [f"wrote    {p}" for p in written.values()]
            + [f"skipped  {n}: {why}" for n, why in skipped.items()]
        ),
    )


# --- raw APDUs --------------------------------------------------------------------------------


def _parse_apdu(text: str) -> bytes:
    cleaned = "".join(text.split()).replace(":", "")
    try:
        raw = bytes.fromhex(cleaned)
    except ValueError:
        raise UsageError("an APDU is not hex") from None
    if len(raw) < 4:
        raise UsageError("an APDU needs at least CLA INS P1 P2 (4 bytes)")
    return raw


@card_group.command("apdu")
@click.argument("apdus", nargs=-1, metavar="HEX...")
@card_options
@click.option(
    "--stdin",
    "from_stdin",
    is_flag=True,
    help="Read the APDUs from stdin, one a line (keeps VERIFY data out of the argument list).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def apdu_cmd(apdus: tuple[str, ...], from_stdin: bool, as_json: bool, **kwargs: Any) -> None:
    """Send raw APDUs in order in one session; print each answer (data and SW), like
    `opensc-tool -s`. Nothing is added: no GET RESPONSE, no re-send. VERIFY/CHANGE data is
    redacted in every log and in the output's echo of the command."""
    lines = list(apdus)
    if from_stdin:
        lines += [line for line in sys.stdin.read().splitlines() if line.strip()]
    if not lines:
        raise UsageError("give at least one APDU (HEX arguments or --stdin)")
    commands = [_parse_apdu(line) for line in lines]
    results: list[dict[str, str]] = []
    with _card(kwargs) as proto:
        for raw in commands:
            answer = proto.connection.transmit(raw)
            if len(answer) < 2:
                raise CardError(f"card answer of {len(answer)} bytes has no status word")
            results.append(
                {
                    "command": redact_command(raw),
                    "data": answer[:-2].hex().upper(),
                    "sw": answer[-2:].hex().upper(),
                }
            )
    emit(
        results,
        as_json,
        lambda: "\n".join(f"{r['data']} {r['sw']}".strip() for r in results),
    )


# Document signing with the card (its own module: pyHanko is imported only when it runs).
for _command in documents.commands:
    card_group.add_command(_command)

commands: list[click.Command] = [card_group]
