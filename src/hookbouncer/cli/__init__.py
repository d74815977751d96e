"""The `hookbouncer` command: one module per command group."""
