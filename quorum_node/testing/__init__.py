"""Testing private contracts on a real local network: the pytest plugin's API.

The plugin itself (``quorum_node.testing.plugin``) is registered through the
``pytest11`` entry point; tests import what they assert with from here::

    from quorum_node.testing import NOT_A_PARTY
"""

from quorum_node.testing.network import (
    NetworkShape,
    NetworkShapeError,
    NetworkStartError,
    QuorumNetworkError,
    RunningNetwork,
)
from quorum_node.testing.parties import (
    NOT_A_PARTY,
    Party,
    PrivateTransactionFailed,
    QuorumNetwork,
    ViewsDiffer,
    load_artifact,
)

__all__ = [
    "NOT_A_PARTY",
    "NetworkShape",
    "NetworkShapeError",
    "NetworkStartError",
    "Party",
    "PrivateTransactionFailed",
    "QuorumNetwork",
    "QuorumNetworkError",
    "RunningNetwork",
    "ViewsDiffer",
    "load_artifact",
]
