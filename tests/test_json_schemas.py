"""Every ``--json`` output validates against its committed schema in docs/schemas/.

Each command that has a ``--json`` option must have ``docs/schemas/<command words>.json``
and a case here; the error object has ``error.json``. The outputs also follow the JSON
conventions of docs/cli.md (snake_case keys).

``python tests/test_json_schemas.py --draft`` prints a draft schema inferred from the
outputs, a starting point when a command is added (the committed schemas are edited by hand).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from jpki.cli import main
from jpki.testing.crl import synthetic_crl
from jpki.testing.pki import TestPki

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "docs" / "schemas"
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
DOC = b"order #42\n"


def _commands() -> Iterator[tuple[str, click.Command]]:
    ctx = click.Context(main)

    def walk(cmd: click.Command, path: list[str]) -> Iterator[tuple[str, click.Command]]:
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                if sub is not None and not (sub.name != name and isinstance(cmd, click.Group)):
                    yield from walk(sub, [*path, name])
        elif any(p.name == "as_json" for p in cmd.params):
            yield " ".join(path), cmd

    yield from walk(main, [])


def _schema_name(command: str) -> str:
    return command.replace(" ", "-") + ".json"


class Env:
    """Inputs for every command: a simulator card, test PKI files, a CRL, a store."""

    def __init__(self, d: Path) -> None:
        self.d = d
        self.runner = CliRunner()
        pki = TestPki(now=NOW)
        leaf = pki.issue_signing()
        self.profile = d / "card"
        self._ok(["sim", "init", str(self.profile)])
        files = {
            "ca.pem": pki.sign_ca.pem,
            "leaf.pem": leaf.pem,
            "doc.txt": DOC,
            "doc.sig": leaf.key.sign(DOC, padding.PKCS1v15(), hashes.SHA256()),
            "doc.p7s": pkcs7.PKCS7SignatureBuilder()
            .set_data(DOC)
            .add_signer(leaf.cert, leaf.key, hashes.SHA256())
            .sign(Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]),
        }
        ca = pki.sign_ca
        files["sign.crl"] = synthetic_crl(
            3,
            ca.key,
            ca.cert.subject,
            this_update=NOW - timedelta(hours=1),
            next_update=NOW + timedelta(days=1),
            extensions=[x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key())],
        ).der
        from pdf_helpers import minimal_pdf

        files["unsigned.pdf"] = minimal_pdf()
        for name, data in files.items():
            (d / name).write_bytes(data)
        (d / "batch.jsonl").write_text(
            json.dumps({"cert": "leaf.pem", "sig": "doc.sig", "data": "doc.txt"}) + "\n",
            encoding="utf-8",
        )
        (d / "certs").mkdir()
        (d / "certs" / "leaf.pem").write_bytes(leaf.pem)
        self.db = d / "rev.sqlite"
        (d / "crls").mkdir()
        (d / "crls" / "sign.crl").write_bytes(files["sign.crl"])
        self.cleanups: list[Callable[[], object]] = []

    def _ok(self, args: list[str], **kw: Any) -> str:
        res = self.runner.invoke(main, args, **kw)
        assert res.exit_code == 0, (args, res.output)
        return res.stdout

    def p(self, name: str) -> str:
        return str(self.d / name)

    def run(self, args: list[str], codes: tuple[int, ...] = (0,), **kw: Any) -> Any:
        res = self.runner.invoke(main, [*args, "--json"], **kw)
        assert res.exit_code in codes, (args, res.exit_code, res.output)
        return json.loads(res.stdout)


def _cases(e: Env) -> dict[str, Callable[[], Any]]:
    sim = ["--sim", str(e.profile)]
    at = ["--at", NOW.isoformat()]
    pin = {"env": {"PIN": "1234", "SPIN": "JPKITEST01", "SUPPORT": "5678", "BIRTH": "1985-04-01"}}
    cvca = ["--cvca-keys", str(e.profile / "cvca")]

    def readers() -> Any:
        from jpki.transport import pcsc

        fake = [pcsc.ReaderInfo("Virtual PCD 00 00", True, bytes.fromhex("3BE000FF8131FE4514"))]
        original = pcsc.list_readers
        pcsc.list_readers = lambda: fake  # type: ignore[assignment]
        try:
            return e.run(["readers"])
        finally:
            pcsc.list_readers = original

    svc = ["--db", e.p("keys.sqlite")]

    def store_load() -> Any:
        return e.run(["revocation", "store", "load", str(e.db), e.p("sign.crl"), "--issuer",
                      e.p("ca.pem")])  # fmt: skip

    def monitor() -> Any:
        store_load()
        return e.run(["revocation", "monitor", str(e.db), e.p("certs"), "--issuer",
                      e.p("ca.pem"), *at])  # fmt: skip

    return {
        "smoke": lambda: e.run(["smoke"], codes=(0, 1)),  # its report has one shape either way
        "conformance": lambda: e.run(["conformance", *sim]),
        "readers": readers,
        "card status": lambda: e.run(["card", "status", *sim]),
        "card certs": lambda: e.run(["card", "certs", *sim, "--out", e.p("out")]),
        "card verify-pin": lambda: e.run(
            ["card", "verify-pin", "auth", *sim, "--pin-env", "PIN"], **pin
        ),
        "card sign": lambda: e.run(
            ["card", "sign", "auth", *sim, "--in", e.p("doc.txt"), "--pin-env", "PIN"], **pin
        ),
        # The integrity verdict may be any of valid/invalid/unreadable: the shape is the same.
        "card sign-cms": lambda: e.run(
            [
                "card",
                "sign-cms",
                "sign",
                *sim,
                "--in",
                e.p("doc.txt"),
                "--out",
                e.p("o.p7s"),
                "--pin-env",
                "SPIN",
            ],
            **pin,
        ),
        "card sign-pdf": lambda: e.run(
            [
                "card",
                "sign-pdf",
                *sim,
                "--in",
                e.p("unsigned.pdf"),
                "--out",
                e.p("o.pdf"),
                "--pin-env",
                "SPIN",
            ],
            **pin,
        ),
        "card info": lambda: e.run(
            ["card", "info", *sim, "--pin-env", "SUPPORT"], codes=(0, 1, 3), **pin
        ),
        "card surface": lambda: e.run(
            ["card", "surface", *sim, "--out", e.p("surface"), "--pin-env", "SUPPORT"],
            codes=(0, 1, 3),
            **pin,
        ),
        "card age": lambda: e.run(
            ["card", "age", *sim, "--over", "20", "--birth-date-env", "BIRTH", *cvca], **pin
        ),
        "card presence": lambda: e.run(
            ["card", "presence", *sim, "--birth-date-env", "BIRTH", *cvca], **pin
        ),
        "card dump": lambda: e.run(
            ["card", "dump", *sim, "--out", e.p("dump"), "--pin-env", "SUPPORT"], **pin
        ),
        "card apdu": lambda: e.run(["card", "apdu", *sim, "00A4040C0AD392F000260100000001"]),
        "sim init": lambda: e.run(["sim", "init", e.p("card2")]),
        "sim show": lambda: e.run(["sim", "show", str(e.profile)]),
        "sim reset": lambda: e.run(["sim", "reset", str(e.profile)]),
        "cert show": lambda: e.run(["cert", "show", e.p("leaf.pem")]),
        "verify signature": lambda: e.run(
            [
                "verify",
                "signature",
                "--cert",
                e.p("leaf.pem"),
                "--data",
                e.p("doc.txt"),
                "--sig",
                e.p("doc.sig"),
                "--trust",
                e.p("ca.pem"),
                *at,
            ]
        ),
        "verify cms": lambda: e.run(
            [
                "verify",
                "cms",
                e.p("doc.p7s"),
                "--content",
                e.p("doc.txt"),
                "--trust",
                e.p("ca.pem"),
                *at,
            ]
        ),
        "verify chain": lambda: e.run(
            ["verify", "chain", e.p("leaf.pem"), "--trust", e.p("ca.pem"), *at]
        ),
        "verify batch": lambda: e.run(
            ["verify", "batch", e.p("batch.jsonl"), "--trust", e.p("ca.pem"), *at]
        ),
        # An unsigned PDF (invalid): the signed cases are in test_documents_verify.py.
        "verify pdf": lambda: e.run(["verify", "pdf", e.p("unsigned.pdf")], codes=(1,)),
        "crl info": lambda: e.run(["crl", "info", e.p("sign.crl"), "--issuer", e.p("ca.pem"), *at]),
        "revocation check": lambda: e.run(
            [
                "revocation",
                "check",
                e.p("leaf.pem"),
                "--issuer",
                e.p("ca.pem"),
                "--crl",
                e.p("sign.crl"),
                *at,
            ]
        ),
        "revocation store load": store_load,
        "revocation monitor": monitor,
        "config show": lambda: e.run(["config", "show"]),
        "serve keys add": lambda: e.run(["serve", "keys", "add", "bank", *svc]),
        "serve keys list": lambda: e.run(["serve", "keys", "list", *svc]),
        "audit verify": lambda: e.run(["audit", "verify", *svc]),
        "revocation sync": lambda: e.run(
            ["revocation", "sync", "--crl-dir", e.p("crls"), "--trust", e.p("ca.pem"), *svc]
        ),
        # The error object every command prints under --json (here: a card that is not there).
        "error": lambda: e.run(["card", "status", "--sim", e.p("missing")], codes=(2, 4)),
    }


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    e = Env(tmp_path_factory.mktemp("schemas"))
    yield e
    for done in e.cleanups:
        done()


def test_every_json_command_has_a_schema_and_a_case(env: Env) -> None:
    # sim create is an alias of sim init; login needs a running service, and its JSON is
    # checked against docs/schemas/login.json in test_service_page.py.
    commands = {name for name, _cmd in _commands()} - {"sim create", "login"}
    cases = set(_cases(env)) - {"error"}
    assert commands == cases
    on_disk = {p.name for p in SCHEMAS.glob("*.json")}
    assert {_schema_name(c) for c in [*cases, "error", "login"]} == on_disk


_SNAKE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
# Maps keyed by data, not by field names: OIDs, file names.
_DATA_KEYS = re.compile(r"[0-9]+(\.[0-9]+)+|.+\.(der|pem|png|jpg|jp2|bin)")


def _keys(value: Any, where: str = "$") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield where, k
            yield from _keys(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _keys(v, f"{where}[{i}]")


@pytest.mark.parametrize(
    "command",
    sorted(
        [
            "smoke", "conformance", "readers", "card status", "card certs", "card verify-pin",
            "card sign-cms", "card sign-pdf", "card age", "card presence", "card dump",
            "card apdu",
            "card sign", "card info", "card surface", "sim init", "sim show", "sim reset",
            "cert show", "verify signature", "verify cms", "verify chain", "verify batch",
            "verify pdf",
            "crl info", "revocation check", "revocation store load", "revocation monitor",
            "config show", "serve keys add", "serve keys list", "audit verify",
            "revocation sync", "error",
        ]
    ),
)  # fmt: skip
def test_output_matches_schema(env: Env, command: str) -> None:
    data = _cases(env)[command]()
    schema = json.loads((SCHEMAS / _schema_name(command)).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(data)
    bad = [
        f"{where}: {k!r}"
        for where, k in _keys(data)
        if not _SNAKE.fullmatch(k) and not _DATA_KEYS.fullmatch(k)
    ]
    assert not bad, bad


def test_schemas_reject_a_wrong_output(env: Env) -> None:
    """The schemas are not vacuous: a missing field or a wrong type fails."""
    data = _cases(env)["cert show"]()
    schema = json.loads((SCHEMAS / "cert-show.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    broken = dict(data)
    del broken["serial_hex"]
    assert not validator.is_valid(broken)
    assert not validator.is_valid({**data, "not_before": 5})
    err = json.loads((SCHEMAS / "error.json").read_text(encoding="utf-8"))
    assert not jsonschema.Draft202012Validator(err).is_valid({"error": {"message": "x"}})


# --- drafting -------------------------------------------------------------------------------


def infer(value: Any) -> dict[str, Any]:
    """A draft schema for one sample (every key required; null kept as a possible type)."""
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, str):
        return {"type": "string"}
    if value is None:
        return {"type": "null"}
    if isinstance(value, list):
        return {"type": "array", "items": infer(value[0])} if value else {"type": "array"}
    return {
        "type": "object",
        "required": sorted(value),
        "properties": {k: infer(v) for k, v in value.items()},
    }


if __name__ == "__main__" and "--draft" in sys.argv:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        e = Env(Path(tmp))
        for name, case in _cases(e).items():
            schema = {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "title": f"jpki {name} --json" if name != "error" else "jpki error under --json",
                **infer(case()),
            }
            print(f"== {_schema_name(name)}\n{json.dumps(schema, indent=2, ensure_ascii=False)}")
