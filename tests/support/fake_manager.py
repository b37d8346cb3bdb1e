"""A transaction manager in memory, standing in for ``tx_manager.client.Q2TClient`` in
in-process tests: ``receive`` answers from a script per payload hash (a payload, None
for a 404, or an exception to raise); ``send`` stores the payload for the group and
answers a fresh 64-byte hash; ``delete`` forgets one. Every call is recorded in order.
"""

from __future__ import annotations

import base64
import hashlib
from typing import cast

from tx_manager.client import Q2TClient, ReceiveResult, SendResult, privacy_group_id

#: Manager public keys (base64 of 32 bytes), as privateFor takes them.
KEY_A = base64.b64encode(b"\xaa" * 32).decode()
KEY_B = base64.b64encode(b"\xbb" * 32).decode()
KEY_C = base64.b64encode(b"\xcc" * 32).decode()

Answer = ReceiveResult | None | Exception


def group_of(parties: list[str]) -> bytes:
    return privacy_group_id([base64.b64decode(key) for key in parties])


def receive_result(
    payload: bytes,
    parties: list[str],
    sender_key: str = KEY_A,
    *,
    privacy_flag: int = 0,
    mandatory_recipients: list[str] | None = None,
) -> ReceiveResult:
    """What a party's manager answers for ``payload`` sent to the group ``parties``."""
    group = sorted(set(parties))
    return ReceiveResult(
        payload=payload,
        privacy_flag=privacy_flag,
        affected_contract_transactions=[],
        exec_hash=b"",
        managed_parties=[sender_key],
        sender_key=sender_key,
        parties=group,
        privacy_group_id=group_of(group),
        mandatory_recipients=sorted(mandatory_recipients or []),
    )


class FakeManager:
    base_url = "http://manager.test:9081"

    def __init__(
        self, own_key: str = KEY_A, answers: dict[bytes, list[Answer]] | None = None
    ) -> None:
        self.own_key = own_key
        self._answers: dict[bytes, list[Answer]] = dict(answers or {})
        self.asked: list[bytes] = []
        #: ("send", payload) and ("delete", hash), in call order; tests add their own.
        self.events: list[tuple[str, object]] = []
        #: (payload, hash) of every payload stored by ``send``, in order.
        self.sent: list[tuple[bytes, bytes]] = []
        self.send_failure: Exception | None = None

    def as_client(self) -> Q2TClient:
        return cast(Q2TClient, self)

    async def receive(self, tx_hash: bytes, to: str | None = None) -> ReceiveResult | None:
        self.asked.append(tx_hash)
        queue = self._answers.get(tx_hash, [None])
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def receive_many(
        self, tx_hashes: list[bytes], to: str | None = None
    ) -> list[ReceiveResult | None]:
        """As the manager's ``POST /transactions``: one answer per hash, or the whole
        request fails with the first failure."""
        answers: list[ReceiveResult | None] = []
        failure: Exception | None = None
        for tx_hash in tx_hashes:
            try:
                answers.append(await self.receive(tx_hash, to))
            except Exception as exc:  # noqa: BLE001 - the fake's scripted failures
                failure = failure or exc
        if failure is not None:
            raise failure
        return answers

    async def keys(self) -> list[str]:
        return [self.own_key]

    async def send(
        self,
        payload: bytes,
        from_key: str | None,
        to: list[str],
        privacy_flag: int = 0,
        *,
        exec_hash: bytes = b"",
        mandatory_recipients: list[str] | None = None,
    ) -> SendResult:
        self.events.append(("send", payload))
        if self.send_failure is not None:
            raise self.send_failure
        payload_hash = hashlib.sha3_512(len(self.sent).to_bytes(8, "big") + payload).digest()
        self.sent.append((payload, payload_hash))
        sender = from_key or self.own_key
        self._answers[payload_hash] = [
            receive_result(
                payload,
                [sender, *to],
                sender,
                privacy_flag=privacy_flag,
                mandatory_recipients=mandatory_recipients,
            )
        ]
        return SendResult(key=payload_hash, managed_parties=[sender], sender_key=sender)

    async def delete(self, tx_hash: bytes) -> bool:
        self.events.append(("delete", tx_hash))
        return self._answers.pop(tx_hash, None) is not None
