"""HTTP handlers: parse the request, call the db layer and pure domain code, shape the response."""
