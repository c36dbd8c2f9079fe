"""verify_batch and `jpki verify batch --executor dask://HOST:PORT` on a Dask LocalCluster of two
worker processes started here: the same results, in the same order, as in process."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from jpki.cli import main
from jpki.errors import UsageError
from jpki.testing.pki import TestPki, sample_person
from jpki.verify.batch import BatchItem, verify_batch
from jpki.verify.dask import dask_executor, parse_dask_address

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster() -> object:
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as c:
        yield c


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[BatchItem], Path]:
    d = tmp_path_factory.mktemp("dask")
    pki = TestPki(now=datetime(2026, 3, 1, tzinfo=UTC))
    signers = [pki.issue_signing(sample_person(i), label=f"dask-{i}") for i in range(3)]
    items: list[BatchItem] = []
    lines = []
    for n in range(90):
        s = signers[n % 3]
        data = f"document {n}".encode()
        sig = s.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        if n % 7 == 0:  # some invalid ones, so order matters
            sig = bytes([sig[0] ^ 1]) + sig[1:]
        items.append(BatchItem(s.der, sig, data=data))
        (d / f"c{n % 3}.der").write_bytes(s.der)
        (d / f"s{n}.sig").write_bytes(sig)
        (d / f"d{n}.txt").write_bytes(data)
        lines.append(json.dumps({"cert": f"c{n % 3}.der", "sig": f"s{n}.sig", "data": f"d{n}.txt"}))
    (d / "batch.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return items, d / "batch.jsonl"


def test_verify_batch_on_dask_same_results_and_order(
    cluster: object, batch: tuple[list[BatchItem], Path]
) -> None:
    items, _ = batch
    local = verify_batch(items, workers=1)
    address = cluster.scheduler_address  # type: ignore[attr-defined]
    with dask_executor(address.replace("tcp://", "dask://")) as ex:
        remote = verify_batch(items, ex, chunk_size=8)
    assert [r.to_dict() for r in remote] == [r.to_dict() for r in local]
    assert sum(r.status.value == "invalid" for r in remote) == 13


def test_cli_executor_dask(cluster: object, batch: tuple[list[BatchItem], Path]) -> None:
    _, manifest = batch
    url = cluster.scheduler_address.replace("tcp://", "dask://")  # type: ignore[attr-defined]
    local = CliRunner().invoke(main, ["verify", "batch", str(manifest), "--json"])
    remote = CliRunner().invoke(
        main, ["verify", "batch", str(manifest), "--executor", url, "--json"]
    )
    assert local.exit_code == remote.exit_code == 1, remote.output
    assert json.loads(remote.stdout) == json.loads(local.stdout)


def test_bad_executor_is_usage_error() -> None:
    with pytest.raises(UsageError):
        parse_dask_address("http://x:1")
    with pytest.raises(UsageError):
        parse_dask_address("dask://host")
    assert parse_dask_address("dask://127.0.0.1:8786") == "tcp://127.0.0.1:8786"
    res = CliRunner().invoke(main, ["verify", "batch", "x.jsonl", "--executor", "dask://nohost"])
    assert res.exit_code == 2
