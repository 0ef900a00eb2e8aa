"""The built-in edstomo plugins, registered through the ``edstomo.plugins`` entry points."""
