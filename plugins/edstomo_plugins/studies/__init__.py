"""Built-in studies plugins."""
