"""Built-in quantifiers plugins."""
