"""`jpki sim …`: create, inspect and reset simulated card profiles."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import click
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from jpki.cli._common import emit, handle_errors
from jpki.sim.faults import FaultConfig
from jpki.sim.layout import collation_b, era_yymmdd, key_id_text
from jpki.sim.profile import CHANGEABLE, CVCA_DIR, KeyId, ProfileStore, TokenKind

_PROFILE = click.Path(path_type=Path, file_okay=False)


@click.group("sim")
def sim_group() -> None:
    """Simulated My Number card profiles (test cards: PINs and My Number are shown)."""


def _cert_summary(der: bytes) -> dict[str, Any]:
    cert = x509.load_der_x509_certificate(der)
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": f"{cert.serial_number:X}",
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "sha256": hashlib.sha256(der).hexdigest(),
    }


def describe(store: ProfileStore) -> dict[str, Any]:
    """Everything about a test card, for `jpki sim show --json`."""
    p = store.profile
    state = store.load_state()
    pins = {k.value: pin for k, pin in state.current_pins(p).items()}
    person = p.person
    out: dict[str, Any] = {
        "profile": str(store.path),
        "seed": p.seed,
        "person_index": p.person_index,
        "token": p.token.value,
        "token_label": p.token_label,
        "has_sign_cert": p.has_sign_cert,
        "atr": p.atr.hex().upper(),
        **pins,
        "tries_left": {k.value: state.tries_left[k] for k in KeyId},
        "max_tries": {k.value: p.max_tries[k] for k in KeyId},
        **{f"{k.value}_tries_left": state.tries_left[k] for k in KeyId if k in CHANGEABLE},
        "my_number": person.my_number,
        "person": {
            "name": person.name,
            "address": person.address,
            "birth_date": person.birth_date.isoformat(),
            "sex": person.sex,
        },
        "visual": {
            "expiry_date": p.expiry_date.isoformat(),
            "security_code": p.security_code,
            "birth_date_key": era_yymmdd(person.birth_date),
            "collation_b": collation_b(person.birth_date, p.expiry_date.year, p.security_code),
            "municipality_code": p.municipality_code,
        },
        "cvca_keys": [
            {
                "ap": ap,
                "key_id": key_id_text(kid),
                "key_id_hex": kid.hex().upper(),
                "public_key_pem": pub.public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                ).decode("ascii"),
            }
            for ap, kid, pub in p.cvca_keys()
        ],
        "cvca_keys_dir": str(store.path / CVCA_DIR),
        "dump": {
            "source": p.dump_source,
            "files": sorted(f"{name}.bin" for name in p.dump_files),
            # A dump holds what a card lets anyone read: never a private key. The card's keys
            # are the profile's own, so signatures by them do not match a dumped certificate.
            "signing_keys": "generated (private keys cannot come from a dump)",
        }
        if p.dump_files
        else None,
        "certificates": {
            "auth": _cert_summary(p.auth_cert),
            "auth_ca": _cert_summary(p.auth_ca_cert),
            "sign": _cert_summary(p.sign_cert),
            "sign_ca": _cert_summary(p.sign_ca_cert),
        },
        "faults": FaultConfig.load(store.faults_path).to_json()
        if store.faults_path.exists()
        else None,
    }
    return out


def _text(info: dict[str, Any]) -> str:
    t = info["tries_left"]
    m = info["max_tries"]
    lines = [
        f"profile      {info['profile']}  (seed {info['seed']!r}, person {info['person_index']})",
        f"token label  {info['token_label']} ({info['token']})   ATR {info['atr']}",
        f"name         {info['person']['name']}",
        f"address      {info['person']['address']}",
        f"birth date   {info['person']['birth_date']}   sex {info['person']['sex']}",
        f"my number    {info['my_number']}",
        f"auth PIN     {info['auth_pin']}   tries {t['auth_pin']}/{m['auth_pin']}",
        f"sign PIN     {info['sign_pin']}   tries {t['sign_pin']}/{m['sign_pin']}",
        f"support PIN  {info['support_pin']}   tries {t['support_pin']}/{m['support_pin']}",
        f"collation B  {info['visual']['collation_b']}   "
        f"(expiry {info['visual']['expiry_date']}, code {info['visual']['security_code']})",
        "collation tries  "
        + ", ".join(f"{k} {v}/{m[k]}" for k, v in t.items() if "collation" in k or "birth" in k),
    ]
    for slot, c in info["certificates"].items():
        lines.append(f"cert {slot:8s} {c['subject']}  (until {c['not_after'][:10]})")
    if not info["has_sign_cert"]:
        lines.append("signing cert none on the card (EF 0008 byte 0 = 00)")
    cvcas = ", ".join(k["key_id"] for k in info["cvca_keys"])
    lines.append(f"CVCA keys    {cvcas}  (--cvca-keys {info['cvca_keys_dir']})")
    if info["dump"]:
        d = info["dump"]
        lines.append(f"dump         {d['source']}: {', '.join(d['files'])}")
        lines.append(f"             signing keys {d['signing_keys']}")
    if info["faults"]:
        lines.append(f"faults       {info['faults']}")
    return "\n".join(lines)


def _init_options(fn: Any) -> Any:
    fn = click.option("--json", "as_json", is_flag=True, help="Print the new profile as JSON.")(fn)
    fn = click.option(
        "--ber-long-form",
        "long_form",
        is_flag=True,
        help="Write text AP lengths below 128 as 81 xx (legal BER) to test parsers.",
    )(fn)
    fn = click.option("--force", is_flag=True, help="Overwrite an existing profile.")(fn)
    fn = click.option(
        "--from-dump", "from_dump", type=click.Path(path_type=Path, file_okay=False, exists=True),
        help="Serve the <ap>-<fid>.bin files of a `jpki card dump` directory (others generated).",
    )(fn)  # fmt: skip
    fn = click.option(
        "--no-sign-cert", "no_sign_cert", is_flag=True,
        help="A card issued without a signing certificate (EF 0008 byte 0 = 00).",
    )(fn)  # fmt: skip
    fn = click.option(
        "--token", type=click.Choice([t.value for t in TokenKind]), default="card",
        show_default=True,
        help="What answers as the JPKI AP: the card, an Android or an iPhone secure element.",
    )(fn)  # fmt: skip
    fn = click.option(
        "--person", type=click.IntRange(min=0), default=0, show_default=True,
        help="Test person index (jpki.testing.pki.sample_person).",
    )(fn)  # fmt: skip
    fn = click.option("--seed", default="jpki-test", show_default=True, help="Test PKI seed.")(fn)
    return click.argument("profile", type=_PROFILE)(fn)


@sim_group.command("init")
@_init_options
@handle_errors
def init_cmd(
    profile: Path,
    seed: str,
    person: int,
    token: str,
    no_sign_cert: bool,
    from_dump: Path | None,
    force: bool,
    long_form: bool,
    as_json: bool,
) -> None:
    """Create a simulated card profile directory PROFILE from the test PKI."""
    from jpki.sim.create import create_profile  # needs the test PKI: import only when used

    store = create_profile(
        profile,
        seed=seed,
        person=person,
        force=force,
        text_long_form=long_form,
        token=token,
        sign_cert=not no_sign_cert,
        from_dump=from_dump,
    )
    emit(describe(store), as_json, lambda: f"created simulated card profile {store.path}")


sim_group.add_command(init_cmd, name="create")  # the name issue 2 uses


@sim_group.command("show")
@click.argument("profile", type=_PROFILE)
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@handle_errors
def show_cmd(profile: Path, as_json: bool) -> None:
    """Show a test card: PINs, tries left, My Number, person data, certificates."""
    info = describe(ProfileStore(profile))
    emit(info, as_json, lambda: _text(info))


@sim_group.command("reset")
@click.argument("profile", type=_PROFILE)
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@handle_errors
def reset_cmd(profile: Path, as_json: bool) -> None:
    """Restore every counter and the PINs the card was issued with (unblocks)."""
    store = ProfileStore(profile)
    state = store.reset_state()
    tries = {k.value: v for k, v in state.tries_left.items()}
    emit({"profile": str(store.path), "tries_left": tries}, as_json, f"reset {store.path}")


# `sim serve` lives beside `readers` (both are vpcd plumbing) but belongs to this group.
from jpki.cli.readers import serve  # noqa: E402

sim_group.add_command(serve)

commands: list[click.Command] = [sim_group]
