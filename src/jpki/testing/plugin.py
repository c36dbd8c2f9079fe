"""pytest plugin for card-app developers: ``jpki_pki`` and the ``jpki_card`` factory.

Registered as the ``pytest11`` entry point ``jpki`` (active once jpki is installed); without
the entry point, load it with ``-p jpki.testing.plugin``. See docs/testing.md.

* ``jpki_pki`` — a deterministic JPKI-like PKI (:class:`TestingPki`): the signing and
  authentication CAs, CRLs listing whatever was revoked, and an OCSP responder on 127.0.0.1
  started on first use of :attr:`TestingPki.ocsp_url`.
* ``jpki_card`` — a factory of simulated cards (:class:`TestCard`): the holder's basic 4
  information, the certificates' validity window, revoked certificates, PIN counters
  (nearly blocked or blocked), the token kind and injected faults.
"""

from __future__ import annotations

import dataclasses
import http.server
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import OCSPExtensionOID

from jpki.cert import JpkiCertificate
from jpki.sim.card import SimulatedCard
from jpki.sim.create import build_profile
from jpki.sim.faults import FaultConfig, FaultyCard
from jpki.sim.profile import KeyId, ProfileStore, SimPerson, TokenKind, write_profile
from jpki.testing.pki import CaName, Issued, TestPerson, TestPki, sample_person
from jpki.transport.simulated import SimulatedConnection

__all__ = ["TestCard", "TestingPki", "jpki_card", "jpki_pki"]

#: Card sex coding (1 male, 2 female, 9 not applicable) from the certificate's (1/2/3).
_CARD_SEX = {1: 1, 2: 2, 3: 9}
_SEX_WORDS = {"male": 1, "female": 2, "unknown": 3}
_PINS = {"auth": KeyId.AUTH_PIN, "sign": KeyId.SIGN_PIN, "support": KeyId.SUPPORT_PIN}


class TestingPki:
    """The PKI behind ``jpki_pki``: CAs, revocation, CRLs and an OCSP responder."""

    __test__ = False  # not a test class

    def __init__(self, directory: Path, *, seed: str = "jpki-test", now: datetime | None = None):
        self.pki = TestPki(seed, now=now)
        self.directory = directory
        self.now = self.pki.now
        self._revoked: dict[tuple[CaName, int], tuple[x509.ReasonFlags | None, datetime]] = {}
        self._issued: dict[tuple[CaName, int], x509.Certificate] = {}
        self._server: http.server.ThreadingHTTPServer | None = None
        self.cards_made = 0
        self._thread: threading.Thread | None = None

    @property
    def sign_ca(self) -> Issued:
        """The signing CA (署名用 CA) certificate and key."""
        return self.pki.sign_ca

    @property
    def auth_ca(self) -> Issued:
        """The user-authentication CA (利用者証明用 CA) certificate and key."""
        return self.pki.auth_ca

    def trust_file(self, ca: CaName = "sign") -> Path:
        """A PEM file holding the CA certificate, for ``--trust``/``--issuer``."""
        path = self.directory / f"{ca}-ca.pem"
        path.write_bytes(self.pki.ca(ca).pem)
        return path

    def register(self, ca: CaName, cert: x509.Certificate) -> None:
        """Make ``cert`` known to the OCSP responder (cards from ``jpki_card`` are)."""
        self._issued[(ca, cert.serial_number)] = cert

    def revoke(
        self,
        ca: CaName,
        cert: x509.Certificate,
        *,
        reason: x509.ReasonFlags | None = x509.ReasonFlags.key_compromise,
        at: datetime | None = None,
    ) -> None:
        """List ``cert`` as revoked in later CRLs and OCSP answers."""
        self.register(ca, cert)
        self._revoked[(ca, cert.serial_number)] = (reason, at or self.now - timedelta(hours=1))

    def crl(self, ca: CaName = "sign", *, number: int = 1) -> bytes:
        """A DER CRL of ``ca`` listing every certificate revoked so far, current at ``now``."""
        entries = [(s, r, t) for (c, s), (r, t) in sorted(self._revoked.items()) if c == ca]
        return self.pki.make_crl(
            ca,
            entries,
            this_update=self.now - timedelta(hours=1),
            next_update=self.now + timedelta(days=1),
            number=number,
        )

    def crl_file(self, ca: CaName = "sign") -> Path:
        """:meth:`crl` written to a file, for ``--crl``."""
        path = self.directory / f"{ca}.crl"
        path.write_bytes(self.crl(ca))
        return path

    @property
    def ocsp_url(self) -> str:
        """``http://127.0.0.1:PORT/`` of a responder for both CAs (started on first use)."""
        if self._server is None:
            self._start_ocsp()
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def _ocsp_answer(self, body: bytes) -> bytes:
        try:
            req = ocsp.load_der_ocsp_request(body)
        except ValueError:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.MALFORMED_REQUEST
            ).public_bytes(serialization.Encoding.DER)
        for ca in ("sign", "auth"):
            issued = self._issued.get((ca, req.serial_number))
            if issued is None:
                continue
            issuer = self.pki.ca(ca)
            responder = self.pki.issue_ocsp_responder(ca)
            revoked = self._revoked.get((ca, req.serial_number))
            builder = ocsp.OCSPResponseBuilder().add_response(
                cert=issued,
                issuer=issuer.cert,
                algorithm=req.hash_algorithm,  # the CertID must hash as the request did
                cert_status=ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
                this_update=self.now - timedelta(minutes=1),
                next_update=self.now + timedelta(hours=1),
                revocation_time=revoked[1] if revoked else None,
                revocation_reason=revoked[0] if revoked else None,
            )
            builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, responder.cert)
            builder = builder.certificates([responder.cert])
            for ext in req.extensions:
                if ext.oid == OCSPExtensionOID.NONCE:
                    builder = builder.add_extension(ext.value, critical=False)
            resp = builder.sign(responder.key, hashes.SHA256())
            return resp.public_bytes(serialization.Encoding.DER)
        return ocsp.OCSPResponseBuilder.build_unsuccessful(
            ocsp.OCSPResponseStatus.UNAUTHORIZED
        ).public_bytes(serialization.Encoding.DER)

    def _start_ocsp(self) -> None:
        answer = self._ocsp_answer

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = min(int(self.headers.get("Content-Length") or 0), 65536)
                data = answer(self.rfile.read(size))
                self.send_response(200)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the OCSP responder, if it was started."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@dataclasses.dataclass
