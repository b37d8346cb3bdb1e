"""web3.py's own conformance suites (``web3._utils.module_testing``) against a real node.

web3.py runs these classes against geth in its ``tests/integration/go_ethereum``; here
they run against ``quorum-node dev`` processes (one for the sync suites, one for the
async ones) whose chain ``web3_chain.prepare_chain`` sets up the way web3.py's geth
fixture is set up. Tests that cannot apply to a quorum-py node are marked xfail with the
reason (see docs/web3-conformance.md); anything else that fails is a bug of ours.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import AsyncHTTPProvider, AsyncWeb3, Web3
from web3._utils.module_testing import (
    AsyncEthModuleTest,
    AsyncNetModuleTest,
    EthModuleTest,
    NetModuleTest,
    Web3ModuleTest,
)
from web3._utils.module_testing.utils import RequestMocker
from web3._utils.module_testing.web3_module import AsyncWeb3ModuleTest
from web3.contract import AsyncContract, Contract
from web3.types import BlockData

from tests.node.web3_chain import CONTRACTS, PreparedChain, prepare_chain
from tests.support.node_process import TEST_KEYS, WEB3_TEST_KEY, NodeProcess, rpc, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEYFILE_ACCOUNT = Web3.to_checksum_address("0xdC544d1AA88Ff8bbd2F2AeC754B1F1e99e1812fd")
CLIENT_VERSION_PREFIX = "quorum-py/"
#: The chain id of web3.py's geth fixture genesis; ``test_eth_chain_id`` expects it.
GETH_FIXTURE_CHAIN_ID = 131277322940537


# --- the node and its chain --------------------------------------------------------


@dataclass
class _ChainPool:
    """Prepared nodes by chain group; every node started is stopped with the pool."""

    tmp_path_factory: pytest.TempPathFactory
    nodes: dict[str, NodeProcess] = field(default_factory=dict)
    prepared: dict[str, PreparedChain] = field(default_factory=dict)

    def get(self, group: str) -> tuple[NodeProcess, PreparedChain]:
        if group not in self.nodes:
            node = NodeProcess(
                self.tmp_path_factory.mktemp(f"web3-{group}") / "data",
                keys=[WEB3_TEST_KEY, *TEST_KEYS],
                extra_args=["--chain-id", str(GETH_FIXTURE_CHAIN_ID)],
            )
            self.nodes[group] = node  # before start: stopped even if setup fails
            node.start()
            setup_w3 = Web3(Web3.HTTPProvider(node.http_url, request_kwargs={"timeout": 30}))
            self.prepared[group] = prepare_chain(setup_w3, KEYFILE_ACCOUNT)
        return self.nodes[group], self.prepared[group]

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()


@pytest.fixture(scope="module")
def chain_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_ChainPool]:
    """The sync suites share one node and the async suites another.

    The Eth suites leave state behind that the same test of the other suite would read
    back (the EIP-7702 test leaves storage in the keyfile account), as web3.py gives each
    geth run a fresh copy of its data directory for the same reason.
    """
    pool = _ChainPool(tmp_path_factory)
    try:
        yield pool
    finally:
        pool.stop()


@pytest.fixture(scope="class")
def web3_node(request: pytest.FixtureRequest, chain_pool: _ChainPool) -> NodeProcess:
    """The node of the requesting class's ``chain_group``: a dev node that holds (and
    funded at genesis) web3.py's keyfile account, with the suites' contracts deployed."""
    return chain_pool.get(str(request.cls.chain_group))[0]


@pytest.fixture(scope="class")
def prepared(request: pytest.FixtureRequest, chain_pool: _ChainPool) -> PreparedChain:
    return chain_pool.get(str(request.cls.chain_group))[1]


@pytest.fixture(autouse=True)
def drained_pool(web3_node: NodeProcess) -> None:
    """Start each test with no executable transaction waiting in the node's pool.

    Some suite tests send a transaction and return without waiting for it; the next
    test reading the ``latest`` nonce of the same account would then race with it.
    web3.py avoids this against geth by starting every test from a fresh data directory.
    """

    def drained() -> bool:
        status = rpc(web3_node.http_url, "txpool_status")["result"]
        return int(status["pending"], 16) == 0

    wait_until(drained, timeout=10, what="the node's pending transactions to be mined")


@pytest.fixture(scope="class")
def w3(web3_node: NodeProcess) -> Web3:
    return Web3(Web3.HTTPProvider(web3_node.http_url, request_kwargs={"timeout": 30}))


def _contract(w3: Web3, prepared: PreparedChain, name: str) -> Contract:
    data = CONTRACTS[name]
    return w3.eth.contract(address=prepared.contract_addresses[name], abi=data["abi"])


@pytest.fixture(scope="class")
def keyfile_account_address(prepared: PreparedChain) -> ChecksumAddress:
    return prepared.account


@pytest.fixture(scope="class")
def keyfile_account_address_dual_type(keyfile_account_address: ChecksumAddress) -> ChecksumAddress:
    return keyfile_account_address


@pytest.fixture(scope="class")
def keyfile_account_pkey() -> str:
    return "0x" + WEB3_TEST_KEY.hex()


@pytest.fixture(scope="class")
def math_contract(w3: Web3, prepared: PreparedChain) -> Contract:
    return _contract(w3, prepared, "math")


@pytest.fixture(scope="class")
def math_contract_address(math_contract: Contract) -> ChecksumAddress:
    return math_contract.address


@pytest.fixture(scope="class")
def math_contract_deploy_txn_hash(prepared: PreparedChain) -> HexBytes:
    return prepared.math_deploy_txn_hash


@pytest.fixture(scope="class")
def emitter_contract(w3: Web3, prepared: PreparedChain) -> Contract:
    return _contract(w3, prepared, "emitter")


@pytest.fixture(scope="class")
def emitter_contract_address(emitter_contract: Contract) -> ChecksumAddress:
    return emitter_contract.address


@pytest.fixture(scope="class")
def revert_contract(w3: Web3, prepared: PreparedChain) -> Contract:
    return _contract(w3, prepared, "revert")


@pytest.fixture(scope="class")
def offchain_lookup_contract(w3: Web3, prepared: PreparedChain) -> Contract:
    return _contract(w3, prepared, "offchain_lookup")


@pytest.fixture(scope="class")
def panic_errors_contract(w3: Web3, prepared: PreparedChain) -> Contract:
    return _contract(w3, prepared, "panic_errors")


@pytest.fixture(scope="class")
def storage_contract(w3: Web3, prepared: PreparedChain) -> Contract:
    return _contract(w3, prepared, "storage")


@pytest.fixture(scope="class")
def empty_block(prepared: PreparedChain) -> BlockData:
    return prepared.empty_block


@pytest.fixture(scope="class")
def block_with_txn(prepared: PreparedChain) -> BlockData:
    return prepared.block_with_txn


@pytest.fixture(scope="class")
def mined_txn_hash(prepared: PreparedChain) -> HexBytes:
    return prepared.mined_txn_hash


@pytest.fixture(scope="class")
def block_with_txn_with_log(prepared: PreparedChain) -> BlockData:
    return prepared.block_with_txn_with_log


@pytest.fixture(scope="class")
def txn_hash_with_log(prepared: PreparedChain) -> HexBytes:
    return prepared.txn_hash_with_log


@pytest.fixture
def skip_if_testrpc() -> Callable[[Web3], None]:
    """web3.py skips some tests on its in-process tester; a real node never skips."""
    return lambda w3: None


@pytest.fixture
def async_skip_if_testrpc() -> Callable[[AsyncWeb3[Any]], None]:
    return lambda async_w3: None


@pytest.fixture
def request_mocker() -> type[RequestMocker]:
    return RequestMocker


# --- async -------------------------------------------------------------------------


@pytest_asyncio.fixture
async def async_w3(
    web3_node: NodeProcess, prepared: PreparedChain
) -> AsyncIterator[AsyncWeb3[Any]]:
    """One per test: an aiohttp session belongs to the event loop of the test using it."""
    provider = AsyncHTTPProvider(web3_node.http_url)
    async_w3 = AsyncWeb3(provider)
    try:
        yield async_w3
    finally:
        await provider.disconnect()


def _async_contract(async_w3: AsyncWeb3[Any], prepared: PreparedChain, name: str) -> AsyncContract:
    data = CONTRACTS[name]
    return async_w3.eth.contract(address=prepared.contract_addresses[name], abi=data["abi"])


@pytest.fixture
def async_keyfile_account_address(prepared: PreparedChain) -> ChecksumAddress:
    return prepared.account


@pytest.fixture
def async_keyfile_account_address_dual_type(prepared: PreparedChain) -> ChecksumAddress:
    return prepared.account


@pytest.fixture
def async_math_contract(async_w3: AsyncWeb3[Any], prepared: PreparedChain) -> AsyncContract:
    return _async_contract(async_w3, prepared, "math")


@pytest.fixture
def async_math_contract_address(prepared: PreparedChain) -> ChecksumAddress:
    return prepared.contract_addresses["math"]


@pytest.fixture
def async_emitter_contract(async_w3: AsyncWeb3[Any], prepared: PreparedChain) -> AsyncContract:
    return _async_contract(async_w3, prepared, "emitter")


@pytest.fixture
def async_emitter_contract_address(prepared: PreparedChain) -> ChecksumAddress:
    return prepared.contract_addresses["emitter"]


@pytest.fixture
def async_revert_contract(async_w3: AsyncWeb3[Any], prepared: PreparedChain) -> AsyncContract:
    return _async_contract(async_w3, prepared, "revert")


@pytest.fixture
def async_offchain_lookup_contract(
    async_w3: AsyncWeb3[Any], prepared: PreparedChain
) -> AsyncContract:
    return _async_contract(async_w3, prepared, "offchain_lookup")


@pytest.fixture
def async_panic_errors_contract(async_w3: AsyncWeb3[Any], prepared: PreparedChain) -> AsyncContract:
    return _async_contract(async_w3, prepared, "panic_errors")


@pytest.fixture
def async_storage_contract(async_w3: AsyncWeb3[Any], prepared: PreparedChain) -> AsyncContract:
    return _async_contract(async_w3, prepared, "storage")


@pytest.fixture
def async_empty_block(prepared: PreparedChain) -> BlockData:
    return prepared.empty_block


@pytest.fixture
def async_block_with_txn(prepared: PreparedChain) -> BlockData:
    return prepared.block_with_txn


@pytest.fixture
def async_block_with_txn_with_log(prepared: PreparedChain) -> BlockData:
    return prepared.block_with_txn_with_log


# --- the suites ----------------------------------------------------------------------

FREE_GAS = "free-gas network, as GoQuorum: eth_gasPrice is 0 and the suite expects a positive price"
NEEDS_PENDING = (
    "needs the transaction to stay pending for a while: web3.py runs geth with 3-second dev "
    "blocks, while the solo engine seals a waiting transaction within 50 ms (racy, so "
    "not strict)"
)
TESTER_ONLY_ERROR = (
    "expects the Web3ValueError web3.py's in-process eth-tester raises; over JSON-RPC the node "
    "refuses the message with -32602 and the same text, which web3.py raises as Web3RPCError "
    "(web3.py xfails it against geth too)"
)
NO_SIMULATE = "eth_simulateV1 (multi-block simulation) is not implemented by quorum-py yet"
WEB3_ASYNC_TYPED_DATA_BUG = (
    "web3.py 8.0.0 bug: AsyncEth.sign_typed_data formats its input with "
    "async_map_if_collection, which unpacks dict.values() as pairs (web3/_utils/abi.py), "
    "so the request never reaches the node"
)


def expected_failure(suite: type, name: str, reason: str, *, strict: bool = True) -> Any:
    """``suite.name`` marked xfail in our subclass, without marking web3.py's own function.

    The wrapper keeps the original signature (pytest reads fixtures through
    ``__wrapped__``) and a copy of its marks (parametrize, asyncio).
    """
    original = getattr(suite, name)
    if inspect.iscoroutinefunction(original):

        async def async_test(*args: Any, **kwargs: Any) -> Any:
            return await original(*args, **kwargs)

        test: Any = functools.wraps(original)(async_test)
    else:

        def sync_test(*args: Any, **kwargs: Any) -> Any:
            return original(*args, **kwargs)

        test = functools.wraps(original)(sync_test)
    test.pytestmark = list(getattr(original, "pytestmark", []))
    return pytest.mark.xfail(reason=reason, strict=strict)(test)


_PENDING_TESTS = (
    "test_eth_replace_transaction_legacy",
    "test_eth_replace_transaction",
    "test_eth_replace_transaction_underpriced",
    "test_eth_replace_transaction_incorrect_nonce",
    "test_eth_replace_transaction_gas_price_too_low",
    "test_eth_replace_transaction_gas_price_defaulting_minimum",
    "test_eth_replace_transaction_gas_price_defaulting_strategy_higher",
    "test_eth_replace_transaction_gas_price_defaulting_strategy_lower",
    "test_eth_modify_transaction_legacy",
    "test_eth_modify_transaction",
    "test_eth_get_transaction_receipt_unmined",
    "test_eth_wait_for_transaction_receipt_unmined",
)


class TestEthModule(EthModuleTest):
    chain_group = "sync"
    test_eth_gas_price = expected_failure(EthModuleTest, "test_eth_gas_price", FREE_GAS)
    test_eth_simulate_v1 = expected_failure(EthModuleTest, "test_eth_simulate_v1", NO_SIMULATE)
    test_invalid_eth_sign_typed_data = expected_failure(
        EthModuleTest, "test_invalid_eth_sign_typed_data", TESTER_ONLY_ERROR
    )


class TestNetModule(NetModuleTest):
    chain_group = "sync"


class TestWeb3Module(Web3ModuleTest):
    chain_group = "sync"

    def _check_web3_client_version(self, client_version: str) -> None:
        assert client_version.startswith(CLIENT_VERSION_PREFIX)


class TestAsyncEthModule(AsyncEthModuleTest):
    chain_group = "async"
    test_eth_gas_price = expected_failure(AsyncEthModuleTest, "test_eth_gas_price", FREE_GAS)
    test_eth_simulate_v1 = expected_failure(AsyncEthModuleTest, "test_eth_simulate_v1", NO_SIMULATE)
    test_eth_sign_typed_data = expected_failure(
        AsyncEthModuleTest, "test_eth_sign_typed_data", WEB3_ASYNC_TYPED_DATA_BUG
    )
    test_invalid_eth_sign_typed_data = expected_failure(
        AsyncEthModuleTest, "test_invalid_eth_sign_typed_data", WEB3_ASYNC_TYPED_DATA_BUG
    )


for _name in _PENDING_TESTS:
    setattr(
        TestEthModule, _name, expected_failure(EthModuleTest, _name, NEEDS_PENDING, strict=False)
    )
    # The async suite names most of these test_async_eth_*, and a few test_eth_*.
    _async_name = _name.replace("test_eth_", "test_async_eth_")
    if not hasattr(AsyncEthModuleTest, _async_name):
        _async_name = _name
    setattr(
        TestAsyncEthModule,
        _async_name,
        expected_failure(AsyncEthModuleTest, _async_name, NEEDS_PENDING, strict=False),
    )


class TestAsyncNetModule(AsyncNetModuleTest):
    chain_group = "async"


class TestAsyncWeb3Module(AsyncWeb3ModuleTest):
    chain_group = "async"

    def _check_web3_client_version(self, client_version: str) -> None:
        assert client_version.startswith(CLIENT_VERSION_PREFIX)
