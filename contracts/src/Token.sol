// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title Token
/// @notice A minimal ERC-20 token, written out rather than imported so the
///         repository needs no OpenZeppelin checkout and every line is visible.
/// @dev Failures revert with reason strings (Error(string)), not custom errors,
///      so that the node's revert decoding and web3's ContractLogicError show
///      a readable message such as "Token: insufficient balance".
contract Token {
    string public name;
    string public symbol;
    uint8 public constant decimals = 18;
    uint256 public totalSupply;

    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    /// @param initialSupply Whole supply in base units (already scaled by
    ///        10**decimals), minted to the deployer.
    constructor(string memory name_, string memory symbol_, uint256 initialSupply) {
        name = name_;
        symbol = symbol_;
        totalSupply = initialSupply;
        balanceOf[msg.sender] = initialSupply;
        emit Transfer(address(0), msg.sender, initialSupply);
    }

    function transfer(address to, uint256 value) external returns (bool) {
        _transfer(msg.sender, to, value);
        return true;
    }

    function approve(address spender, uint256 value) external returns (bool) {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        require(allowed >= value, "Token: insufficient allowance");
        // An allowance of type(uint256).max means "unlimited", as in most
        // ERC-20s, so it is not written back (saves a storage write).
        if (allowed != type(uint256).max) {
            allowance[from][msg.sender] = allowed - value;
        }
        _transfer(from, to, value);
        return true;
    }

    function _transfer(address from, address to, uint256 value) private {
        require(to != address(0), "Token: transfer to the zero address");
        uint256 fromBalance = balanceOf[from];
        require(fromBalance >= value, "Token: insufficient balance");
        // Checked above, so the subtraction cannot underflow; the addition
        // cannot overflow because the sum of balances equals totalSupply.
        unchecked {
            balanceOf[from] = fromBalance - value;
            balanceOf[to] += value;
        }
        emit Transfer(from, to, value);
    }
}
