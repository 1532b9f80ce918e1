"""The MLX backend (mlx-lm): an MLX model folder, continuous batching with mlx-lm's
``BatchGenerator``, and prefix reuse with its prompt caches."""
