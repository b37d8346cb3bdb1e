"""HTTP edges of the manager: ``q2t`` (local node and apps) and ``p2p`` (other managers)."""
