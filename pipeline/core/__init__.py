"""The pure core: no Kafka, Faust, ClickHouse, network, clock or file imports.

Everything here takes plain values (including ``now``) and returns plain values, so it can be
tested exhaustively and reused by replays and benchmarks.
"""
