"""The llama.cpp backend (llama-cpp-python): GGUF models on one context per worker."""
