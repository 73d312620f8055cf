"""Architecture selectors behind a registry: ``make_selector(name)``."""

from tabnas.nas.selection.argmax import ArgmaxSelector, argmax_select
from tabnas.nas.selection.base import SELECTOR_REGISTRY, SelectionContext, Selector, make_selector
from tabnas.nas.selection.perturbation import PerturbationSelector

__all__ = [
    "SELECTOR_REGISTRY",
    "ArgmaxSelector",
    "PerturbationSelector",
    "SelectionContext",
    "Selector",
    "argmax_select",
    "make_selector",
]
