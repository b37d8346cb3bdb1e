"""Private transactions: the use cases (``service``), payloads from the transaction
manager (``payloads``), private state per party group (``state``, ``processor``,
``store``). See docs/architecture.md, "The life of a private transaction"."""
