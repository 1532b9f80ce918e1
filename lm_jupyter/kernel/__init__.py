"""Kernel side: the ``%lms`` and ``%%chat`` magics, chat sessions, Python tools and widgets.

Builds on :mod:`lm_jupyter.client`; never imports ``lm_jupyter.engine``.
"""
