"""``p2p.handshake``: the keys and frames of a link between two members, in process.

Each check is one property the Raft transport relies on: only the two holders of the
node keys derive the link's keys, a claimed identity is proven by the confirmation, and
a sealed frame cannot be altered, replayed, reordered, or moved to another link or
network.
"""

from __future__ import annotations

import os

import pytest

from quorum_node.p2p.handshake import (
    MAGIC,
    FrameRejected,
    HandshakeError,
    Hello,
    LinkKeys,
)
from quorum_node.p2p.identity import NodeKey

NETWORK = b"\x42" * 32


def node_id(key: NodeKey) -> bytes:
    return bytes.fromhex(key.node_id)


def link(
    dialler: NodeKey,
    listener: NodeKey,
    *,
    claim: bytes | None = None,
    network: bytes = NETWORK,
    listener_network: bytes = NETWORK,
) -> tuple[LinkKeys, LinkKeys]:
    """Both sides' keys for one handshake; ``claim`` is the id the dialler's hello names
    (the listener derives its keys for whoever the hello names)."""
    hello_out = Hello(claim or node_id(dialler), os.urandom(32))
    hello_back = Hello(node_id(listener), os.urandom(32))
    listener_keys = LinkKeys.derive(
        listener.shared_secret(hello_out.node_id),
        initiator=hello_out,
        responder=hello_back,
        we_initiated=False,
        network=listener_network,
    )
    dialler_keys = LinkKeys.derive(
        dialler.shared_secret(hello_back.node_id),
        initiator=hello_out,
        responder=hello_back,
        we_initiated=True,
        network=network,
    )
    return dialler_keys, listener_keys


@pytest.fixture
def keys() -> tuple[NodeKey, NodeKey, NodeKey]:
    return NodeKey(os.urandom(32)), NodeKey(os.urandom(32)), NodeKey(os.urandom(32))


def test_both_sides_derive_one_link_and_each_direction_opens(keys: tuple[NodeKey, ...]) -> None:
    alice, bob, _ = keys
    dialler, listener = link(alice, bob)
    dialler.check_confirmation(listener.confirmation())
    listener.check_confirmation(dialler.confirmation())
    assert listener.opener.open(dialler.sealer.seal(b"request_vote")) == b"request_vote"
    assert dialler.opener.open(listener.sealer.seal(b"response_vote")) == b"response_vote"


def test_a_member_claiming_another_cannot_confirm(keys: tuple[NodeKey, ...]) -> None:
    alice, bob, mallory = keys
    # Mallory dials Bob naming Alice's id: Bob derives keys for Alice, Mallory cannot.
    impostor, listener = link(mallory, bob, claim=node_id(alice))
    with pytest.raises(HandshakeError, match="does not hold the key"):
        listener.check_confirmation(impostor.confirmation())
    with pytest.raises(HandshakeError):
        impostor.check_confirmation(listener.confirmation())


def test_a_frame_altered_replayed_or_reordered_does_not_open(keys: tuple[NodeKey, ...]) -> None:
    alice, bob, _ = keys
    dialler, listener = link(alice, bob)
    first, second = dialler.sealer.seal(b"one"), dialler.sealer.seal(b"two")
    altered = bytes([first[0] ^ 1]) + first[1:]
    with pytest.raises(FrameRejected):
        listener.opener.open(altered)
    with pytest.raises(FrameRejected):
        listener.opener.open(second)  # out of order
    assert listener.opener.open(first) == b"one"
    with pytest.raises(FrameRejected):
        listener.opener.open(first)  # replayed
    assert listener.opener.open(second) == b"two"


def test_a_frame_of_one_link_does_not_open_on_another(keys: tuple[NodeKey, ...]) -> None:
    alice, bob, _ = keys
    old_dialler, _ = link(alice, bob)
    _, new_listener = link(alice, bob)  # fresh nonces: a new link between the same nodes
    with pytest.raises(FrameRejected):
        new_listener.opener.open(old_dialler.sealer.seal(b"recorded earlier"))


def test_links_of_two_networks_do_not_agree(keys: tuple[NodeKey, ...]) -> None:
    alice, bob, _ = keys
    dialler, listener = link(alice, bob, listener_network=b"\x43" * 32)
    with pytest.raises(HandshakeError):
        listener.check_confirmation(dialler.confirmation())


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"\x80\x04pickle" + bytes(96), "bad magic"),
        (MAGIC + bytes(10), "expected"),
        (MAGIC + bytes(64) + bytes(32), "not a secp256k1 public key"),
    ],
)
def test_a_hello_that_is_not_one_is_refused(frame: bytes, message: str) -> None:
    with pytest.raises(HandshakeError, match=message):
        Hello.from_bytes(frame)


def test_a_confirmation_of_the_wrong_size_is_refused(keys: tuple[NodeKey, ...]) -> None:
    alice, bob, _ = keys
    dialler, listener = link(alice, bob)
    with pytest.raises(HandshakeError, match="expected 16"):
        listener.check_confirmation(dialler.confirmation() + b"\x00")
