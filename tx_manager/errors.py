"""Every failure the transaction manager reports, as one exception tree.

The HTTP edge maps ``http_status`` to the response code, so handlers raise
these and never build error responses themselves. Messages name the check
that failed and the key or hash involved, never a payload or a private key.
"""

from __future__ import annotations


class TxManagerError(Exception):
    """Root of every error this package raises on purpose."""

    http_status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(TxManagerError):
    """A request is malformed: bad JSON, bad base64, a missing or mistyped field."""

    http_status = 400


class UnsupportedMediaType(BadRequest):
    http_status = 415


class NotFound(TxManagerError):
    """The hash is unknown here, or no local key is a party to it."""

    http_status = 404


class Recovering(TxManagerError):
    """A payload is not held here while the store is being refilled from peers (a
    resend ALL in progress): unlike a 404, this is no answer to "is this key a party?".
    Answered 503 with ``"recovering": true``; the caller asks again later."""

    http_status = 503


class EnvelopeDecodeError(BadRequest):
    """Bytes that claim to be an envelope (or raw transaction) do not decode."""


class EnvelopeRejected(TxManagerError):
    """A well-formed envelope that this manager refuses to store."""

    http_status = 422


class HashMismatch(EnvelopeRejected):
    """The hash announced with an envelope is not the hash the envelope itself yields."""


class EnvelopeConflict(TxManagerError):
    """A push disagrees with what is stored for the same transaction; nothing was changed.

    Raised when the stored copy's authenticated header (or, for version 1, its
    group and metadata) differs from the pushed one, or when the push would add
    a box for a key outside the authenticated group.
    """

    http_status = 409

    def __init__(self, tx_hash_b64: str, reason: str) -> None:
        super().__init__(f"push conflicts with stored transaction {tx_hash_b64}: {reason}")
        self.tx_hash_b64 = tx_hash_b64
        self.reason = reason


class DecryptionFailed(TxManagerError):
    """A cryptographic check failed: an AEAD tag, the key commitment or the header MAC."""

    http_status = 422


class UnknownRecipient(TxManagerError):
    """No known manager holds this public key, so nothing can be sent to it."""

    http_status = 404

    def __init__(self, key_b64: str) -> None:
        super().__init__(f"recipient key {key_b64} is not held by any known manager")
        self.key_b64 = key_b64


class RecipientUnreachable(TxManagerError):
    """A recipient's manager did not acknowledge a push; the whole send failed."""

    http_status = 502

    def __init__(self, key_b64: str, url: str, reason: str) -> None:
        super().__init__(f"recipient key {key_b64} at {url} did not acknowledge: {reason}")
        self.key_b64 = key_b64
        self.url = url


class PeerRequestFailed(TxManagerError):
    """A call to another manager's P2P API failed (unreachable, refused, bad reply)."""

    http_status = 502

    def __init__(self, url: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"peer {url}: {reason}")
        self.url = url
        self.status = status


class KeyFileError(TxManagerError):
    """A key file is missing, unreadable or malformed."""


class WrongPassword(KeyFileError):
    """A locked key file did not open with the password given."""


class ManagerConfigError(TxManagerError):
    """The configuration file is missing, unreadable or inconsistent."""


class RequestTooLarge(BadRequest):
    """A request body is larger than ``max_body_bytes``."""

    http_status = 413


class RateLimited(TxManagerError):
    """A caller sent more requests to a limited endpoint than its token bucket allows."""

    http_status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreError(TxManagerError):
    """The durable store failed; the operation was not acknowledged."""

    http_status = 503


class CommitmentConflict(TxManagerError):
    """A commitment for a root other than the one this manager already signed for the
    same group, height and member: an honest manager never signs two (equivocation)."""

    http_status = 409


class BindingRejected(TxManagerError):
    """A pushed commitment's binding tag does not prove that its member's holder vouches
    for its signer; nothing was stored."""

    http_status = 403


class DisclosureFormatError(BadRequest):
    """A disclosed envelope's JSON is not well formed (a field missing, mistyped or of the
    wrong size)."""


class DisclosureCheckFailed(TxManagerError):
    """A disclosed payload failed one of the checks that tie it to its on-chain hash.

    ``step`` names the check: ``"envelope-hash"``, ``"terms"``, ``"key-unwrap"``,
    ``"key-commitment"`` or ``"decrypt"`` (see ``tx_manager.disclosure.open_disclosed``).
    """

    http_status = 422

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step
        self.message = message
