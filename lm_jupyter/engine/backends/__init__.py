"""Inference backends. Each runs inside a worker process, on its single inference thread."""
