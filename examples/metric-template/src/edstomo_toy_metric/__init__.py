"""A template third-party plugin for edstomo."""
