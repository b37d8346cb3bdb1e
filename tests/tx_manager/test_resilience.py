"""Durability under kill -9, recovery of a wiped database, and mutual TLS."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from tests.support.pki import make_ca, make_cert
from tests.tx_manager.conftest import Manager, ManagerFactory, http, wait_until
from tx_manager.client import ClientError, Q2TClient
from tx_manager.tls import PinningConnector

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def pair(managers: ManagerFactory, **settings: object) -> tuple[Manager, Manager]:
    b = managers.start("b", **settings)
    a = managers.start("a", [b], **settings)
    wait_until(lambda: a.knows_key(b.public_key) and b.knows_key(a.public_key), 20, "a and b")
    return a, b


async def _readable_everywhere(hashes: list[bytes], *managers: Manager) -> None:
    for manager in managers:
        async with Q2TClient(manager.q2t) as client:
            for tx_hash in hashes:
                received = await client.receive(tx_hash)
                assert received is not None, f"{manager.name} lost an acknowledged send"
                assert received.payload.startswith(b"burst ")


async def test_kill9_during_burst_loses_no_acknowledged_send(managers: ManagerFactory) -> None:
    a, b = pair(managers)
    acknowledged: list[bytes] = []
    enough = asyncio.Event()

    async def sender(client: Q2TClient, worker: int) -> None:
        for sequence in range(100_000):
            try:
                sent = await client.send(
                    f"burst {worker}/{sequence}".encode(), None, [b.public_key]
                )
            except ClientError:
                return  # the processes were killed under us
            acknowledged.append(sent.key)
            if len(acknowledged) >= 300:
                enough.set()

    async with Q2TClient(a.q2t, timeout=10) as client:
        workers = [asyncio.create_task(sender(client, i)) for i in range(16)]
        await asyncio.wait_for(enough.wait(), 60)
        a.process.kill()  # type: ignore[union-attr]  # both at once, mid-burst
        b.process.kill()  # type: ignore[union-attr]
        await asyncio.gather(*workers)
    a.kill9()
    b.kill9()
    assert len(acknowledged) >= 300
    b.start()
    a.start()
    await _readable_everywhere(acknowledged, a, b)


def _wipe(manager: Manager) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(str(manager.db_path) + suffix).unlink(missing_ok=True)


async def test_wiped_database_is_recovered_from_peers(managers: ManagerFactory) -> None:
    a, b = pair(managers)
    hashes: list[bytes] = []
    async with Q2TClient(a.q2t) as client_a, Q2TClient(b.q2t) as client_b:
        for i in range(5):
            hashes.append((await client_a.send(f"burst a{i}".encode(), None, [b.public_key])).key)
            hashes.append((await client_b.send(f"burst b{i}".encode(), None, [a.public_key])).key)
    a.stop()
    _wipe(a)
    a.start("--no-recover")
    async with Q2TClient(a.q2t) as client_a:
        assert await client_a.receive(hashes[0]) is None
    resend = subprocess.run(
        [sys.executable, "-m", "tx_manager.cli", "resend", "--config", str(a.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert resend.returncode == 0, resend.stderr
    assert "recovered 10 envelopes" in resend.stdout
    await _readable_everywhere(hashes, a)
    async with Q2TClient(a.q2t) as client_a:
        assert await client_a.is_sender(hashes[0])  # a sent it: it got its sender view back

    # Again, this time through the automatic recovery of an empty store at start.
    a.stop()
    _wipe(a)
    a.config["recover"] = "if-empty"
    a.start()

    def recovered() -> bool:
        status, _, _ = http("GET", f"{a.q2t}/transaction/{hashes[-1].hex()}")
        return status == 200

    wait_until(recovered, 20, "automatic recovery")
    await _readable_everywhere(hashes, a)


@pytest.fixture
def certificates(tmp_path: Path) -> dict[str, tuple[Path, Path, str]]:
    directory = tmp_path / "pki"
    directory.mkdir()
    make_ca(directory, "ca")
    make_ca(directory, "rogue-ca")
    certs = {name: make_cert(directory, name, "ca") for name in ("a", "b", "c")}
    certs["rogue"] = make_cert(directory, "rogue", "rogue-ca")
    certs["ca"] = (directory / "ca.pem", directory / "ca.key", "")
    return certs


def _tls(
    certs: dict[str, tuple[Path, Path, str]], name: str, mode: str, allow: list[str]
) -> dict[str, object]:
    pem, key, _ = certs[name]
    settings: dict[str, object] = {
        "mode": mode,
        "cert": str(pem),
        "key": str(key),
        "ca": str(certs["ca"][0]),
    }
    if allow:
        settings["allowed_fingerprints"] = [certs[n][2] for n in allow]
    return settings


def _get_with_cert(url: str, ca: Path, cert: tuple[Path, Path, str] | None) -> int:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    with urllib.request.urlopen(url, context=context, timeout=10) as response:
        return int(response.status)


def _send_when_known(sender: Manager, recipient: Manager) -> None:
    def sent() -> bool:
        status, _ = sender.send(b"over tls", [recipient.public_key])
        return status == 201

    wait_until(sent, 20, f"{sender.name} to send to {recipient.name} over TLS")


def _start_tls_pair(
    managers: ManagerFactory, certs: dict[str, tuple[Path, Path, str]], mode: str, allow: list[str]
) -> tuple[Manager, Manager]:
    b = managers.start("b", tls=_tls(certs, "b", mode, allow))
    a = managers.start("a", [b], tls=_tls(certs, "a", mode, allow))
    assert a.p2p.startswith("https://")
    return a, b


def test_mutual_tls_with_a_ca(
    managers: ManagerFactory, certificates: dict[str, tuple[Path, Path, str]]
) -> None:
    a, b = _start_tls_pair(managers, certificates, "ca", [])
    _send_when_known(a, b)
    ca = certificates["ca"][0]
    assert _get_with_cert(a.p2p + "/upcheck", ca, certificates["c"]) == 200
    with pytest.raises(OSError):
        _get_with_cert(a.p2p + "/upcheck", ca, certificates["rogue"])
    with pytest.raises(OSError):
        _get_with_cert(a.p2p + "/upcheck", ca, None)
    with pytest.raises(OSError):
        http("GET", a.p2p.replace("https://", "http://") + "/upcheck")


async def test_mutual_tls_with_fingerprint_allow_list(
    managers: ManagerFactory, certificates: dict[str, tuple[Path, Path, str]]
) -> None:
    a, b = _start_tls_pair(managers, certificates, "allowlist", ["a", "b"])
    _send_when_known(a, b)
    ca = certificates["ca"][0]
    # c's certificate is signed by the same CA but is not on the list: refused.
    with pytest.raises(urllib.error.HTTPError) as refused:
        _get_with_cert(a.p2p + "/upcheck", ca, certificates["c"])
    assert refused.value.code == 403
    with pytest.raises(OSError):
        _get_with_cert(a.p2p + "/upcheck", ca, certificates["rogue"])
    # The outbound side pins too: a client that allows only c refuses b's server.
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(certificates["a"][0]), str(certificates["a"][1]))
    connector = PinningConnector(frozenset({certificates["c"][2]}), ssl=context)
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.get(b.p2p + "/upcheck"):
                pass
    assert os.path.exists(a.db_path)
