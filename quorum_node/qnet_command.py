"""The ``qnet`` command as installed: the network commands of ``quorum_node.qnet.cli``,
``qnet demo`` and ``qnet explorer``.

The demo runs on qnet and checks disclosures with ``quorum_node.disclosure``, two
independent layers, so the command offering both sits above both
(docs/architecture.md); ``python -m quorum_node.qnet.cli`` is qnet without the demo.
"""

from __future__ import annotations

import argparse
import sys

from quorum_node import demo
from quorum_node.explorer import cli as explorer_cli
from quorum_node.qnet import cli as qnet_cli


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo_parser = commands.add_parser(
        "demo",
        help="three banks on a local network, and what each can see",
        description=demo.DESCRIPTION,
    )
    demo.add_arguments(demo_parser)
    demo_parser.set_defaults(handler=demo.run)
    explorer_parser = commands.add_parser(
        "explorer",
        help="a read-only web explorer: each participant's view side by side",
        description=explorer_cli.DESCRIPTION,
    )
    explorer_cli.add_arguments(explorer_parser)
    explorer_parser.set_defaults(handler=explorer_cli.run)


def main(argv: list[str] | None = None) -> int:
    return qnet_cli.main(argv, more_commands=_add_demo)


if __name__ == "__main__":
    sys.exit(main())
