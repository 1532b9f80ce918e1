"""Models on disk, their metadata, and the worker processes that run them."""
