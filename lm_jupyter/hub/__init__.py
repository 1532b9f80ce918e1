"""Getting model files into the models folder: local imports now, Hugging Face downloads later."""
