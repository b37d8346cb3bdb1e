// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title Opcodes
/// @notice Reaches the opcodes newer forks added, so tests can prove the node
///         runs them, and reverts in each of Solidity's three ways, so tests
///         can check revert decoding.
/// @dev pragma ^0.8.28 (not ^0.8.20 like the others) because the `transient`
///      keyword exists only from 0.8.28 on.
///        PUSH0 (Shanghai)  - in every contract built for shanghai or later.
///        MCOPY (Cancun)    - solc emits it for memory-to-memory copies of
///                            bytes, as in copyBytes(), for evm >= cancun.
///        TSTORE/TLOAD      - a `transient` variable and inline assembly.
contract Opcodes {
    /// @dev Lives in transient storage: reset to zero after every transaction.
    uint256 transient transientValue;

    /// @notice Raised by failWithCustomError(); its selector is
    ///         bytes4(keccak256("Unauthorized(address,uint256)")).
    error Unauthorized(address caller, uint256 code);

    /// @notice TSTORE then TLOAD in one call, by inline assembly; returns x + 1
    ///         read back from transient slot 0.
    function transientRoundTrip(uint256 x) external returns (uint256 y) {
        assembly {
            tstore(0, add(x, 1))
            y := tload(0)
        }
    }

    /// @notice The same through a `transient` state variable: writes x, then
    ///         reads it back; the value is gone after the transaction.
    function transientVariable(uint256 x) external returns (uint256) {
        transientValue = x;
        return transientValue;
    }

    /// @notice The value of the transient variable as a fresh call sees it:
    ///         always 0, since transient storage does not outlive a transaction.
    function readTransientVariable() external view returns (uint256) {
        return transientValue;
    }

    /// @notice Copies `data` into a new memory array (MCOPY) and returns it.
    function copyBytes(bytes memory data) external pure returns (bytes memory copy) {
        copy = new bytes(data.length);
        assembly {
            mcopy(add(copy, 0x20), add(data, 0x20), mload(data))
        }
    }

    /// @notice Concatenation, which solc compiles to MCOPY on its own.
    function concat(bytes memory a, bytes memory b) external pure returns (bytes memory) {
        return bytes.concat(a, b);
    }

    /// @notice Reverts with Error(string) "Opcodes: reason string".
    function failWithReason() external pure {
        revert("Opcodes: reason string");
    }

    /// @notice Reverts with Unauthorized(msg.sender, 42).
    function failWithCustomError() external view {
        revert Unauthorized(msg.sender, 42);
    }

    /// @notice Reverts with Panic(uint256) code 0x01 (assertion failure).
    function failWithPanic() external pure {
        assert(false);
    }
}
