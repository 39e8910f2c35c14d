"""ccpulse: streaming contact-center metrics (Kafka in, Faust agents, ClickHouse and Prometheus out)."""

__version__ = "0.1.0"
