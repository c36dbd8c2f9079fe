"""All benchmarks in one table: each figure is a ratio against a reference measured in the same run.

Runs the sub-benchmarks as subprocesses with ``--json`` (and ``--quick``):

* ``bench_verify.py`` (verification engineer): batch signature verification vs ``openssl speed``
* ``bench_crl.py`` (revocation engineer): CRL load vs ``openssl crl``, revocation check vs
  pyhanko-certvalidator
* ``bench_sim.py``: simulator sessions/s vs raw RSA signing with the same key
* ``bench_cli.py``: ``jpki --version`` vs ``python3 -c pass``; a cold ``jpki revocation check``
  on a fresh 10^6-entry CRL vs ``openssl crl -inform DER -noout``
* ``bench_login.py``: logins/s (challenge, card signature, chain, revocation against a
  10^6-entry CRL) vs two RSA-2048 verifies/s

With ``--json`` and a single ``--only NAME`` whose benchmark gives one row, the output is that
row alone: ``{"name", "ours", "reference", "ratio", ...}`` (e.g. ``--only login --json``).

A missing or failing sub-benchmark is reported and skipped; the others still run.

Usage: ``python bench/run.py [--quick] [--json] [--out FILE] [--md FILE] [--only NAME ...]``.
Results go to ``--out`` (default ``bench/results/latest.json``, git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
Row = dict[str, Any]


def _verify_rows(d: dict[str, Any]) -> list[Row]:
    if "rows" in d:
        return list(d["rows"])
    rows: list[Row] = []

    def add(name: str, key: str, ref: str, ref_key: str, unit: str = "verify/s") -> None:
        if key in d and ref_key in d and d[ref_key]:
            rows.append(
                {
                    "name": name,
                    "value": d[key],
                    "unit": unit,
                    "reference": ref,
                    "reference_value": d[ref_key],
                    "ratio": d[key] / d[ref_key],
                }
            )

    add(
        "batch verification, 1 process (verify_batch)",
        "jpki_1",
        "openssl speed rsa2048 verify/s, 1 core",
        "openssl_1",
    )
    add(
        "batch verification, 1 process, native loop",
        "jpki_1_native",
        "openssl speed rsa2048 verify/s, 1 core",
        "openssl_1",
    )
    add(
        "batch verification, 2 processes (warm pool)",
        "jpki_2_warm",
        "openssl speed -multi 2 rsa2048 verify/s",
        "openssl_2",
    )
    add(
        "batch verification, 2 processes, native loop",
        "jpki_2_native_warm",
        "openssl speed -multi 2 rsa2048 verify/s",
        "openssl_2",
    )
    add(
        "batch verification, 2 threads, native loop",
        "jpki_2_threads_native",
        "openssl speed -multi 2 rsa2048 verify/s",
        "openssl_2",
    )
    add(
        "plain cryptography verify loop (for scale)",
        "crypto_1",
        "openssl speed rsa2048 verify/s, 1 core",
        "openssl_1",
    )
    return rows


def _generic_rows(d: dict[str, Any]) -> list[Row]:
    if "rows" in d:
        return list(d["rows"])
    # No row description: show every ratio the sub-benchmark reports.
    return [
        {"name": k, "value": None, "unit": "", "reference": "", "reference_value": None, "ratio": v}
        for k, v in d.items()
        if k.startswith("ratio") and isinstance(v, int | float)
    ]


#: (name, script, how to turn its JSON into rows, timeout in seconds for quick / full runs,
#: extra arguments for a full run)
BENCHES: tuple[
    tuple[str, str, Callable[[dict[str, Any]], list[Row]], tuple[int, int], tuple[str, ...]], ...
] = (
    ("verify", "bench_verify.py", _verify_rows, (300, 1200), ()),
    # 10^5 as well: bench_crl compares with pyhanko-certvalidator only up to 10^5 entries
    # (it takes seconds per validation beyond).
    ("crl", "bench_crl.py", _generic_rows, (600, 3000), ("--sizes", "100000", "1000000")),
    ("sim", "bench_sim.py", _generic_rows, (120, 600), ()),
    ("login", "bench_login.py", _generic_rows, (300, 1200), ()),
    ("cli", "bench_cli.py", _generic_rows, (300, 900), ()),
)


def run_one(
    script: Path, quick: bool, timeout: int, extra: tuple[str, ...] = ()
) -> tuple[dict[str, Any] | None, str | None]:
    """(parsed JSON, None) or (None, why it could not be measured)."""
    if not script.exists():
        return None, f"{script.name} not found (not written yet?): skipped"
    cmd = [sys.executable, str(script), "--json", *(["--quick"] if quick else extra)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, f"{script.name} took longer than {timeout} s: skipped"
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return None, f"{script.name} failed (exit {proc.returncode}): {tail}"
    for line in reversed(proc.stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict):
                return data, None
    # A sub-benchmark may print its JSON over several lines.
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return None, f"{script.name} printed no JSON object"
    return (data, None) if isinstance(data, dict) else (None, f"{script.name}: JSON not an object")


def _openssl_version() -> str:
    try:
        out = subprocess.run(["openssl", "version"], capture_output=True, text=True, check=False)
    except OSError:
        return "not found"
    return out.stdout.strip()


def _fmt(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.1f}" if abs(v) >= 10 else f"{v:.4g}"
    return str(v)


def table(rows: list[Row]) -> str:
    """A Markdown table (also readable as plain text)."""
    head = "| benchmark | value | reference (same run) | reference value | ratio | better |"
    lines = [head, "|---|---:|---|---:|---:|:-:|"]
    for r in rows:
        unit = f" {r['unit']}" if r.get("unit") else ""
        # The reference is in the value's unit unless the row names its own.
        ref_unit = r.get("reference_unit", r.get("unit"))
        ref_value = _fmt(r.get("reference_value"))
        if ref_value and ref_unit:
            ref_value += f" {ref_unit}"
        ratio = r.get("ratio")
        shown = f"**{ratio:.3g}**" if isinstance(ratio, int | float) else "n/a"
        lines.append(
            f"| {r['name']} | {_fmt(r.get('value'))}{unit} | {r.get('reference', '')} | "
            f"{ref_value} | {shown} | {_better(r)} |"
        )
    return "\n".join(lines)


def _better(row: Row) -> str:
    """Which way the ratio should go: rates (…/s) higher, times and sizes lower."""
    if "better" in row:
        return str(row["better"])
    unit = str(row.get("unit", ""))
    if not unit:
        return ""
    return "higher" if unit.endswith("/s") or "/s" in unit or "/CPU s" in unit else "lower"


def _one_row(row: Row) -> dict[str, Any]:
    """One row as ``{"name", "ours", "reference", "ratio"}`` (values, then descriptions)."""
    return {
        "name": row["name"],
        "ours": row.get("value"),
        "reference": row.get("reference_value"),
        "ratio": row.get("ratio"),
        "unit": row.get("unit", ""),
        "reference_name": row.get("reference", ""),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs (a few minutes in all)")
    ap.add_argument("--json", action="store_true", help="print the JSON result")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    ap.add_argument("--md", type=Path, default=None, help="also write a Markdown report here")
    ap.add_argument(
        "--only", nargs="*", default=None, help="run only these (verify, crl, sim, login, cli)"
    )
    args = ap.parse_args(argv)

    started = time.perf_counter()
    rows: list[Row] = []
    notes: list[str] = []
    raw: dict[str, Any] = {}
    commands: list[str] = []
    for name, script, to_rows, (t_quick, t_full), extra in BENCHES:
        if args.only and name not in args.only:
            continue
        shown = " ".join(
            ["python", f"bench/{script}", "--json", *(["--quick"] if args.quick else extra)]
        )
        commands.append(shown)
        print(f"running {shown} ...", file=sys.stderr)
        data, why = run_one(HERE / script, args.quick, t_quick if args.quick else t_full, extra)
        if data is None:
            notes.append(why or f"{script}: no result")
            raw[name] = {"error": why}
            continue
        raw[name] = data
        got = to_rows(data)
        for r in got:
            r["bench"] = name
        rows.extend(got)
        if not got:
            notes.append(f"{script} reported no ratios")

    result = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/run.py" + (" --quick" if args.quick else ""),
        "quick": args.quick,
        "sub_commands": commands,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "openssl": _openssl_version(),
        },
        "rows": rows,
        "notes": notes,
        "benches": raw,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    text = table(rows) if rows else "(no benchmark produced a figure)"
    if notes:
        text += "\n\n" + "\n".join(f"- {n}" for n in notes)
    if args.md is not None:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(
            f"# Benchmarks ({result['generated']})\n\n"
            f"`{result['command']}` on {result['machine']['cpus']} CPUs, Python "
            f"{result['machine']['python']}, {result['machine']['openssl']}. Each ratio is "
            "against a reference measured in the same run; absolute numbers drift between "
            "machines.\n\n" + text + "\n",
            encoding="utf-8",
        )
    if args.json and args.only and len(args.only) == 1 and len(rows) == 1:
        print(json.dumps(_one_row(rows[0])))
    elif args.json:
        print(json.dumps(result, indent=2))
    else:
        print(text)
        print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
