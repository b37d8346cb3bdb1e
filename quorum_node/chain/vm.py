"""The virtual machine of a quorum-py chain: py-evm's Prague rules, bent for a consortium.

Three changes to the stock fork, each on one of py-evm's own seams:

* No proof of work or stake: blocks are ordered by our consensus engine, so the seal is
  never checked (py-evm's ``NoProofConsensus``).
* Free gas, as GoQuorum and Besu run private networks: the base fee is pinned to 0 for
  every block. Stock EIP-1559 would raise it by at least 1 wei after any block more than
  half full, and a network whose accounts hold no ether would then stall.
* Sub-second blocks: a block period of 50 ms puts many blocks in the same second, so a
  child's timestamp may equal its parent's (stock rules demand strictly later). The gas
  limit stays at the genesis value instead of drifting with usage.

Private transactions (GoQuorum's v = 37/38 marker, ``transactions``) execute only their
public side here (``QuorumTransactionExecutor``). For speed, transactions decoded by the
chain's builder remember that they passed ``validate()`` (``transactions.ValidatedOnce``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth.abc import (
    BlockAPI,
    BlockHeaderAPI,
    ComputationAPI,
    ReceiptAPI,
    SignedTransactionAPI,
    TransactionFieldsAPI,
    WithdrawalAPI,
)
from eth.consensus.noproof import NoProofConsensus
from eth.constants import POST_MERGE_DIFFICULTY, POST_MERGE_NONCE, POST_MERGE_OMMERS_HASH
from eth.vm.forks.cancun.state import get_total_blob_gas
from eth.vm.forks.prague import PragueVM
from eth.vm.forks.prague.headers import create_prague_header_from_parent
from eth.vm.forks.prague.state import PragueState, PragueTransactionExecutor
from eth.vm.message import Message
from eth_bloom import BloomFilter
from eth_utils import ValidationError

from quorum_node.chain.transactions import QuorumBlock, is_private
from quorum_node.chain.tries import ordered_trie_root_and_nodes

#: geth and web3.py refuse ``extraData`` longer than this without a PoA middleware.
MAX_EXTRA_DATA_BYTES = 32


def create_header_from_parent(
    parent_header: BlockHeaderAPI | None, **header_params: Any
) -> BlockHeaderAPI:
    """Prague's header builder with a constant gas limit and a zero base fee."""
    if parent_header is not None:
        header_params.setdefault("gas_limit", parent_header.gas_limit)
        header_params.setdefault("timestamp", parent_header.timestamp)
    header = create_prague_header_from_parent(parent_header, **header_params)
    return header.copy(base_fee_per_gas=0)


class QuorumTransactionExecutor(PragueTransactionExecutor):  # type: ignore[misc]
    """Public execution; for a private transaction only its public side.

    Every node, party or not, runs exactly this for a private transaction: check it,
    bump the sender's nonce, charge nothing and run no EVM. In particular the 64-byte
    payload hash of a private creation is never deployed as code. The private side runs
    later, on the party group's private state (``quorum_node.privacy``).
    """

    def __call__(self, transaction: SignedTransactionAPI) -> ComputationAPI:
        if not is_private(transaction):
            return super().__call__(transaction)
        self.validate_transaction(transaction)
        self.vm_state.increment_nonce(transaction.sender)
        untouched = Message(
            gas=transaction.gas,
            to=transaction.to,
            sender=transaction.sender,
            value=0,
            data=b"",
            code=b"",
        )
        # A computation that never ran: all gas remains, so the receipt shows 0 used.
        return self.vm_state.get_computation(
            untouched, self.vm_state.get_transaction_context(transaction)
        )


class QuorumState(PragueState):  # type: ignore[misc]
    transaction_executor_class = QuorumTransactionExecutor


class _WithReceipts:
    """A block whose ``get_receipts`` answers from memory; everything else is the block's
    (``block_requests`` included, so requests appended here land on the block)."""

    def __init__(self, block: BlockAPI, receipts: tuple[ReceiptAPI, ...]) -> None:
        self._block = block
        self._receipts = receipts

    def get_receipts(self, chaindb: Any) -> tuple[ReceiptAPI, ...]:
        return self._receipts

    def __getattr__(self, name: str) -> Any:
        return getattr(self._block, name)


