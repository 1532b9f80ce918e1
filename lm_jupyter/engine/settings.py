"""The model manager's settings, declared once as traitlets.

``ModelManager`` inherits them and is created as a child of the server extension, so Jupyter's
config files and command line set them as ``ModelManager.<name>`` (``--ModelManager.threads=4``)
and ``jupyter server --help-all`` lists them; a new setting is one trait here.
"""

from __future__ import annotations

from traitlets import Bool, Enum, Float, Integer, Unicode
from traitlets.config import LoggingConfigurable


class ManagerSettings(LoggingConfigurable):
    default_context_length = Integer(
        4096, help="Context length for models loaded without an explicit one.", config=True
    )
    jit_loading = Bool(
        True,
        help="Load a model a request names just in time when it is not loaded (LM Studio's JIT "
        "loading); off, such requests get a 400 that says to load the model first.",
        config=True,
    )
    jit_ttl = Float(
        3600,
        help="Idle seconds before a just-in-time loaded model unloads (a request's `ttl` overrides).",
        config=True,
    )
    auto_evict = Bool(
        True,
        help="Before a JIT load, unload earlier JIT-loaded instances (LM Studio's auto-evict).",
        config=True,
    )
    max_jit_instances = Integer(
        1, help="With auto_evict, how many JIT-loaded instances may stay loaded at once.", config=True
    )
    reasoning_format = Unicode(
        "auto",
        help="Where model reasoning goes in chat responses: 'reasoning_content' (DeepSeek style), "
        "'reasoning' (gpt-oss style), 'none' (left in content), or 'auto' (reasoning for gpt-oss "
        "models, reasoning_content otherwise). Requests may override it with `reasoning_format`.",
        config=True,
    )
    max_queued_requests = Integer(
        32,
        help="Requests that may wait for a model instance while it works; more get 503 with Retry-After.",
        config=True,
    )
    threads = Integer(
        0,
        help="CPU threads per model for decoding and prompt processing (0: every core this "
        "process may use; fewer leaves room for other work on small machines).",
        config=True,
    )
    guardrails = Enum(
        ["off", "relaxed", "strict"],
        default_value="relaxed",
        help="Refuse loads whose memory estimate does not fit (a load's `force` overrides): "
        "'strict' counts available RAM and free GPU memory; 'relaxed' adds free swap and lets the "
        "GPU part use the GPU's total memory; 'off' never refuses.",
        config=True,
    )
    max_memory = Unicode(
        "",
        help="Most RAM all loaded models together may take, e.g. '8GB' or '512MiB' (empty: "
        "whatever the machine has available). For shared machines.",
        config=True,
    )
    # Limits on one request (engine/limits.py): no request may hold a model's other requests
    # for long, whoever sends it.
    max_messages = Integer(2048, help="Most messages one chat request may have (400 beyond).", config=True)
    max_prompt_tokens = Integer(
        131072,
        help="Most prompt tokens one request may have, even where the context overflow policy "
        "would cut a longer prompt (400 beyond).",
        config=True,
    )
    max_constraint_bytes = Integer(
        32768,
        help="Largest output constraint (a response_format JSON schema, the tools' schemas under "
        "tool_choice 'required', or a GBNF grammar), in bytes of JSON/text (413 beyond).",
        config=True,
    )
    grammar_timeout = Float(
        10.0,
        help="Seconds an output constraint may take to compile into a grammar (400 beyond).",
        config=True,
    )
    reap_interval = Float(0.5, help="Seconds between checks for instances whose TTL ran out.")
    crash_limit = Integer(
        3,
        help="Quick worker deaths in a row after which a model is no longer loaded just in time "
        "(an explicit load tries again).",
        config=True,
    )
    crash_window = Float(
        30.0, help="Seconds after a load within which a worker death counts as quick.", config=True
    )
