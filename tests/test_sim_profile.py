"""Simulator profiles: creation, validation, atomic state persistence."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jpki.errors import ProfileError, UsageError
from jpki.sim import KeyId, ProfileStore, open_simulated_card
from jpki.sim import profile as profile_mod
from jpki.sim.create import build_profile, create_profile
from jpki.sim.profile import CardProfile, CardState, write_atomic


def test_profile_is_deterministic(sim_template: Path, tmp_path: Path) -> None:
    again = create_profile(tmp_path / "again")
    assert (again.path / "profile.json").read_bytes() == (
        sim_template / "profile.json"
    ).read_bytes()


def test_profiles_differ_by_person_and_seed() -> None:
    a = build_profile(person=0)
    b = build_profile(person=1)
    c = build_profile(seed="other-seed")
    assert a.person.my_number != b.person.my_number
    assert a.sign_cert != c.sign_cert and a.auth_key_pem != c.auth_key_pem
    assert b.person.sex == 2
    assert build_profile(person=3).person.sex == 9  # certificate coding 3 → card coding 9


def test_custom_pins(tmp_path: Path) -> None:
    store = create_profile(tmp_path / "p", pins={"auth_pin": "0000", KeyId.SIGN_PIN: "ABCDEF"})
    assert store.profile.pins[KeyId.AUTH_PIN] == "0000"
    assert store.profile.pins[KeyId.SIGN_PIN] == "ABCDEF"
    assert store.profile.pins[KeyId.SUPPORT_PIN] == "5678"
    with pytest.raises(UsageError):
        build_profile(pins={"auth_pin": "12345"})
    with pytest.raises(UsageError):
        build_profile(pins={"text_collation_a": "123456789012"})
    with pytest.raises(UsageError):
        build_profile(pins={"nonsense": "1234"})


def test_existing_profile_needs_force(sim_profile: Path) -> None:
    with pytest.raises(ProfileError, match="already exists"):
        create_profile(sim_profile)
    (sim_profile / "faults.json").write_text('{"delay": 1}')
    store = create_profile(sim_profile, person=1, force=True)
    assert store.profile.person_index == 1
    assert not (sim_profile / "faults.json").exists()


def test_non_empty_directory_needs_force(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "other").write_text("keep")
    with pytest.raises(ProfileError, match="not empty"):
        create_profile(tmp_path / "x")
    (tmp_path / "f").write_text("a file")
    with pytest.raises(ProfileError):
        create_profile(tmp_path / "f", force=True)


def test_reprs_hide_secrets(sim_template: Path) -> None:
    p = ProfileStore(sim_template).profile
    text = repr(p) + repr(p.person)
    assert p.person.my_number not in text
    assert "1234" not in text and "JPKITEST01" not in text and "PRIVATE" not in text


def test_json_round_trip(sim_template: Path) -> None:
    p = ProfileStore(sim_template).profile
    assert CardProfile.from_json(json.loads(json.dumps(p.to_json()))) == p


# --- errors --------------------------------------------------------------------------------


def test_missing_directory_or_files(tmp_path: Path, sim_profile: Path) -> None:
    with pytest.raises(ProfileError, match="no simulator profile"):
        ProfileStore(tmp_path / "nope")
    (sim_profile / "state.json").unlink()
    with pytest.raises(ProfileError, match="jpki sim reset"):
        open_simulated_card(sim_profile)
    ProfileStore(sim_profile).reset_state()
    open_simulated_card(sim_profile)
    (sim_profile / "profile.json").unlink()
    with pytest.raises(ProfileError, match="profile file missing"):
        ProfileStore(sim_profile)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.pop("certificates"), "certificates"),
        (lambda d: d.update(format=99), "format"),
        (lambda d: d["person"].update(my_number="12345"), "12 digits"),
        (lambda d: d["person"].update(birth_date="1985-13-01"), "malformed"),
        (lambda d: d["certificates"].update(auth="not a pem"), "malformed"),
        (lambda d: d["keys"].update(auth=5), "malformed"),
        (lambda d: d["visual"].update(security_code="12a4"), "4 digits"),
        (lambda d: d["pins"].pop("sign_pin"), "sign_pin"),
        (lambda d: d.update(max_tries={"auth_pin": 0}), "max_tries"),
        (lambda d: d.update(max_tries={"bogus": 3}), "malformed"),
        (lambda d: d.update(token="nokia"), "malformed"),
        (lambda d: d["key_ids"].update(text_cvca="0102"), "16 bytes"),
        (lambda d: d.update(dump={"files": {"jpki-0017": ""}}), "unknown file"),
    ],
)
def test_malformed_profile_json(sim_profile: Path, mutate: object, match: str) -> None:
    path = sim_profile / "profile.json"
    data = json.loads(path.read_text())
    mutate(data)  # type: ignore[operator]
    path.write_text(json.dumps(data))
    with pytest.raises(ProfileError, match=match):
        ProfileStore(sim_profile)


def test_bad_private_key_is_a_profile_error(sim_profile: Path) -> None:
    path = sim_profile / "profile.json"
    data = json.loads(path.read_text())
    data["keys"]["auth"] = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    path.write_text(json.dumps(data))
    with pytest.raises(ProfileError, match="auth key"):
        ProfileStore(sim_profile).profile.private_key("auth")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "corrupt"),
        (b"{", "corrupt"),
        (b"\xff\xfe", "corrupt"),
        (b"[]", "not a JSON object"),
        (b'{"format": 1}', "tries_left"),
        (b'{"format": 2, "tries_left": {}}', "format"),
        (b'{"format": 1, "tries_left": {"auth_pin": 4}}', "out of range"),
        (b'{"format": 1, "tries_left": {"auth_pin": -1}}', "out of range"),
        (b'{"format": 1, "tries_left": {"auth_pin": true}}', "out of range"),
        (b'{"format": 1, "tries_left": {"auth_pin": "3"}}', "out of range"),
        (b'{"format": 1, "tries_left": {"nope": 3}}', "malformed"),
        (b'{"format": 1, "tries_left": {}, "changed_pins": {"auth_pin": "12"}}', "valid PIN"),
        (b'{"format": 1, "tries_left": {}, "changed_pins": {"text_collation_a": "1"}}', "PIN"),
    ],
)
def test_corrupt_state(sim_profile: Path, content: bytes, match: str) -> None:
    (sim_profile / "state.json").write_bytes(content)
    with pytest.raises(ProfileError, match=match):
        open_simulated_card(sim_profile)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200) | st.from_regex(r'\{"format": 1, "tries_left": .{0,40}\}'))
def test_any_state_bytes_load_or_raise_profile_error(sim_profile: Path, raw: bytes | str) -> None:
    store = ProfileStore(sim_profile)
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    (sim_profile / "state.json").write_bytes(data)
    try:
        state = store.load_state()
    except ProfileError:
        return
    assert all(0 <= v <= store.profile.max_tries[k] for k, v in state.tries_left.items())


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda kids: (
            st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
        ),
        max_leaves=10,
    )
)
def test_any_profile_json_value_raises_profile_error(data: object) -> None:
    with pytest.raises(ProfileError):
        CardProfile.from_json(data)


# --- atomic persistence --------------------------------------------------------------------


def _failing(*_args: object, **_kwargs: object) -> None:
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize("victim", ["replace", "fsync"])
def test_failed_state_write_keeps_the_old_state(
    sim_profile: Path, monkeypatch: pytest.MonkeyPatch, victim: str
) -> None:
    store = ProfileStore(sim_profile)
    before = (sim_profile / "state.json").read_bytes()
    state = CardState.fresh(store.profile)
    state.tries_left[KeyId.AUTH_PIN] = 0
    monkeypatch.setattr(os, victim, _failing)
    with pytest.raises(ProfileError, match="cannot write state"):
        store.save_state(state)
    monkeypatch.undo()
    assert (sim_profile / "state.json").read_bytes() == before
    assert sorted(p.name for p in sim_profile.iterdir() if not p.name.startswith(".")) == [
        "cvca",
        "profile.json",
        "state.json",
    ]


def test_write_atomic_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    write_atomic(target, b"old")
    write_atomic(target, b"new content")
    assert target.read_bytes() == b"new content"
    assert os.listdir(tmp_path) == ["f.json"]


def test_verify_with_unwritable_state_answers_6581_and_spends_nothing(
    sim_profile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    card = open_simulated_card(sim_profile)
    assert card.process(bytes.fromhex("00A4040C0AD392F000260100000001")) == b"\x90\x00"
    assert card.process(bytes.fromhex("00A4020C020018")) == b"\x90\x00"
    monkeypatch.setattr(os, "replace", _failing)
    assert card.process(bytes.fromhex("002000800431323334")) == b"\x65\x81"
    monkeypatch.undo()
    assert card.tries_left(KeyId.AUTH_PIN) == 3
    assert ProfileStore(sim_profile).load_state().tries_left[KeyId.AUTH_PIN] == 3
    assert card.process(bytes.fromhex("00B0000004"))[-2:] == b"\x69\x81"  # nothing unlocked
    assert card.process(bytes.fromhex("00200080")) == b"\x63\xc3"


def test_state_survives_restart(sim_profile: Path) -> None:
    card = open_simulated_card(sim_profile)
    card.process(bytes.fromhex("00A4040C0AD392F000260100000001"))
    card.process(bytes.fromhex("00A4020C02001B"))
    assert card.process(bytes.fromhex("002000800441424344")) == b"\x63\xc4"
    card.close()
    again = open_simulated_card(sim_profile)
    assert again.tries_left(KeyId.SIGN_PIN) == 4
    assert again.tries_left(KeyId.AUTH_PIN) == 3
    ProfileStore(sim_profile).reset_state()
    assert open_simulated_card(sim_profile).tries_left(KeyId.SIGN_PIN) == 5


def test_non_durable_store_skips_fsync_but_stays_atomic(
    sim_profile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "fsync", _failing)
    card = open_simulated_card(sim_profile, durable=False)
    card.process(bytes.fromhex("00A4040C0AD392F000260100000001"))
    assert card.process(bytes.fromhex("002000980439393939")) == b"\x63\xc2"
    monkeypatch.undo()
    assert ProfileStore(sim_profile).load_state().tries_left[KeyId.AUTH_PIN] == 2
    assert sorted(p.name for p in sim_profile.iterdir() if not p.name.startswith(".")) == [
        "cvca",
        "profile.json",
        "state.json",
        "state.lock",
    ]


SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")
SELECT_AUTH_PIN = bytes.fromhex("00A4020C020018")
GOOD_AUTH_VERIFY = bytes.fromhex("002000800431323334")
BAD_AUTH_VERIFY = bytes.fromhex("002000800439393939")


@pytest.mark.parametrize("before", [3, 2, 1])
def test_crash_after_good_verify_never_leaves_more_tries(
    sim_profile: Path, monkeypatch: pytest.MonkeyPatch, before: int
) -> None:
    """A good VERIFY: the spend is fsync'd, the reset may not be; a crash loses at most that.

    A machine crash keeps the last durable write and may or may not keep later non-durable
    ones (rename kept, or lost; or the rename kept but its data lost: an empty file). Every
    outcome reads back as the spent counter or the reset one; none has more tries than before
    the VERIFY unless the PIN was right and the reset itself survived.
    """
    card = open_simulated_card(sim_profile)
    assert card.process(SELECT_JPKI) == b"\x90\x00"
    assert card.process(SELECT_AUTH_PIN) == b"\x90\x00"
    for _ in range(3 - before):
        assert card.process(BAD_AUTH_VERIFY)[:1] == b"\x63"
    assert card.tries_left(KeyId.AUTH_PIN) == before
    on_disk = (sim_profile / "state.json").read_bytes()

    writes: list[tuple[bytes, bool]] = []
    real = profile_mod.write_atomic

    def recording(path: Path, data: bytes, *, durable: bool = True) -> None:
        writes.append((data, durable))
        real(path, data, durable=durable)

    monkeypatch.setattr(profile_mod, "write_atomic", recording)
    assert card.process(GOOD_AUTH_VERIFY) == b"\x90\x00"
    monkeypatch.undo()

    def tries(data: bytes) -> int:
        return int(json.loads(data)["tries_left"][KeyId.AUTH_PIN.value])

    # Exactly two writes: the spend (durable, before the comparison), then the reset.
    assert [(tries(d), durable) for d, durable in writes] == [(before - 1, True), (3, False)]
    assert tries(on_disk) == before

    # Crash outcomes: the durable spend alone (reset lost), or the reset kept.
    survivors = [writes[0][0], writes[1][0]]
    for data in survivors:
        (sim_profile / "state.json").write_bytes(data)
        left = open_simulated_card(sim_profile).tries_left(KeyId.AUTH_PIN)
        assert left in (before - 1, 3)
    (sim_profile / "state.json").write_bytes(writes[0][0])
    assert open_simulated_card(sim_profile).tries_left(KeyId.AUTH_PIN) == before - 1
    # The rename kept without its data: refused, not read as a fresh card with every try.
    (sim_profile / "state.json").write_bytes(b"")
    with pytest.raises(ProfileError, match="corrupt"):
        open_simulated_card(sim_profile)


def test_wrong_verify_is_one_durable_write(
    sim_profile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    card = open_simulated_card(sim_profile)
    card.process(SELECT_JPKI)
    card.process(SELECT_AUTH_PIN)
    durables: list[bool] = []
    real = profile_mod.write_atomic

    def recording(path: Path, data: bytes, *, durable: bool = True) -> None:
        durables.append(durable)
        real(path, data, durable=durable)

    monkeypatch.setattr(profile_mod, "write_atomic", recording)
    assert card.process(BAD_AUTH_VERIFY) == b"\x63\xc2"
    assert durables == [True]
