"""Python client of the Q2T API, for the node and for apps (async, aiohttp).

The contract the node relies on: ``receive`` returns None only on a 404 (this
manager is not a party, or the hash is unknown). Every other failure, an
unreachable manager, a 5xx, a malformed reply, raises ``ClientError``, so an
outage is never mistaken for "not a party" (GoQuorum issue #1574). A manager
refilling its store from its peers answers a payload it does not hold yet with
503 ``{"recovering": true}``: ``ManagerRecovering``.

Keys are base64 strings, as everywhere in Tessera's API; hashes are 64 bytes.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp

from quorum_shared.commitments import GroupCommitment
from tx_manager.commitment_messages import (
    CommitmentPage,
    CommitmentRequest,
    CommitRequest,
    CommitResponse,
    IdentityResponse,
    StoredCommitment,
)
from tx_manager.disclosure import DisclosedEnvelope
from tx_manager.disclosure_messages import (
    DiscloseRequest,
    SignDisclosureRequest,
    SignDisclosureResponse,
)
from tx_manager.errors import TxManagerError
from tx_manager.messages import (
    KeysResponse,
    PrivacyOptions,
    ReceiveManyRequest,
    ReceiveManyResponse,
    ReceiveResponse,
    SendRequest,
    SendResponse,
    SendSignedRequest,
    StoreRawRequest,
    StoreRawResponse,
    parse_key,
)
from tx_manager.payload import b64encode, parse_privacy_mode, privacy_group_id

# The node reaches the manager only through this module; the group id it computes for a
# request must be the manager's own.
__all__ = [
    "ClientError",
    "CommitmentPage",
    "CommitmentRequest",
    "DisclosedEnvelope",
    "DisclosureSignature",
    "GroupCommitment",
    "StoredCommitment",
    "ManagerRecovering",
    "ManagerRequestFailed",
    "ManagerUnavailable",
    "Q2TClient",
    "ReceiveResult",
    "RecoveryStatus",
    "SendResult",
    "SyncQ2TClient",
    "privacy_group_id",
]


class ClientError(TxManagerError):
    """Any failure talking to the manager other than a 404 on a read."""


class ManagerUnavailable(ClientError):
    """The manager could not be reached or did not answer in time."""

    http_status = 503


class ManagerRequestFailed(ClientError):
    """The manager answered with an error status; ``status`` and its message are kept."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"manager answered {status}: {message}")
        self.status = status
        self.http_status = status
        self.reason = message


class ManagerRecovering(ManagerRequestFailed):
    """The manager does not hold the payload yet and is recovering from its peers (503
    with ``"recovering": true``): no answer to "is this key a party?"; ask again later."""


@dataclass(frozen=True)
class RecoveryStatus:
    """``GET /recovery``: whether a recovery is announced or running, and how many
    envelopes peers reported resent so far (in the last recovery once it ended)."""

    recovering: bool
    received: int


@dataclass(frozen=True)
class SendResult:
    key: bytes
    managed_parties: list[str]
    sender_key: str


@dataclass(frozen=True)
class ReceiveResult:
    payload: bytes
    privacy_flag: int
    affected_contract_transactions: list[bytes]
    exec_hash: bytes
    managed_parties: list[str]
    sender_key: str
    parties: list[str]
    """Every key of the party group (privateFrom ∪ privateFor), sorted."""
    privacy_group_id: bytes
    mandatory_recipients: list[str] = field(default_factory=list)
    """Flag 2: the keys every later transaction to the contract must include."""


@dataclass(frozen=True)
class DisclosureSignature:
    """``POST /disclosures/sign``: ``signer`` (the Ed25519 identity of manager key ``key``)
    signed ``tx_manager.disclosure.disclosure_signed_bytes(digest)``; check it with
    ``tx_manager.disclosure.verify_disclosure_signature(signer, signature, digest)``."""

    key: str  # base64 X25519 manager key
    signer: bytes  # 32 bytes
    signature: bytes  # 64 bytes


def _keys(values: list[str] | tuple[str, ...] | None, what: str) -> tuple[bytes, ...]:
    return tuple(parse_key(v, what) for v in (values or ()))


def _hash_path(tx_hash: bytes) -> str:
    return quote(b64encode(tx_hash), safe="")