class QuorumVM(PragueVM):  # type: ignore[misc]
    """Prague execution with free gas, equal timestamps allowed and no seal check."""

    fork = "quorum-prague"
    block_class = QuorumBlock
    _state_class = QuorumState
    consensus_class = NoProofConsensus
    create_header_from_parent = staticmethod(create_header_from_parent)  # type: ignore[assignment]

    def add_receipt_to_header(
        self, old_header: BlockHeaderAPI, receipt: ReceiptAPI
    ) -> BlockHeaderAPI:
        """Fold a receipt into the header without re-rooting the state.

        Stock py-evm recomputes the state root after every transaction, a leftover of
        pre-Byzantium receipts that carried it. Since Byzantium receipts carry a status
        instead, so the root is only needed once, when the block is finalised; computing
        it per transaction was most of the cost of a large block.
        """
        return old_header.copy(
            bloom=int(BloomFilter(old_header.bloom) | receipt.bloom),
            gas_used=receipt.gas_used,
        )

    def increment_blob_gas_used(
        self, old_header: BlockHeaderAPI, transaction: TransactionFieldsAPI
    ) -> BlockHeaderAPI:
        """Cancun's per-transaction step of an import, without copying the header when
        the transaction carries no blobs (none of ours do): the copy would be equal, and
        copying a header for every transaction was 2% of a follower's import."""
        blob_gas = get_total_blob_gas(transaction)
        if blob_gas == 0:
            return old_header
        return old_header.copy(blob_gas_used=old_header.blob_gas_used + blob_gas)

    def set_block_transactions_and_withdrawals(
        self,
        base_block: BlockAPI,
        new_header: BlockHeaderAPI,
        transactions: Sequence[SignedTransactionAPI],
        receipts: Sequence[ReceiptAPI],
        withdrawals: Sequence[WithdrawalAPI] | None = None,
    ) -> BlockAPI:
        """py-evm's method with the block's tries built in one pass (``tries``).

        Same roots and the same stored nodes as py-trie (property-tested), about ten
        times faster: py-trie's inserts were 5-10% of the node's time on large blocks.
        """
        header_fields: dict[str, Any] = {}
        block_fields: dict[str, Any] = {"transactions": transactions}
        tries: list[tuple[str, Sequence[Any]]] = [
            ("transaction_root", transactions),
            ("receipt_root", receipts),
        ]
        if withdrawals:
            tries.append(("withdrawals_root", withdrawals))
            block_fields["withdrawals"] = withdrawals
        for root_field, items in tries:
            root, nodes = ordered_trie_root_and_nodes([item.encode() for item in items])
            self.chaindb.persist_trie_data_dict(nodes)
            header_fields[root_field] = root
        self._known_receipts = (header_fields["receipt_root"], tuple(receipts))
        block_fields["header"] = new_header.copy(**header_fields)
        return base_block.copy(**block_fields)

    def receipts_of(self, block: BlockAPI) -> tuple[ReceiptAPI, ...]:
        """The receipts of the block this VM just built or imported: from memory when its
        receipt root is the one rooted here, else read back through the receipt trie."""
        known = getattr(self, "_known_receipts", None)
        if known is not None and known[0] == block.header.receipt_root:
            return tuple(known[1])
        return tuple(block.get_receipts(self.chaindb))

    def validate_block(self, block: BlockAPI) -> None:
        """py-evm's checks of an imported block that re-execution does not make itself:
        the header against its parent, no uncles, the state root stored.

        The transaction root is not built a third time here: executing the block rooted
        its transactions with the one-pass trie builder, and the import compared the
        resulting header, roots included, with the proposed one
        (``ChainService._execute_import``).
        """
        if not isinstance(block, self.get_block_class()):
            raise ValidationError(f"{self!r} cannot validate a block of type {block!r}")
        parent_header = self.chaindb.get_block_header_by_hash(block.header.parent_hash)
        self.validate_header(block.header, parent_header)
        if block.uncles or block.header.uncles_hash != POST_MERGE_OMMERS_HASH:
            raise ValidationError("blocks carry no uncles")
        if not self.chaindb.exists(block.header.state_root):
            raise ValidationError(f"state root {block.header.state_root.hex()} is not stored")
        self.validate_block_blobs(block)

    def process_deposit_request_data(self, block: BlockAPI) -> None:
        """Prague's deposit scan over the receipts this VM just rooted, if they are the
        block's, instead of reading every receipt back through the receipt trie (that
        read was 5% of the node's time on large blocks)."""
        known = getattr(self, "_known_receipts", None)
        if known is not None and known[0] == block.header.receipt_root:
            block = _WithReceipts(block, known[1])  # type: ignore[assignment]
        super().process_deposit_request_data(block)

    @classmethod
    def validate_header(cls, header: BlockHeaderAPI, parent_header: BlockHeaderAPI) -> None:
        if parent_header is None:
            raise ValidationError("a header can only be validated against its parent")
        if len(header.extra_data) > MAX_EXTRA_DATA_BYTES:
            raise ValidationError(
                f"extraData is {len(header.extra_data)} bytes, at most {MAX_EXTRA_DATA_BYTES}"
            )
        if header.block_number != parent_header.block_number + 1:
            raise ValidationError(
                f"block #{header.block_number} does not follow its parent "
                f"#{parent_header.block_number}"
            )
        if header.timestamp < parent_header.timestamp:
            raise ValidationError(
                f"timestamp {header.timestamp} is before its parent's {parent_header.timestamp}"
            )
        if header.gas_limit != parent_header.gas_limit:
            raise ValidationError(
                f"gas limit {header.gas_limit} differs from its parent's {parent_header.gas_limit}"
            )
        if header.gas_used > header.gas_limit:
            raise ValidationError(
                f"gas used {header.gas_used} exceeds the limit {header.gas_limit}"
            )
        if header.base_fee_per_gas != 0:
            raise ValidationError(
                f"base fee must be 0 on a free-gas network, got {header.base_fee_per_gas}"
            )
        if header.difficulty != POST_MERGE_DIFFICULTY or header.nonce != POST_MERGE_NONCE:
            raise ValidationError("difficulty and nonce must be zero")
        if header.uncles_hash != POST_MERGE_OMMERS_HASH:
            raise ValidationError("blocks carry no uncles")
