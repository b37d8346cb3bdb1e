import sys

from quorum_node.explorer.cli import main

sys.exit(main())
