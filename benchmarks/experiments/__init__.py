"""Measured experiments that are kept as records rather than shipped; each folder has its README."""
