"""Job types: a registry plus one module per type. Adding a type is one new file here."""
