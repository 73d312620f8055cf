"""Search strategies behind a registry: ``make_strategy("darts").bind(supernet)``."""

from tabnas.nas.strategies.base import (
    STRATEGY_REGISTRY,
    SearchStage,
    SearchStrategy,
    VirtualStep,
    make_strategy,
)
from tabnas.nas.strategies.darts import DARTS, FixedAlpha, SecondOrderDARTS, sgd_virtual_step
from tabnas.nas.strategies.darts_minus import DARTSMinus
from tabnas.nas.strategies.pcdarts import PCDARTS, PartialChannelSupernet
from tabnas.nas.strategies.pdarts import PDARTS
from tabnas.nas.strategies.proxyless import ProxylessNAS
from tabnas.nas.strategies.random_ws import RandomWS
from tabnas.nas.strategies.sampling import GDAS, SNAS
from tabnas.nas.strategies.smooth import AdversarialSmoothDARTS, SmoothDARTS

__all__ = [
    "AdversarialSmoothDARTS",
    "DARTS",
    "DARTSMinus",
    "STRATEGY_REGISTRY",
    "GDAS",
    "FixedAlpha",
    "PartialChannelSupernet",
    "PCDARTS",
    "PDARTS",
    "ProxylessNAS",
    "RandomWS",
    "SearchStage",
    "SearchStrategy",
    "SNAS",
    "SecondOrderDARTS",
    "SmoothDARTS",
    "VirtualStep",
    "make_strategy",
    "sgd_virtual_step",
]
