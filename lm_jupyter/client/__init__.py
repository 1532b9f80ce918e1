"""The HTTP client SDK: server discovery, the client of the public routes, and the commands
``%lms`` and ``lmj`` share, with their tables and views as data.

Never imports ``lm_jupyter.engine`` or IPython: the CLI and the kernel both build on it, and
notebooks use exactly the routes any client uses.
"""
