"""All SQL lives here: one module per table group, the connection first, the caller owns the transaction."""
