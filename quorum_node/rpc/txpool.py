"""The ``txpool_`` namespace, shaped as geth's: sender → nonce → transaction."""

from __future__ import annotations

from typing import Any

from quorum_node.rpc import formatting as fmt
from quorum_node.rpc import params as p
from quorum_node.rpc.dispatcher import CallContext, rpc_method
from quorum_node.txpool import TransactionPool


class TxpoolNamespace:
    def __init__(self, pool: TransactionPool) -> None:
        self._pool = pool

    @rpc_method("txpool_status")
    async def status(self, params: Any, context: CallContext) -> dict[str, str]:
        p.expect_params(params, 0, 0)
        pending, queued = self._pool.content()
        return {
            "pending": hex(sum(len(txs) for txs in pending.values())),
            "queued": hex(sum(len(txs) for txs in queued.values())),
        }

    @rpc_method("txpool_content")
    async def content(self, params: Any, context: CallContext) -> dict[str, Any]:
        p.expect_params(params, 0, 0)
        pending, queued = self._pool.content()
        return {
            "pending": {
                fmt.checksum(sender): {
                    str(tx.nonce): fmt.format_transaction(tx, sender, None) for tx in txs
                }
                for sender, txs in pending.items()
            },
            "queued": {
                fmt.checksum(sender): {
                    str(tx.nonce): fmt.format_transaction(tx, sender, None) for tx in txs
                }
                for sender, txs in queued.items()
            },
        }
