"""Built-in physics plugins."""
