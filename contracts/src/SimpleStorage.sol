// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title SimpleStorage
/// @notice The contract of Quorum's 7-nodes demo: one number that anyone can set.
/// @dev Kept identical in shape to the Quorum example so that its scripts
///      (deploy with 42, call get(), send set(n)) work against this network
///      unchanged, both as a public and as a private contract.
contract SimpleStorage {
    uint256 public storedData;

    /// @notice Emitted on every write, including the constructor's, so a
    ///         client can follow the value from logs alone.
    event Stored(address indexed by, uint256 value);

    constructor(uint256 initVal) {
        storedData = initVal;
        emit Stored(msg.sender, initVal);
    }

    function set(uint256 x) external {
        storedData = x;
        emit Stored(msg.sender, x);
    }

    function get() external view returns (uint256) {
        return storedData;
    }
}
