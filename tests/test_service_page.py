"""The /login page in real headless chromium; `jpki login` and its library on the simulator."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from click.testing import CliRunner

from jpki.cli import main
from jpki.service.app import ServiceConfig
from jpki.sim.profile import DEFAULT_PINS, KeyId
from jpki.testing.pki import sample_person
from jpki.verify import account_key
from service_helpers import HTTP, REPO, add_key, make_pki, raw_db_bytes, thread_service

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    tmp = tmp_path_factory.mktemp("page")
    pki = make_pki(tmp / "pki")
    crl_dir = tmp / "crls"
    crl_dir.mkdir()
    (crl_dir / "auth.crl").write_bytes(pki.crl("auth", 1))
    db = str(tmp / "service.sqlite")
    config = ServiceConfig(db_url=db, anchors=pki.anchors(), crl_dir=crl_dir, workers=1)
    with thread_service(config) as (base, _app):
        yield base, db


def _login(url: str, profile: Path, monkeypatch: pytest.MonkeyPatch, *extra: str) -> Any:
    monkeypatch.setenv("TEST_AUTH_PIN", DEFAULT_PINS[KeyId.AUTH_PIN])
    return CliRunner().invoke(
        main,
        ["login", url, "--sim", str(profile), "--pin-env", "TEST_AUTH_PIN", "--json", *extra],
    )


def _sim_account(profile: Path) -> str:
    from jpki.cert import JpkiCertificate
    from jpki.sim import open_simulated_card

    card = open_simulated_card(profile)
    return account_key(JpkiCertificate.load(card.profile.auth_cert))


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="chromium/chromedriver not installed")
def test_login_page_in_headless_chromium(
    service: tuple[str, str], sim_profile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, _db = service
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(arg)
    assert CHROMIUM and CHROMEDRIVER
    opts.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.get(base + "/login")
        wait = WebDriverWait(driver, 30)
        link = wait.until(lambda d: d.find_element(By.ID, "link").get_attribute("value"))
        assert "/login/c/" in link
        assert driver.find_elements(By.CSS_SELECTOR, "#qr svg"), "no QR code shown"
        assert "waiting" in driver.find_element(By.ID, "status").text
        res = _login(link, sim_profile, monkeypatch)
        assert res.exit_code == 0, res.output
        answer = json.loads(res.output)
        assert answer["status"] == "valid"
        want = _sim_account(sim_profile)
        shown = wait.until(lambda d: d.find_element(By.ID, "account").text)
        assert shown == want == answer["account_key"]
        assert "verified" in driver.find_element(By.ID, "status").text
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / f"login-page-{int(time.time())}.png"
        driver.save_screenshot(str(shot))
        print(f"screenshot of the failing login page: {shot}")
        raise
    finally:
        driver.quit()


def test_jpki_login_against_the_api(
    service: tuple[str, str], sim_profile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, db = service
    monkeypatch.setenv("TEST_API_KEY", add_key(db, "shop"))
    res = _login(base, sim_profile, monkeypatch, "--api-key-env", "TEST_API_KEY")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["status"] == "valid" and out["account_key"] == _sim_account(sim_profile)
    schema = json.loads((REPO / "docs" / "schemas" / "login.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(out)
    # Without the key: refused by the service, a clean error and no traceback.
    res = _login(base, sim_profile, monkeypatch)
    assert res.exit_code != 0 and "401" in res.output and "Traceback" not in res.output
    # A page link used twice: the second login is refused.
    page = HTTP.post(base + "/login/challenges").json()
    assert _login(page["link"], sim_profile, monkeypatch).exit_code == 0
    again = _login(page["link"], sim_profile, monkeypatch)
    assert again.exit_code == 1 and "already used" in again.output
    # Neither the PIN nor the holder's My Number reaches the service's records.
    my_number = sample_person(0).my_number
    raw = raw_db_bytes(db)
    assert my_number.encode() not in raw
    with sqlite3.connect(db) as c:
        bodies = [json.loads(r[0]) for r in c.execute("SELECT body FROM svc_audit")]
    assert bodies
    for rec in bodies:
        assert "pin" not in json.dumps(rec).lower().replace("pinned", "")


# --- the library under `jpki login`: jpki.service_client -------------------------------------


def _card(profile: Path) -> Any:
    from jpki.sim import open_simulated_card
    from jpki.transport.simulated import SimulatedConnection

    return SimulatedConnection(open_simulated_card(profile))


def test_client_login_against_the_api_and_a_page(
    service: tuple[str, str], sim_profile: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from jpki.secret import Secret
    from jpki.service_client import LoginStatus, ServiceClient, login

    base, db = service
    key = add_key(db, "client-lib")
    pin = DEFAULT_PINS[KeyId.AUTH_PIN]
    asked: list[int] = []

    def pin_source() -> Secret:
        asked.append(1)
        return Secret(pin)

    with caplog.at_level(logging.DEBUG):
        result = login(base, _card(sim_profile), pin_source, api_key=key)
    assert asked == [1]
    assert result.status is LoginStatus.VALID, result
    assert result.account_key == _sim_account(sim_profile)
    assert isinstance(result.record_seq, int) and result.record_hash
    with sqlite3.connect(db) as c:
        (stored,) = c.execute("SELECT hash FROM svc_audit WHERE seq=?", (result.record_seq,))
    assert stored[0] == result.record_hash
    # Neither the PIN (as sent in VERIFY) nor the API key shows in logs or reprs.
    for shown in (caplog.text, repr(result), repr(ServiceClient(base, api_key=key))):
        assert key not in shown and pin.encode().hex() not in shown.lower()
    assert "redacted" in repr(ServiceClient(base, api_key=key))
    # A page link: no key sent; used a second time the service refuses it (and records that).
    link = HTTP.post(base + "/login/challenges").json()["link"]
    assert login(link, _card(sim_profile), pin_source).status is LoginStatus.VALID
    again = login(link, _card(sim_profile), pin_source)
    assert again.status is LoginStatus.INVALID and "already used" in " ".join(again.reasons)
    assert isinstance(again.record_seq, int)


def test_client_pin_guard_asks_no_pin_at_the_last_try(
    service: tuple[str, str], sim_profile: Path
) -> None:
    from jpki.errors import PinGuardError, WrongPin
    from jpki.secret import Secret
    from jpki.service_client import LoginStatus, login

    base, db = service
    key = add_key(db, "client-guard")
    for left in (2, 1):
        with pytest.raises(WrongPin) as wrong:
            login(base, _card(sim_profile), lambda: Secret("0000"), api_key=key)
        assert wrong.value.retries_left == left

    def never() -> Secret:
        raise AssertionError("the PIN was asked for with one try left")

    with pytest.raises(PinGuardError):
        login(base, _card(sim_profile), never, api_key=key)
    right = Secret(DEFAULT_PINS[KeyId.AUTH_PIN])
    out = login(base, _card(sim_profile), lambda: right, api_key=key, force=True)
    assert out.status is LoginStatus.VALID


def test_client_refusals_and_bad_answers_are_jpki_errors(
    service: tuple[str, str], sim_profile: Path
) -> None:
    from jpki.errors import TransportError, UsageError
    from jpki.secret import Secret
    from jpki.service_client import ServiceClient, ServiceError, login
    from service_helpers import free_port

    base, _db = service
    pin = Secret(DEFAULT_PINS[KeyId.AUTH_PIN])
    with pytest.raises(ServiceError) as refused:
        login(base, _card(sim_profile), lambda: pin, api_key="jpk_not-a-key")
    assert refused.value.status_code == 401 and "jpk_not-a-key" not in str(refused.value)
    with pytest.raises(TransportError):
        ServiceClient(f"http://127.0.0.1:{free_port()}", timeout=2).challenge()
    with pytest.raises(UsageError):
        ServiceClient("file:///etc/passwd")
    # Answers a broken or hostile service might give: each a ServiceError, never a traceback.
    answers: list[httpx.Response] = [
        httpx.Response(200, text="<html>"),
        httpx.Response(200, json=["id"]),
        httpx.Response(200, json={"id": "x"}),
        httpx.Response(200, json={"id": "x", "nonce": "@@"}),
        httpx.Response(200, json={"id": "x", "nonce": ""}),
        httpx.Response(200, json={"id": 7, "nonce": "AAAA"}),
        httpx.Response(503, json={"error": "database down"}),
    ]
    for answer in answers:
        http = httpx.Client(transport=httpx.MockTransport(lambda _r, a=answer: a))
        with pytest.raises(ServiceError):
            ServiceClient("http://svc.invalid", api_key="k", http=http).challenge()
    ok = {"id": "x", "nonce": "AAAA"}
    for verdict in ({"status": "maybe"}, {"status": "valid", "reasons": "no"}, {}):
        replies = iter([httpx.Response(200, json=ok), httpx.Response(200, json=verdict)])
        http = httpx.Client(transport=httpx.MockTransport(lambda _r, it=replies: next(it)))
        with pytest.raises(ServiceError):
            login("http://svc.invalid", _card(sim_profile), lambda: pin, http=http)
