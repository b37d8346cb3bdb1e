// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title Counter
/// @notice A public contract with a value anyone may increment.
/// @dev Used by the privacy tests as the public-state target of
///      CounterCaller: a private contract may read it but not write it.
contract Counter {
    uint256 public count;

    event Incremented(address indexed by, uint256 count);

    function increment() external {
        count += 1;
        emit Incremented(msg.sender, count);
    }
}
