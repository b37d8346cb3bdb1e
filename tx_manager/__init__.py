"""quorum-py transaction manager: the role Tessera plays for GoQuorum (see README_SECTION.md)."""
