"""Changing a party group's members (docs/group-changes.md): GoQuorum's
``quorumExtension_*`` methods where their meaning fits, and ``quorum_proposeGroupChange``
/ ``quorum_getGroupChange`` for the rest. Each translates JSON to a
``GroupChangeService`` call and back.

Where the meaning differs from GoQuorum: an extension moves the contract's whole party
group (every contract of it, with its state proven against the old members' signed
roots), not one contract; a change is named by its proposal's transaction hash, not by
a management contract's address; and every current member votes, not only the new one.
"""

from __future__ import annotations

from typing import Any

from eth_typing import Address

from quorum_node.privacy.group_change import SCOPES, Scope
from quorum_node.privacy.group_change_service import GroupChangeService
from quorum_node.privacy.params import manager_key
from quorum_node.rpc import formatting as fmt
from quorum_node.rpc import params as p
from quorum_node.rpc.dispatcher import CallContext, rpc_method
from quorum_node.rpc.errors import InvalidParams, ServerError


def _tx_args(value: Any) -> tuple[Address | None, str | None, Scope]:
    """``from``, ``privateFrom`` and ``scope`` of a txArgs object."""
    if value is None:
        return None, None, "state"
    if not isinstance(value, dict):
        raise InvalidParams("txArgs: expected an object")
    sender = p.address(value["from"], "from") if value.get("from") is not None else None
    private_from = value.get("privateFrom")
    if private_from is not None:
        private_from = manager_key(private_from, "privateFrom")
    scope = value.get("scope", "state")
    if scope not in SCOPES:
        raise InvalidParams(f"scope: {scope!r} is not 'state' or 'full'")
    return sender, private_from, scope


def _keys(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidParams(f"{name}: expected a list of base64 manager keys")
    return [manager_key(key, f"{name}[{index}]") for index, key in enumerate(value)]


def _change_id(value: Any) -> bytes:
    return bytes(p.fixed_data(value, "change id", 32))


class QuorumExtensionNamespace:
    def __init__(self, changes: GroupChangeService | None) -> None:
        self._service = changes

    def _changes(self) -> GroupChangeService:
        if self._service is None:
            raise ServerError("this node has no transaction manager: no party groups to change")
        return self._service

    @rpc_method("quorumExtension_extendContract")
    async def extend_contract(self, params: Any, context: CallContext) -> str:
        """Add ``newRecipientPtmPublicKey`` to the group of contract ``toExtend``.
        (GoQuorum's third parameter, the recipient's account, is accepted and unused:
        the added party votes from any account of its own node.)"""
        contract_raw, key_raw, _recipient, args = p.expect_params(params, 2, 4)
        sender, private_from, scope = _tx_args(args)
        contract = p.address(contract_raw, "toExtend")
        added = [manager_key(key_raw, "newRecipientPtmPublicKey")]
        changes = self._changes()
        change = await changes.propose(sender, None, contract, added, [], scope, private_from)
        return fmt.hex_data(change)

    @rpc_method("quorum_proposeGroupChange")
    async def propose_group_change(self, params: Any, context: CallContext) -> str:
        """``{groupId | contract, add, remove, scope}``, ``txArgs``: the change id."""
        request, args = p.expect_params(params, 1, 2)
        if not isinstance(request, dict):
            raise InvalidParams("change: expected an object")
        sender, private_from, scope = _tx_args(args)
        if "scope" in request:
            if request["scope"] not in SCOPES:
                raise InvalidParams(f"scope: {request['scope']!r} is not 'state' or 'full'")
            scope = request["scope"]
        group_id = None
        if request.get("groupId") is not None:
            group_id = bytes(p.fixed_data(request["groupId"], "groupId", 32))
        contract = None
        if request.get("contract") is not None:
            contract = p.address(request["contract"], "contract")
        added = _keys(request.get("add"), "add")
        removed = _keys(request.get("remove"), "remove")
        changes = self._changes()
        change = await changes.propose(
            sender, group_id, contract, added, removed, scope, private_from
        )
        return fmt.hex_data(change)

    @rpc_method("quorumExtension_approveExtension")
    async def approve_extension(self, params: Any, context: CallContext) -> str:
        """Vote on a change: true approves, false rejects (and so ends it)."""
        change_raw, vote_raw, args = p.expect_params(params, 2, 3)
        sender, _private_from, _scope = _tx_args(args)
        approve = p.boolean(vote_raw, "vote")
        change_id = _change_id(change_raw)
        return fmt.hex_data(await self._changes().vote(sender, change_id, approve))

    @rpc_method("quorumExtension_cancelExtension")
    async def cancel_extension(self, params: Any, context: CallContext) -> str:
        change_raw, args = p.expect_params(params, 1, 2)
        sender, _private_from, _scope = _tx_args(args)
        change_id = _change_id(change_raw)
        return fmt.hex_data(await self._changes().cancel(sender, change_id))

    @rpc_method("quorumExtension_activeExtensionContracts")
    async def active_extensions(self, params: Any, context: CallContext) -> list[dict[str, Any]]:
        """The changes still being voted on, in GoQuorum's shape plus this node's detail."""
        p.expect_params(params, 0, 0)
        found = []
        for change in await self._changes().changes():
            if change["status"] != "voting":
                continue
            found.append(
                {
                    "managementContractAddress": change["changeId"],
                    "contractExtended": change["contract"],
                    "recipientPtmKey": (change["add"] or [None])[0],
                    "allHaveVoted": False,
                    "initiator": change["proposer"],
                    "creationData": change["changeId"],
                    **change,
                }
            )
        return found

    @rpc_method("quorumExtension_getExtensionStatus")
    async def extension_status(self, params: Any, context: CallContext) -> str:
        """GoQuorum's answer: ``ACTIVE`` while voting, ``DONE`` once activated or ended."""
        (change_raw,) = p.expect_params(params, 1, 1)
        change_id = _change_id(change_raw)
        change = await self._changes().status(change_id)
        if change is None:
            raise ServerError("no such extension: this node is not a party of that change")
        return "ACTIVE" if change["status"] == "voting" else "DONE"

    @rpc_method("quorum_getGroupChange")
    async def get_group_change(self, params: Any, context: CallContext) -> dict[str, Any] | None:
        """Everything this node holds of a change: votes, status, H, the hand-over."""
        (change_raw,) = p.expect_params(params, 1, 1)
        change_id = _change_id(change_raw)
        return await self._changes().status(change_id)

    @rpc_method("quorum_groupChanges")
    async def group_changes(self, params: Any, context: CallContext) -> list[dict[str, Any]]:
        p.expect_params(params, 0, 0)
        return await self._changes().changes()
