"""The ``vpccni`` command: argument parsing, rendering and error reporting around the core."""
