"""Peer implementations of ccpulse's queue metrics, for ``bench/peers_compare.py``."""