def operation_name(method: str, path: str) -> str:
    """``GET /transaction/{hash}`` for ``GET /transaction/q83v…``: a bounded label."""
    segments = path.split("?", 1)[0].split("/")
    if len(segments) > 2 and segments[1] == "transaction":
        segments[2] = "{hash}"
    return f"{method} {'/'.join(segments)}"


class Q2TClient:
    """One aiohttp session to one manager; use as ``async with Q2TClient(url) as tm``.

    ``base_url`` is ``http://host:port``, ``https://host:port`` or
    ``unix:/path/to/socket``. A manager serving Q2T beyond loopback requires
    mutual TLS: pass ``ssl_context`` with a client certificate, for example
    ``tx_manager.tls.q2t_client_context(cert, key, ca)``.
    """

    def __init__(
        self, base_url: str, timeout: float = 30.0, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._ssl_context = ssl_context
        self._unix_socket: str | None = None
        if base_url.startswith("unix:"):
            self._unix_socket = base_url[len("unix:") :]
            base_url = "http://localhost"
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        #: Told ``(operation, seconds)`` after every request, failed ones too (a node's
        #: metrics); ``operation`` is the method and route, ``GET /transaction/{hash}``.
        self.observer: Callable[[str, float], None] | None = None

    async def __aenter__(self) -> Q2TClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector: aiohttp.BaseConnector
            if self._unix_socket is not None:
                connector = aiohttp.UnixConnector(path=self._unix_socket)
            elif self._ssl_context is not None:
                connector = aiohttp.TCPConnector(limit=100, ssl=self._ssl_context)
            else:
                connector = aiohttp.TCPConnector(limit=100)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        not_found_is_none: bool = False,
    ) -> tuple[int, bytes] | None:
        url = self.base_url + path
        started = time.perf_counter()
        try:
            async with self._client().request(
                method, url, json=json_body, headers=headers, params=params
            ) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ManagerUnavailable(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
        finally:
            if self.observer is not None:
                self.observer(operation_name(method, path), time.perf_counter() - started)
        if status == 404 and not_found_is_none:
            return None
        if status == 503 and _is_recovering(body):
            raise ManagerRecovering(status, _error_message(body))
        if status >= 400:
            raise ManagerRequestFailed(status, _error_message(body))
        return status, body

    async def _body(self, method: str, path: str, **kwargs: Any) -> bytes:
        result = await self._request(method, path, **kwargs)
        if result is None:  # only when not_found_is_none was asked for
            raise ManagerRequestFailed(404, "not found")
        return result[1]

    async def upcheck(self) -> bool:
        """True if the manager answers its upcheck; False if it cannot be reached."""
        try:
            return (await self._body("GET", "/upcheck")).decode() == "I'm up!"
        except ClientError:
            return False

    async def version(self) -> str:
        return (await self._body("GET", "/version")).decode()

    async def send(
        self,
        payload: bytes,
        from_key: str | None,
        to: list[str],
        privacy_flag: int = 0,
        *,
        affected_contract_transactions: list[bytes] | None = None,
        exec_hash: bytes = b"",
        mandatory_recipients: list[str] | None = None,
    ) -> SendResult:
        request = SendRequest(
            payload=payload,
            to=_keys(to, "to"),
            from_key=parse_key(from_key, "from_key") if from_key else None,
            options=self._options(
                privacy_flag, affected_contract_transactions, exec_hash, mandatory_recipients
            ),
        )
        body = await self._body("POST", "/send", json_body=request.to_json())
        return _send_result(SendResponse.from_bytes(body))

    async def store_raw(
        self,
        payload: bytes,
        from_key: str | None = None,
        *,
        to: list[str] | None = None,
        privacy_flag: int = 0,
        affected_contract_transactions: list[bytes] | None = None,
        exec_hash: bytes = b"",
        mandatory_recipients: list[str] | None = None,
    ) -> bytes:
        """Encrypt and keep apart; returns the hash to sign into a transaction.

        With ``to`` (and any privacy options) the party group is fixed now, under
        the hash, and ``send_signed_tx`` must name the same; without it (as with
        Tessera) the group is chosen by ``send_signed_tx``.
        """
        request = StoreRawRequest(
            payload=payload,
            from_key=parse_key(from_key, "from_key") if from_key else None,
            to=None if to is None else _keys(to, "to"),
            options=self._options(
                privacy_flag, affected_contract_transactions, exec_hash, mandatory_recipients
            ),
        )
        body = await self._body("POST", "/storeraw", json_body=request.to_json())
        return StoreRawResponse.from_bytes(body).key

    async def send_signed_tx(
        self,
        tx_hash: bytes,
        to: list[str],
        privacy_flag: int = 0,
        *,
        affected_contract_transactions: list[bytes] | None = None,
        exec_hash: bytes = b"",
        mandatory_recipients: list[str] | None = None,
    ) -> SendResult:
        request = SendSignedRequest(
            hash=tx_hash,
            to=_keys(to, "to"),
            options=self._options(
                privacy_flag, affected_contract_transactions, exec_hash, mandatory_recipients
            ),
        )
        body = await self._body("POST", "/sendsignedtx", json_body=request.to_json())
        return _send_result(SendResponse.from_bytes(body))

    @staticmethod
    def _options(
        privacy_flag: int,
        affected: list[bytes] | None,
        exec_hash: bytes,
        mandatory: list[str] | None,
    ) -> PrivacyOptions:
        return PrivacyOptions(
            privacy_flag=parse_privacy_mode(privacy_flag),
            affected_contract_transactions=tuple(affected or ()),
            exec_hash=exec_hash,
            mandatory_recipients=_keys(mandatory, "mandatory_recipients"),
        )

    async def receive(self, tx_hash: bytes, to: str | None = None) -> ReceiveResult | None:
        """The decrypted payload and its metadata; None only if the manager answered 404."""
        params = {"to": to} if to else None
        result = await self._request(
            "GET", f"/transaction/{_hash_path(tx_hash)}", params=params, not_found_is_none=True
        )
        if result is None:
            return None
        try:
            response = ReceiveResponse.from_bytes(result[1])
        except TxManagerError as exc:
            raise ClientError(f"malformed receive response: {exc.message}") from exc
        return _receive_result(response)

    async def receive_many(
        self, tx_hashes: list[bytes], to: str | None = None
    ) -> list[ReceiveResult | None]:
        """``receive`` of several hashes in one request (``POST /transactions``), in
        order; None where the manager holds no such transaction for its keys."""
        request = ReceiveManyRequest(keys=tuple(tx_hashes), to=parse_key(to, "to") if to else None)
        body = await self._body("POST", "/transactions", json_body=request.to_json())
        try:
            response = ReceiveManyResponse.from_bytes(body)
        except TxManagerError as exc:
            raise ClientError(f"malformed receive response: {exc.message}") from exc
        if len(response.found) != len(tx_hashes):
            raise ClientError(
                f"asked for {len(tx_hashes)} transactions, got {len(response.found)} answers"
            )
        return [None if found is None else _receive_result(found) for found in response.found]

    async def receive_raw(self, tx_hash: bytes, to: str | None = None) -> bytes | None:
        headers = {"c11n-key": b64encode(tx_hash)}
        if to:
            headers["c11n-to"] = to
        result = await self._request("GET", "/receiveraw", headers=headers, not_found_is_none=True)
        return None if result is None else result[1]

    async def participants(self, tx_hash: bytes) -> list[str]:
        text = (
            await self._body("GET", f"/transaction/{_hash_path(tx_hash)}/participants")
        ).decode()
        return [key for key in text.split(",") if key]

    async def is_sender(self, tx_hash: bytes) -> bool:
        text = (await self._body("GET", f"/transaction/{_hash_path(tx_hash)}/isSender")).decode()
        return text.strip() == "true"

    async def keys(self) -> list[str]:
        body = await self._body("GET", "/keys")
        return [b64encode(k) for k in KeysResponse.from_bytes(body).keys]

    async def delete(self, tx_hash: bytes) -> bool:
        """True if deleted, False if the manager did not have it."""
        result = await self._request(
            "DELETE", f"/transaction/{_hash_path(tx_hash)}", not_found_is_none=True
        )
        return result is not None

    async def recover(self) -> int:
        """Ask the manager to request resend ALL from its peers; returns envelopes received."""
        body = await self._body("POST", "/admin/recover")
        return int(json.loads(body)["received"])

    async def commit(self, items: list[CommitmentRequest]) -> list[GroupCommitment]:
        """Have the manager sign each item for every group key it holds (durably, then
        pushed to the other members); the signed commitments, in order.

        ``ManagerRequestFailed`` with status 409 if it already signed another root for
        the same group, height and key; 400 if a group id is not its members' or the
        manager holds none of a group's keys.
        """
        request = CommitRequest(tuple(items))
        body = await self._body("POST", "/commitments", json_body=request.to_json())
        try:
            return list(CommitResponse.from_bytes(body).commitments)
        except TxManagerError as exc:
            raise ClientError(f"malformed commit response: {exc.message}") from exc

    async def commitments(
        self, after: int = 0, limit: int = 1000, wait: float = 0.0
    ) -> CommitmentPage:
        """Stored commitments (own and received) with seq > ``after``, oldest first; pass
        the page's ``next`` as ``after`` to read on. With ``wait`` (seconds, at most 30,
        below this client's timeout) the manager holds an empty page until a commitment
        is stored or the time is up."""
        params = {"after": str(after), "limit": str(limit)}
        if wait > 0:
            params["waitMs"] = str(int(wait * 1000))
        body = await self._body("GET", "/commitments", params=params)
        try:
            return CommitmentPage.from_bytes(body)
        except TxManagerError as exc:
            raise ClientError(f"malformed commitment page: {exc.message}") from exc

    async def identity(self) -> dict[str, bytes]:
        """Each manager key (base64) and the Ed25519 key its commitments are signed with."""
        body = await self._body("GET", "/identity")
        try:
            response = IdentityResponse.from_bytes(body)
        except TxManagerError as exc:
            raise ClientError(f"malformed identity response: {exc.message}") from exc
        return {b64encode(key): signer for key, signer in response.identities}

    async def disclose(
        self, tx_hash: bytes, recipient: str, from_key: str | None = None
    ) -> DisclosedEnvelope:
        """The transaction ``tx_hash`` disclosed to ``recipient`` (a base64 X25519 key,
        party or not): check and open it offline with ``tx_manager.disclosure``.

        ``ManagerRequestFailed`` with status 404 if no local key (``from_key``, if
        given) is a party to a transaction the manager holds; 400 for a bad key, a
        ``from_key`` it does not hold, or a transaction whose terms are not under its
        hash (keyed ``/storeraw`` or version 1); ``ManagerRecovering`` while recovering.
        """
        request = DiscloseRequest(
            hash=tx_hash,
            recipient=parse_key(recipient, "recipient"),
            from_key=parse_key(from_key, "from_key") if from_key else None,
        )
        body = await self._body("POST", "/disclose", json_body=request.to_json())
        try:
            disclosed = DisclosedEnvelope.from_bytes(body)
        except TxManagerError as exc:
            raise ClientError(f"malformed disclosure: {exc.message}") from exc
        if disclosed.payload_hash != tx_hash:
            raise ClientError("the manager disclosed another transaction than the one asked")
        return disclosed

    async def sign_disclosure(
        self, digest: bytes, from_key: str | None = None
    ) -> DisclosureSignature:
        """Have the identity of ``from_key`` (default: the manager's first key) sign a
        32-byte disclosure digest under the disclosure domain (never as a commitment)."""
        request = SignDisclosureRequest(
            digest=digest, from_key=parse_key(from_key, "from_key") if from_key else None
        )
        body = await self._body("POST", "/disclosures/sign", json_body=request.to_json())
        try:
            response = SignDisclosureResponse.from_bytes(body)
        except TxManagerError as exc:
            raise ClientError(f"malformed disclosure signature: {exc.message}") from exc
        return DisclosureSignature(b64encode(response.key), response.signer, response.signature)

    async def recovery(self) -> RecoveryStatus:
        """Whether the manager is recovering (``GET /recovery``), for tools that wait."""
        try:
            decoded = json.loads(await self._body("GET", "/recovery"))
            return RecoveryStatus(bool(decoded["recovering"]), int(decoded["received"]))
        except (ValueError, TypeError, KeyError) as exc:
            raise ClientError(f"malformed recovery response: {exc}") from exc


def _receive_result(response: ReceiveResponse) -> ReceiveResult:
    return ReceiveResult(
        payload=response.payload,
        privacy_flag=int(response.privacy_flag),
        affected_contract_transactions=list(response.affected_contract_transactions),
        exec_hash=response.exec_hash,
        managed_parties=[b64encode(k) for k in response.managed_parties],
        sender_key=b64encode(response.sender_key),
        parties=[b64encode(k) for k in response.parties],
        privacy_group_id=response.privacy_group_id,
        mandatory_recipients=[b64encode(k) for k in response.mandatory_recipients],
    )


def _send_result(response: SendResponse) -> SendResult:
    return SendResult(
        key=response.key,
        managed_parties=[b64encode(k) for k in response.managed_parties],
        sender_key=b64encode(response.sender_key),
    )


def _is_recovering(body: bytes) -> bool:
    try:
        decoded = json.loads(body)
    except ValueError:
        return False
    return isinstance(decoded, dict) and decoded.get("recovering") is True


def _error_message(body: bytes) -> str:
    try:
        decoded = json.loads(body)
        if isinstance(decoded, dict) and isinstance(decoded.get("error"), str):
            return decoded["error"]
    except ValueError:
        pass
    return body[:300].decode("utf-8", "replace")


class SyncQ2TClient:
    """Blocking wrapper with its own event loop, for scripts (not for use inside a loop)."""

    def __init__(
        self, base_url: str, timeout: float = 30.0, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = Q2TClient(base_url, timeout, ssl_context=ssl_context)

    def __enter__(self) -> SyncQ2TClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._loop.is_closed():
            self._loop.run_until_complete(self._client.close())
            self._loop.close()

    def _run(self, coroutine: Any) -> Any:
        return self._loop.run_until_complete(coroutine)

    def upcheck(self) -> bool:
        return bool(self._run(self._client.upcheck()))

    def send(
        self, payload: bytes, from_key: str | None, to: list[str], privacy_flag: int = 0
    ) -> SendResult:
        result: SendResult = self._run(self._client.send(payload, from_key, to, privacy_flag))
        return result

    def store_raw(
        self,
        payload: bytes,
        from_key: str | None = None,
        *,
        to: list[str] | None = None,
        privacy_flag: int = 0,
        affected_contract_transactions: list[bytes] | None = None,
        exec_hash: bytes = b"",
        mandatory_recipients: list[str] | None = None,
    ) -> bytes:
        return bytes(
            self._run(
                self._client.store_raw(
                    payload,
                    from_key,
                    to=to,
                    privacy_flag=privacy_flag,
                    affected_contract_transactions=affected_contract_transactions,
                    exec_hash=exec_hash,
                    mandatory_recipients=mandatory_recipients,
                )
            )
        )

    def send_signed_tx(self, tx_hash: bytes, to: list[str], privacy_flag: int = 0) -> SendResult:
        result: SendResult = self._run(self._client.send_signed_tx(tx_hash, to, privacy_flag))
        return result

    def receive(self, tx_hash: bytes, to: str | None = None) -> ReceiveResult | None:
        result: ReceiveResult | None = self._run(self._client.receive(tx_hash, to))
        return result

    def participants(self, tx_hash: bytes) -> list[str]:
        return list(self._run(self._client.participants(tx_hash)))

    def is_sender(self, tx_hash: bytes) -> bool:
        return bool(self._run(self._client.is_sender(tx_hash)))

    def keys(self) -> list[str]:
        return list(self._run(self._client.keys()))

    def delete(self, tx_hash: bytes) -> bool:
        return bool(self._run(self._client.delete(tx_hash)))

    def commit(self, items: list[CommitmentRequest]) -> list[GroupCommitment]:
        return list(self._run(self._client.commit(items)))

    def commitments(self, after: int = 0, limit: int = 1000, wait: float = 0.0) -> CommitmentPage:
        page: CommitmentPage = self._run(self._client.commitments(after, limit, wait))
        return page

    def identity(self) -> dict[str, bytes]:
        return dict(self._run(self._client.identity()))

    def recovery(self) -> RecoveryStatus:
        result: RecoveryStatus = self._run(self._client.recovery())
        return result

    def disclose(
        self, tx_hash: bytes, recipient: str, from_key: str | None = None
    ) -> DisclosedEnvelope:
        result: DisclosedEnvelope = self._run(self._client.disclose(tx_hash, recipient, from_key))
        return result

    def sign_disclosure(self, digest: bytes, from_key: str | None = None) -> DisclosureSignature:
        result: DisclosureSignature = self._run(self._client.sign_disclosure(digest, from_key))
        return result
