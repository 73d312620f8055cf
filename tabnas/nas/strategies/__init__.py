"""Search strategies behind a registry: ``make_strategy(name, supernet)``."""

from tabnas.nas.strategies.base import STRATEGY_REGISTRY, SearchStrategy, make_strategy
from tabnas.nas.strategies.darts import DARTS, SecondOrderDARTS

__all__ = ["DARTS", "STRATEGY_REGISTRY", "SearchStrategy", "SecondOrderDARTS", "make_strategy"]
