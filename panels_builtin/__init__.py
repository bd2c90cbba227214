"""The built-in panels, registered through the ``typed_panels.panels`` entry point."""
