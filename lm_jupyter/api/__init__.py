"""Wire formats: request models, response builders, SSE framing and error bodies.

Pure by design (no I/O, no engine imports) so every shape a client sees is unit-tested
without a server.
"""
