"""Kernel side: an HTTP client of the public routes, server discovery, magics.

Never imports ``lm_jupyter.engine``: notebooks use exactly the routes any client uses.
"""
