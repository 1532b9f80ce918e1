"""``python -m lm_jupyter.engine.worker``: the worker process the server starts per instance."""

from .main import main

main()
