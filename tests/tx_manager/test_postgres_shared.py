"""Two managers of one party on one PostgreSQL database: either serves the party's node,
and a kill -9 of one loses nothing it acknowledged."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.postgres import PrivateServer
from tests.tx_manager.conftest import ManagerFactory, wait_until
from tx_manager.client import ClientError, Q2TClient

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_two_managers_share_one_database_and_survive_a_kill9(
    managers: ManagerFactory, postgres_server: PrivateServer
) -> None:
    url = postgres_server.create_database()
    b = managers.start("b")
    first = managers.start("a1", [b], store=url)
    # The party's second manager: the same key pair, the same database.
    second = managers.create("a2", [b], store=url)
    second.config["keys"] = [
        {"public": str(first.directory / "a1.pub"), "private": str(first.directory / "a1.key")}
    ]
    second.start()
    wait_until(lambda: first.knows_key(b.public_key), 20, "a1 to learn b's key")

    acknowledged: list[bytes] = []
    enough = asyncio.Event()

    async def sender(client: Q2TClient, worker: int) -> None:
        for sequence in range(100_000):
            try:
                sent = await client.send(
                    f"burst {worker}/{sequence}".encode(), None, [b.public_key]
                )
            except ClientError:
                return  # a1 was killed under us
            acknowledged.append(sent.key)
            if len(acknowledged) >= 100:
                enough.set()

    async with Q2TClient(first.q2t, timeout=10) as client_first:
        sent = await client_first.send(b"burst one", None, [b.public_key])
        async with Q2TClient(second.q2t) as client_second:
            read = await client_second.receive(sent.key)  # sent through a1, read through a2
            assert read is not None and read.payload == b"burst one"
        workers = [asyncio.create_task(sender(client_first, i)) for i in range(8)]
        await asyncio.wait_for(enough.wait(), 60)
        first.process.kill()  # type: ignore[union-attr]  # kill -9, mid-burst
        await asyncio.gather(*workers)
    first.kill9()

    async with Q2TClient(second.q2t) as client_second:
        for tx_hash in [sent.key, *acknowledged]:
            received = await client_second.receive(tx_hash)
            assert received is not None, "a2 does not serve a payload a1 acknowledged"
            assert received.payload.startswith(b"burst ")
        # a2 goes on serving: a send through it, read back through it.
        again = await client_second.send(b"burst after", None, [b.public_key])
        assert (await client_second.receive(again.key)) is not None
