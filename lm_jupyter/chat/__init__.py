"""Prompt side: chat templates (and later tool-call and reasoning parsers). Pure, no I/O."""
