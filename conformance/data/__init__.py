"""Data bundled with the kit (core search parameter definitions), read through importlib.resources."""
