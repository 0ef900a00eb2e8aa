"""Built-in phantoms plugins."""
