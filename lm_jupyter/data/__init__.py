"""Data work in notebooks: ``lm_jupyter.llm``'s map, classify and embed over many rows.

The parts: ``rows`` (data in, prompts, results out; pure), ``labels`` (classification
constraints and scores; pure), ``cache`` (the resume cache), ``models`` (which instance, and
how many requests in flight: its ``parallel`` and a few queued), ``runner`` (those requests,
retries, interrupt), ``progress`` (widget or text) and ``_client`` (the one place that touches
the HTTP client).
"""