class TestCard:
    """A simulated card made by ``jpki_card``: its profile, certificates and PINs."""

    __test__ = False  # not a test class

    path: Path
    store: ProfileStore
    person: TestPerson
    sign: Issued
    auth: Issued
    pins: Mapping[str, str]
    faults: FaultConfig | None = None
    _open: list[SimulatedCard | FaultyCard] = dataclasses.field(default_factory=list, repr=False)

    @property
    def sign_cert(self) -> JpkiCertificate:
        """The signing certificate as a ``JpkiCertificate``."""
        return self.sign.jpki

    @property
    def auth_cert(self) -> JpkiCertificate:
        """The authentication certificate as a ``JpkiCertificate``."""
        return self.auth.jpki

    def open(self) -> SimulatedCard | FaultyCard:
        """The chip (``process(apdu) -> response``), wrapped in ``FaultyCard`` for faults."""
        chip = SimulatedCard(self.store, durable=False)
        card: SimulatedCard | FaultyCard = (
            chip if self.faults is None else FaultyCard(chip, self.faults)
        )
        self._open.append(card)
        return card

    def connect(self) -> SimulatedConnection:
        """A ``Connection`` for the card client (``JpkiAp(CardProtocol(conn))``)."""
        return SimulatedConnection(self.open())

    def tries_left(self, pin: str) -> int:
        """The PIN's counter as the card holds it now (``auth``, ``sign``, ``support``)."""
        return ProfileStore(self.path).load_state().tries_left[_PINS[pin]]

    def close(self) -> None:
        """Close every chip ``open`` handed out (the fixture does so at teardown)."""
        for card in self._open:
            card.close()
        self._open.clear()


