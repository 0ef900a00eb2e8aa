"""A template edstomo solver plugin: the projected Landweber iteration."""
