#!/usr/bin/env python3
"""Regenerate vectors/sim/transcripts.json: APDU transcripts of the simulated card.

    python vectors/make_sim_transcripts.py [--check]

Each scenario starts from a fresh card (profile: seed "jpki-test", person 0, default PINs)
and lists (command, expected response) pairs in hex. The output is byte-identical on every
run (the test PKI and PKCS#1 v1.5 signatures are deterministic); ``--check`` exits 1 if the
committed file differs. tests/test_sim_transcripts.py replays the committed file.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from jpki.sim import SimulatedCard
from jpki.sim.create import create_profile

OUT = Path(__file__).resolve().parent / "sim" / "transcripts.json"

JPKI = "00A4040C0AD392F000260100000001"
TEXT = "00A4040C0AD3921000310001010408"
VISUAL = "00A4040C0AD3921000310001010402"
SHA256_DI = "3031300D060960864801650304020105000420"


def ascii_hex(s: str) -> str:
    return s.encode().hex().upper()


def verify(value: str) -> str:
    return f"00200080{len(value):02X}{ascii_hex(value)}"


def read_file(fid: str, size: int) -> list[str]:
    """SELECT + 4-byte head + 256-byte chunks (OpenSC style)."""
    out = [f"00A4020C02{fid}", "00B0000004"]
    off = 0
    while off < size:
        out.append(f"00B0{off:04X}{min(256, size - off) & 0xFF:02X}")
        off += 256
    return out


def scenarios(card: SimulatedCard) -> dict[str, list[str]]:
    p = card.profile
    mn = p.person.my_number
    return {
        "select_applications": [
            JPKI,
            TEXT,
            VISUAL,
            "00A4040C0AD3921000310001010401",  # Juki AP: not modelled
            "00A4040C08A000000003000000",  # another card type
            "00A4000C023F00",  # MF
            "00A4020C02000A",  # no EF in the MF
        ],
        "jpki_pin_status_block_and_persist": [
            JPKI,
            "00A4020C020018",
            "00200080",
            verify("0000"),
            verify("1111"),
            "00200080",
            verify("2222"),
            verify("1234"),
            "00200080",
            "00A4020C02001B",
            "00200080",
        ],
        "jpki_read_certificates": [
            JPKI,
            *read_file("000A", len(p.auth_cert)),
            *read_file("000B", len(p.auth_ca_cert)),
            "00A4020C020001",
            "00B0000004",  # 6982 without the signing password
            "00A4020C020006",
            "00B0000020",
            "00B0002000",  # 6B00
        ],
        "jpki_sign_auth_and_sign": [
            JPKI,
            "00A4020C020017",
            f"802A008033{SHA256_DI}{'00' * 32}00",  # 6982
            "00A4020C020018",
            verify("1234"),
            "00A4020C020017",
            f"802A008033{SHA256_DI}{'11' * 32}00",
            "00A4020C02001B",
            verify("JPKITEST01"),
            "00A4020C02001A",
            f"802A008033{SHA256_DI}{'22' * 32}00",
            "802A00800401020304",
            JPKI,  # re-select clears the PINs
            "00A4020C02001A",
            f"802A008033{SHA256_DI}{'22' * 32}00",
        ],
        "jpki_change_pin": [
            JPKI,
            "00A4020C020018",
            "002401800439383736",  # 6982: not verified
            verify("1234"),
            "0024018003393837",  # 6A80: 3 digits
            "00240180",  # 6700: no new value
            "002401800439383736",
            verify("1234"),
            verify("9876"),
        ],
        "errors": [
            "",
            "00A404",
            "00CA010000",
            "FFCA000000",
            "0CA4040C0AD392F000260100000001",
            "01A4040C0AD392F000260100000001",
            "80A4040C0AD392F000260100000001",
            "00A4040C0AD392F0",
            "00A4040D0AD392F000260100000001",
            JPKI,
            "00B0000000",  # no current EF: 6986
            "00A4020C020017",
            "00B0000000",  # key EF: 6981
            "00200000",  # 6A86
            "0020008A",  # 6A88
            "802A01800401020304",  # 6A86
        ],
        "text_ap": [
            TEXT,
            "00A4020C020001",
            "00B0000000",  # 6982
            "00A4020C020011",
            "00200080",
            verify("5678"),
            "00A4020C020001",
            "00B0000000",
            "00A4020C020002",
            "00B0000000",
            "00A4020C020003",
            "00B0000000",
            "00B0010000",
            "00A4020C020004",
            "00B0000000",
            "00B0010000",
            "00B0020000",
        ],
        "visual_ap": [
            VISUAL,
            "00A4020C020002",
            "00B0000010",  # 6982
            "00A4020C020012",
            "00200080",
            "00A4020C020013",
            verify(mn),
            "00A4020C020002",
            "00B0000020",
            "00A4020C020005",
            "00B0000010",
        ],
    }


def build() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        store = create_profile(Path(tmp) / "card")
        card = SimulatedCard(store, durable=False)
        result: dict[str, object] = {
            "profile": {"seed": "jpki-test", "person": 0},
            "atr": card.atr.hex().upper(),
            "scenarios": {},
        }
        out: dict[str, list[list[str]]] = {}
        for name, commands in scenarios(card).items():
            store.reset_state()
            card.reset()
            pairs = []
            for cmd in commands:
                raw = bytes.fromhex(cmd)
                pairs.append([raw.hex().upper(), card.process(raw).hex().upper()])
            out[name] = pairs
        result["scenarios"] = out
    return (json.dumps(result, indent=1) + "\n").encode()


def main() -> int:
    data = build()
    if "--check" in sys.argv[1:]:
        same = OUT.exists() and OUT.read_bytes() == data
        print("up to date" if same else f"{OUT} differs from a fresh build")
        return 0 if same else 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(data)
    print(f"wrote {OUT} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
