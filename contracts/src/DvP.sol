// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @dev The part of ERC-20 that settlement needs.
interface IERC20 {
    function transferFrom(address from, address to, uint256 value) external returns (bool);
}

/// @title DvP
/// @notice Delivery versus payment: the security leg and the cash leg of a
///         trade move in one transaction, or neither moves.
/// @dev Both parties approve this contract on their token beforehand (seller
///      on the security token, buyer on the cash token). Atomicity comes from
///      the EVM itself: if either transferFrom reverts or returns false, the
///      whole settle() reverts and the other leg is undone with it.
///      The caller may be a third party (e.g. the venue); the approvals are
///      what authorise the movement.
contract DvP {
    /// @notice Emitted once per settled trade, with both legs.
    event Settled(
        address indexed securityToken,
        address indexed cashToken,
        address indexed seller,
        address buyer,
        uint256 securityAmount,
        uint256 cashAmount
    );

    function settle(
        address securityToken,
        address cashToken,
        address seller,
        address buyer,
        uint256 securityAmount,
        uint256 cashAmount
    ) external {
        require(seller != buyer, "DvP: seller is buyer");
        require(securityToken != cashToken, "DvP: same token on both legs");
        // Delivery: the security goes from seller to buyer ...
        require(
            IERC20(securityToken).transferFrom(seller, buyer, securityAmount),
            "DvP: security transfer failed"
        );
        // ... payment: the cash goes from buyer to seller.
        require(
            IERC20(cashToken).transferFrom(buyer, seller, cashAmount),
            "DvP: cash transfer failed"
        );
        emit Settled(securityToken, cashToken, seller, buyer, securityAmount, cashAmount);
    }
}
