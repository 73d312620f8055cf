"""Architecture selectors behind a registry: ``make_selector(name)``."""

from tabnas.nas.selection.argmax import ArgmaxSelector, argmax_select
from tabnas.nas.selection.base import SELECTOR_REGISTRY, SelectionContext, Selector, make_selector
from tabnas.nas.selection.perturbation import PerturbationSelector
from tabnas.nas.selection.trace import Decision, Fallback, InputDecision, OpDecision, trace_to_dicts

__all__ = [
    "SELECTOR_REGISTRY",
    "ArgmaxSelector",
    "Decision",
    "Fallback",
    "InputDecision",
    "OpDecision",
    "PerturbationSelector",
    "SelectionContext",
    "Selector",
    "argmax_select",
    "make_selector",
    "trace_to_dicts",
]
