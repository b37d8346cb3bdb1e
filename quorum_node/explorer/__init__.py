"""``qnet explorer``: a read-only web explorer that shows, side by side, what each
participant's node answers for the same block, transaction or contract.

The explorer is a JSON-RPC client of the network's nodes (and of each manager's
``/upcheck``): it imports nothing of the node but the shipped contract artifacts.
"""
