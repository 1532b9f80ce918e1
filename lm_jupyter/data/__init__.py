"""Data work in notebooks: ``lm_jupyter.llm``'s map, classify and embed over many rows.

The parts: ``rows`` (data in, prompts, results out; pure), ``labels`` (classification
constraints and scores; pure), ``cache`` (the resume cache), ``runner`` (requests in flight up
to the instance's ``parallel``, retries, interrupt), ``progress`` (widget or text) and
``_server`` (the one place that touches the HTTP client).
"""
