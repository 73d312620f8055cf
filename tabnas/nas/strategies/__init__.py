"""Search strategies behind a registry: ``make_strategy("darts").bind(supernet)``."""

from tabnas.nas.strategies.base import STRATEGY_REGISTRY, SearchStrategy, VirtualStep, make_strategy
from tabnas.nas.strategies.darts import DARTS, FixedAlpha, SecondOrderDARTS, sgd_virtual_step

__all__ = [
    "DARTS",
    "STRATEGY_REGISTRY",
    "FixedAlpha",
    "SearchStrategy",
    "SecondOrderDARTS",
    "VirtualStep",
    "make_strategy",
    "sgd_virtual_step",
]
