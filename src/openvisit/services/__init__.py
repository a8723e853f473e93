"""Use cases: each owns its transaction, checks access, applies domain rules and writes the audit entry."""
