"""Code shared by ``quorum_node`` and ``tx_manager`` that belongs to neither.

It sits below both packages: it imports nothing from either, so both may import it.
"""
