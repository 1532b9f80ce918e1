"""``lmj``: the terminal twin of LM Studio's ``lms``, a client of the same HTTP routes."""
