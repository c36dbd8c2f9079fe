"""Login throughput on one core against its lower bound, two RSA-2048 verifies.

One login here is what a relying party does per user: issue a challenge
(``LoginVerifier.issue``), then ``LoginVerifier.verify``: consume it, check the card's
auth-key signature, the chain to the test CA (caches warm: a repeat login by a known card)
and revocation against a CRL of 10^6 entries (indexed once at start-up, looked up per login).
The card's signatures are made between the two timed phases (the card's work, not ours).

Reference, measured in the same run and process: plain ``cryptography``
``public_key.verify(PKCS1v15, SHA256)`` loops, halved (a login needs at most two RSA verifies:
the card signature and, uncached, the certificate under its CA). CPU time on both sides, best
of interleaved rounds (the machine is shared).

Usage: ``python bench/bench_login.py [--quick] [--json] [--logins N] [--rounds N]
[--crl-entries N] [--profile]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from jpki.revocation.crl import Crl
from jpki.testing.crl import synthetic_crl
from jpki.testing.pki import TestPki, sample_person
from jpki.verify import LoginVerifier, MemoryChallengeStore, Policy, Status, revocation_checker


def setup(crl_entries: int) -> tuple[LoginVerifier, rsa.RSAPrivateKey, bytes, int]:
    pki = TestPki()
    person = sample_person(0)
    auth = pki.issue_auth(person=person)
    now = pki.now + timedelta(days=1)
    idp = x509.IssuingDistributionPoint(
        full_name=[x509.DirectoryName(pki.crl_dp_name(person, "auth"))],
        relative_name=None,
        only_contains_user_certs=False,
        only_contains_ca_certs=False,
        only_some_reasons=None,
        indirect_crl=False,
        only_contains_attribute_certs=False,
    )
    syn = synthetic_crl(
        crl_entries,
        pki.auth_ca.key,
        pki.auth_ca.cert.subject,
        this_update=now - timedelta(hours=1),
        next_update=now + timedelta(days=1),
        extensions=[idp],
    )
    crl = Crl.load(syn.der)
    verifier = LoginVerifier(
        MemoryChallengeStore(),
        Policy(anchors=[pki.auth_ca.jpki], revocation=revocation_checker(crls=[crl])),
        clock=lambda: now,
    )
    return verifier, auth.key, auth.der, len(crl)


def login_rate(v: LoginVerifier, key: rsa.RSAPrivateKey, cert: bytes, n: int) -> float:
    """Logins per CPU second: issue n challenges (timed), card-sign them, verify n (timed)."""
    t0 = time.process_time()
    challenges = [v.issue() for _ in range(n)]
    issue_s = time.process_time() - t0
    sigs = [key.sign(c.nonce, padding.PKCS1v15(), hashes.SHA256()) for c in challenges]
    t1 = time.process_time()
    for c, s in zip(challenges, sigs, strict=True):
        r = v.verify(c.id, s, cert)
        if r.status is not Status.VALID:
            raise SystemExit(f"login not valid: {r.reasons}")
    return n / (issue_s + time.process_time() - t1)


def rsa_verify_rate(key: rsa.RSAPrivateKey, n: int) -> float:
    pub = key.public_key()
    msg = b"x" * 32
    sig = key.sign(msg, padding.PKCS1v15(), hashes.SHA256())
    pad, h = padding.PKCS1v15(), hashes.SHA256()
    t0 = time.process_time()
    for _ in range(n):
        pub.verify(sig, msg, pad, h)
    return n / (time.process_time() - t0)


def profile(v: LoginVerifier, key: rsa.RSAPrivateKey, cert: bytes, n: int) -> None:
    import cProfile
    import pstats

    login_rate(v, key, cert, 200)
    prof = cProfile.Profile()
    prof.runcall(login_rate, v, key, cert, n)
    pstats.Stats(prof).sort_stats("tottime").print_stats(20)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short run (CI smoke)")
    ap.add_argument("--json", action="store_true", help="print JSON")
    ap.add_argument("--logins", type=int, default=None, help="logins per round")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (best kept)")
    ap.add_argument("--crl-entries", type=int, default=1_000_000)
    ap.add_argument("--profile", action="store_true", help="cProfile the login loop instead")
    args = ap.parse_args(argv)
    n = args.logins or (500 if args.quick else 2000)
    rounds = args.rounds or (2 if args.quick else 4)
    t0 = time.perf_counter()
    v, key, cert, entries = setup(args.crl_entries)
    setup_s = time.perf_counter() - t0
    if args.profile:
        profile(v, key, cert, n)
        return 0
    login_rate(v, key, cert, 100)  # warm: first login parses the certificate and the CA
    best: dict[str, float] = {}

    def keep(name: str, fn: Callable[[], float]) -> None:
        best[name] = max(best.get(name, 0.0), fn())

    for _ in range(rounds):
        keep("rsa_verify", lambda: rsa_verify_rate(key, 4 * n))
        keep("logins", lambda: login_rate(v, key, cert, n))
    bound = best["rsa_verify"] / 2
    r: dict[str, Any] = {
        "logins_per_s": round(best["logins"], 1),
        "rsa2048_verify_per_s": round(best["rsa_verify"], 1),
        "bound_logins_per_s": round(bound, 1),
        "ratio": round(best["logins"] / bound, 4),
        "crl_entries": entries,
        "logins_per_round": n,
        "rounds": rounds,
        "setup_s": round(setup_s, 1),
        "clock": "cpu",
        "rows": [
            {
                "name": f"login (issue + card signature + chain + revocation, {entries:,}-entry"
                " CRL), 1 core",
                "value": round(best["logins"], 1),
                "unit": "logins/s",
                "reference": "two RSA-2048 verifies (cryptography), 1 core",
                "reference_value": round(bound, 1),
                "ratio": round(best["logins"] / bound, 4),
            }
        ],
    }
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"CRL: {entries:,} entries; setup {setup_s:.1f} s; best of {rounds} rounds of {n}")
    print(f"logins/s (cpu, 1 core):                 {r['logins_per_s']:>10,.0f}")
    print(f"RSA-2048 verify/s (cryptography):       {r['rsa2048_verify_per_s']:>10,.0f}")
    print(f"bound: two verifies per login:          {bound:>10,.0f}")
    print(f"ratio (aim >= 0.5):                     {r['ratio']:>10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
