"""Prompt side: chat templates, model families (``families/``), and the incremental parsers
that split reasoning and tool calls out of generated text. Pure, no I/O."""
