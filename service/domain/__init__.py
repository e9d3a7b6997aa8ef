"""Pure decisions: no I/O, no clock, no randomness (time, ids and random bytes are parameters)."""
