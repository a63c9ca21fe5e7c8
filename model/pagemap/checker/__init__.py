"""The explicit-state checker: scenarios, exploration, invariants, traces."""
