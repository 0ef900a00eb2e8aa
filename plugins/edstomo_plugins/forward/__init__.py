"""Built-in forward plugins."""
