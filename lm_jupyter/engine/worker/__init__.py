"""The worker process: everything that runs only there (``python -m lm_jupyter.engine.worker``).

The main loop (``main``) drives one ``Backend`` (``backend``): llama.cpp for GGUF (``llama/``:
continuous batching, prefix cache, speculative decoding, logprobs) or mlx-lm for MLX folders
(``mlx/``). The server side never imports this package; the two processes share only the JSON
lines of engine/protocol.py.
"""
