"""Built-in solvers plugins."""
