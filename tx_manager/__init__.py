"""quorum-py transaction manager: the role Tessera plays for GoQuorum (see docs/tx-manager.md)."""