def make_card(
    directory: Path,
    pki: TestingPki,
    *,
    person: int = 0,
    name: str | None = None,
    address: str | None = None,
    birth_date: date | None = None,
    sex: str | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    revoked: bool | str = False,
    tries_left: Mapping[str, int] | None = None,
    blocked: tuple[str, ...] | list[str] = (),
    token: str = "card",  # noqa: S107 - the token kind, not a secret
    faults: FaultConfig | None = None,
    pins: Mapping[str, str] | None = None,
) -> TestCard:
    """A simulated card; see ``jpki_card`` for the parameters."""
    base = sample_person(person)
    changes: dict[str, Any] = {}
    if name is not None:
        changes.update(name=name, name_substitutes="0" * len(name))
    if address is not None:
        changes.update(address=address, address_substitutes="0" * len(address))
    if birth_date is not None:
        changes["birth_date"] = birth_date
    if sex is not None:
        if sex not in _SEX_WORDS:
            raise ValueError(f"sex must be one of {', '.join(_SEX_WORDS)}")
        changes["sex"] = _SEX_WORDS[sex]
    holder = dataclasses.replace(base, **changes)
    key_pins = {_PINS[k].value: v for k, v in (pins or {}).items()}
    profile = build_profile(seed=pki.pki.seed, person=person, pins=key_pins, token=TokenKind(token))
    # Numbered per PKI, not random: the same test gets the same keys (cached on disk) again,
    # and two cards of one holder still differ in keys and serials.
    pki.cards_made += 1
    label = f"card{pki.cards_made}-{holder.my_number}"
    sign = pki.pki.issue_signing(
        holder, label=f"sign-{label}", not_before=not_before, not_after=not_after
    )
    auth = pki.pki.issue_auth(
        label=f"auth-{label}", person=holder, not_before=not_before, not_after=not_after
    )
    der = serialization.Encoding.DER

    def pem(key: Any) -> bytes:
        return bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    profile = dataclasses.replace(
        profile,
        auth_cert=auth.cert.public_bytes(der),
        sign_cert=sign.cert.public_bytes(der),
        auth_key_pem=pem(auth.key),
        sign_key_pem=pem(sign.key),
        person=SimPerson(
            name=holder.name,
            address=holder.address,
            birth_date=holder.birth_date,
            sex=_CARD_SEX.get(holder.sex, 9),
            my_number=holder.my_number,
        ),
    )
    store = write_profile(directory, profile)
    state = store.load_state()
    for pin, left in (tries_left or {}).items():
        state.tries_left[_PINS[pin]] = left
    for pin in blocked:
        state.tries_left[_PINS[pin]] = 0
    store.save_state(state)
    pki.register("sign", sign.cert)
    pki.register("auth", auth.cert)
    if revoked:
        reason = x509.ReasonFlags[revoked] if isinstance(revoked, str) else None
        pki.revoke("sign", sign.cert, reason=reason or x509.ReasonFlags.key_compromise)
        pki.revoke("auth", auth.cert, reason=reason or x509.ReasonFlags.key_compromise)
    current = {k: v for k, v in zip(_PINS, (profile.pins[i] for i in _PINS.values()), strict=True)}
    return TestCard(store.path, store, holder, sign, auth, current, faults)


@pytest.fixture
def jpki_pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestingPki]:
    """A deterministic JPKI-like PKI at 2026-03-01 with CRLs and an OCSP responder."""
    pki = TestingPki(tmp_path_factory.mktemp("jpki-pki"), now=datetime(2026, 3, 1, 12, tzinfo=UTC))
    try:
        yield pki
    finally:
        pki.close()


@pytest.fixture
def jpki_card(
    jpki_pki: TestingPki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., TestCard]]:
    """Factory of simulated cards, issued by ``jpki_pki``::

        card = jpki_card(name="𠮷田 花子", birth_date=date(1990, 4, 1), sex="female",
                         not_after=datetime(2026, 1, 1, tzinfo=UTC),  # expired
                         revoked="key_compromise", tries_left={"auth": 1},
                         blocked=["sign"], token="android", faults=FaultConfig(remove_at=5))

    Keyword arguments: ``person`` (sample holder index), ``name``, ``address``,
    ``birth_date``, ``sex`` (``male``/``female``/``unknown``), ``not_before``/``not_after``
    (both certificates), ``revoked`` (True or a reason name: listed in ``jpki_pki``'s CRLs
    and OCSP answers), ``tries_left`` (``auth``/``sign``/``support`` → counter),
    ``blocked`` (PINs at 0), ``token`` (``card``, ``android``, ``iphone``), ``faults``
    (a ``FaultConfig``), ``pins`` (other PIN values).
    """
    made: list[TestCard] = []

    def factory(**kwargs: Any) -> TestCard:
        card = make_card(tmp_path_factory.mktemp("jpki-card"), jpki_pki, **kwargs)
        made.append(card)
        return card

    yield factory
    for card in made:
        card.close()
