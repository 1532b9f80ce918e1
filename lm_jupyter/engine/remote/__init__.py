"""Remote OpenAI-compatible upstreams (vLLM, llama-server, another lm_jupyter) behind our routes.

``config`` holds where they are (the extension's ``remotes`` setting plus a JSON file that
``lmj remote add`` edits), ``health`` which of them to try, ``upstreams`` their model listings
and the failover between them, and ``turn`` one proxied generation. The server proxies them
asynchronously; no worker process is involved.
"""
