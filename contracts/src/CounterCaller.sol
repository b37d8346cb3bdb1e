// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @dev The part of Counter that CounterCaller uses.
interface ICounter {
    function count() external view returns (uint256);
    function increment() external;
}

/// @title CounterCaller
/// @notice Calls into another contract at a fixed address.
/// @dev Deployed privately with a public Counter as its target, it lets the
///      privacy tests check Quorum's rule: a private transaction may read
///      public state (readTarget) but may not change it (writeTarget must
///      fail or leave the public Counter untouched).
contract CounterCaller {
    ICounter public immutable target;

    constructor(address target_) {
        target = ICounter(target_);
    }

    /// @notice The target's count, through a view call.
    function readTarget() external view returns (uint256) {
        return target.count();
    }

    /// @notice Increments the target, i.e. writes to its state.
    function writeTarget() external {
        target.increment();
    }
}
