"""Per-key rate limits shared through the service database (SQLite, and a PostgreSQL fleet)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from jpki.service.db import Database
from jpki.service.state import take_token
from pg_helpers import PgServer
from service_helpers import add_key, make_pki, process_services


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path_factory.mktemp("rate") / "s.sqlite")
    else:
        server: PgServer = request.getfixturevalue("pg_server")
        yield server.create_db("rate")


def test_two_connections_draw_from_one_bucket(url: str) -> None:
    # Two Database objects stand for two service processes; the clock is given, not read.
    a, b = Database(url), Database(url)
    try:
        now = 1_000_000.0
        got = [take_token(db, "key:k", 3, now) for db in (a, b, a, b, a, b)]
        assert [w == 0 for w in got] == [True, True, True, False, False, False]
        assert 19 < got[3] <= 20  # one token back every 20 s at 3/min
        assert take_token(b, "key:k", 3, now + 10) > 0
        assert take_token(a, "key:k", 3, now + 20.5) == 0  # refilled: one more
        assert take_token(b, "key:k", 3, now + 20.6) > 0
        assert take_token(a, "key:other", 3, now) == 0  # buckets are per key
        # A full minute later the whole burst is back, and no more than that.
        later = [take_token(db, "key:k", 3, now + 200) for db in (a, b, a, b)]
        assert [w == 0 for w in later] == [True, True, True, False]
    finally:
        a.close()
        b.close()


@pytest.mark.slow
def test_two_service_processes_share_one_limit(
    pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp("rate-fleet")
    pki = make_pki(tmp / "pki")
    db = pg_server.create_db("ratefleet")
    key = add_key(db, "slow", rate=2)
    with process_services(db, pki.trust, [["--workers=1"], ["--workers=1"]]) as members:
        (a, _pa), (b, _pb) = members
        start = time.monotonic()
        answers = [
            httpx.post(url + "/v1/challenges", headers={"X-API-Key": key}, timeout=30)
            for _ in range(3)
            for url in (a, b)
        ]
        elapsed = time.monotonic() - start
    codes = [r.status_code for r in answers]
    # 2 a minute for the key across both instances, A and B taking turns: per-process limits
    # would let all 6 through. (One token comes back per 30 s the requests took.)
    assert codes.count(200) == 2 + int(elapsed // 30), (codes, elapsed)
    assert codes[:2] == [200, 200] and set(codes) <= {200, 429}
    if elapsed < 30:
        assert codes[2:] == [429] * 4  # both instances refuse: each sees the other's use
    assert all(int(r.headers["Retry-After"]) >= 1 for r in answers if r.status_code == 429)
