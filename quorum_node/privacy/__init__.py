"""Private transactions: payloads from the transaction manager, private state per party
group, private receipts. See ARCHITECTURE.md, "A private transaction, step by step"."""
