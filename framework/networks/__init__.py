"""Network kinds: each turns its config nodes and the data into the Context the analyses read.

:mod:`base` holds what they share and their registry; the kinds are imported here in order to
register (nengo's ``builder/__init__.py`` does the same).
"""
from framework.networks import ensemble, keras
from framework.networks.base import Built, Nodes, TrainedNetwork, network_for

__all__ = ["Built", "Nodes", "TrainedNetwork", "ensemble", "keras", "network_for"]
