"""``tests/vllm`` runs only from ``make test-vllm`` (it builds a 3.5 GB venv and starts vLLM),
never as part of ``make test``: without ``LM_JUPYTER_VLLM_TESTS=1`` nothing here is collected."""

import os

if os.environ.get("LM_JUPYTER_VLLM_TESTS") != "1":
    collect_ignore_glob = ["test_*.py"]
