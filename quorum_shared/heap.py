"""The cyclic garbage collector's settings for a daemon that has finished starting (the
node and the transaction manager call it just before they wait for requests).

By the time a node serves, it has imported py-evm, web3, aiohttp and pysyncobj and
loaded its chain: about 320,000 objects that the collector tracks and that live as long
as the process. Every full collection walked all of them again, about 60 ms each on the
bench machine and one every few seconds while blocks execute, so under load about 4% of a
node's CPU went to the collector, each time stopping whichever thread set it off (the
chain thread in the middle of a block, or the event loop).

``gc.freeze()`` after start-up moves those objects out of the collector's view, so a full
collection only walks what was made since. It is safe for objects that are never
garbage, which is what start-up leaves: modules, classes, functions, the loaded
configuration. Anything freed later through reference counting is freed as before; only
a cycle among start-up objects that later became garbage would stay in memory.

The young generation is also collected less often (every 10,000 new container objects,
not 700): executing a transaction creates and drops thousands of short-lived ones, most
freed by reference counting before a collection would look at them. Measured with
``python -m bench.network_bench`` (docs/benchmarks.md, "The garbage collector"): the
collector's share of a loaded node's CPU fell from about 4% to about 1%.
"""

from __future__ import annotations

import gc

#: New container objects between two young-generation collections (CPython's default is
#: 700), then 20 collections of each generation before the next one up (default 10).
THRESHOLDS = (10_000, 20, 20)


def settle_startup_heap() -> int:
    """Collect once, freeze what is left and widen the thresholds; call it once, when
    the process has finished starting. Returns how many objects are now frozen."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    return gc.get_freeze_count()
