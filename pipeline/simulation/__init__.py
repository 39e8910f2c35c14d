"""Simulated contact-center traffic (``ccpulse simulate``): a model and injected faults."""

from pipeline.simulation.faults import Faults, inject
from pipeline.simulation.model import DEFAULT_QUEUES, DEFAULT_TEAMS, QueueProfile, Simulation, TeamProfile

__all__ = ["DEFAULT_QUEUES", "DEFAULT_TEAMS", "Faults", "QueueProfile", "Simulation", "TeamProfile", "inject"]
