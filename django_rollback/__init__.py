"""Save the migration state of every app per git commit and roll the database back to it."""

__version__ = "0.5.0"
