"""TabNASClassifier."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets

from tabnas.estimators._base import (
    BaseTabNAS,
    as_target,
    check_finite_labels,
    check_one_label_type,
)
from tabnas.nas.selection.base import Criterion
from tabnas.training.loop import Task


class TabNASClassifier(ClassifierMixin, BaseTabNAS):
    """A classifier whose network is found by differentiable architecture search.

    ``fit`` searches a supernet of attention, feed-forward, ResNet, linear and skip
    operations with DARTS, selects one architecture with PT-DARTS (perturbation-based
    selection) and trains it from scratch with early stopping, following Gorishniy et al.
    (2021). Labels may be of any type; binary and multiclass targets are supported.

    Parameters
    ----------
    preset : {"fast", "medium", "best"}, default="medium"
        The budget: width, depth, search steps, epochs and patience.
    search_strategy : str or SearchStrategy, default="darts"
        ``"darts"`` (first order), ``"fixed-alpha"`` (α frozen at uniform: PT does all
        the choosing), ``"darts2"`` (second order), ``"gdas"`` (one sampled op per edge),
        ``"snas"`` (relaxed samples, single-level), ``"sdarts-rs"`` / ``"sdarts-adv"``
        (DARTS with randomly / adversarially perturbed weight steps), ``"darts-minus"``
        (DARTS with a decaying auxiliary skip branch), ``"random-ws"`` (random search with
        weight sharing), ``"pdarts"`` (stages that deepen the supernet and shrink its op
        sets), ``"pcdarts"`` (partial channels, edge normalisation), ``"proxyless"``
        (binarised paths); or a configured strategy such as ``DARTS(lr=3e-3,
        weight_optimizer="sgd")``, ``GDAS(tau=(10, 0.1))`` or ``SmoothDARTS("pcdarts")``.
    selection : {"pt", "argmax"} or Selector, default="pt"
        PT-DARTS perturbation-based selection, or the DARTS argmax rule.
    architecture : Architecture, default=None
        Skip the search and train this network (for example a point of
        ``search_space()``: ``est.search_space().chain(["attention", "ffn"])``, or
        ``Architecture.tabm()``).
    space : SearchSpace, default=None
        Search this space instead of the preset's (e.g. the preset's with
        ``backbones=("cells",)`` to search cells only).
    time_limit : float, default=None
        Seconds shared by search, selection and retraining; ``fit`` returns within it plus
        one epoch.
    validation_fraction : float, default=0.2
        Share of the rows held out (stratified) for early stopping and model selection
        when ``X_val`` is not given.
    categorical_features : array-like of str, int or bool, default=None
        The categorical columns. ``None`` takes pandas ``category``, ``object``, ``string``
        and ``bool`` columns.
    min_search_steps : int, default=None
        Override the preset's least number of weight steps before the search may stop
        (it stops once the architecture half's loss has not improved for the preset's
        patience, or at ``max_search_steps``); capped by ``max_search_steps``. The
        strategies' schedules (GDAS's temperature, ...) span it.
    max_search_steps : int, default=None
        Override the preset's largest number of weight steps in the search.
    ensemble_size : int, default=None
        Rounds of greedy ensemble selection over the trained candidates (the preset's
        when None); 1 keeps the best candidate on validation alone.
    bag_folds : int or "auto", default="auto"
        Cross-validation bagging of the final candidates: each is retrained on
        ``bag_folds`` folds of the training and validation rows together, early-stopped
        on the fold it leaves out, and predicts as the average of its fold models; the
        ensemble is weighted on the out-of-fold predictions. 0 turns it off (one
        training on the training rows, early-stopped on the validation rows). ``"auto"``
        bags with 5 folds at the ``"medium"`` and ``"best"`` presets when there are at
        most 3,000 rows and no ``X_val`` is given (``"fast"`` never bags).
        The search and the selection are not bagged.
    max_epochs, patience, batch_size : int, default=None
        Override the preset's retraining epochs, early-stopping patience and batch size.
    search_width : float in (0, 1], default=None
        The search and PT selection run on a proxy supernet whose ops are this many times
        as wide (``d_token``, ResNet hidden size); the selected cells are retrained at full
        width, as DARTS searches a narrower network than it trains. ``None``: the
        preset's.
    argmax_candidate : bool, default=None
        Also retrain DARTS's argmax architecture (the edges' strongest ops, before any
        selection) as one more candidate of the final ensemble when it differs from the
        selected cells; the greedy weights on validation decide between them. ``None``:
        the preset's (off at every preset).
    numeric_scaling : {"quantile", "robust"}, default="quantile"
        How numeric columns are scaled: Gorishniy et al.'s quantile transform to a normal
        distribution, or RealMLP's robust scaling (median, interquartile range) with smooth
        clipping to (-3, 3).
    label_smoothing : float, default=0.0
        Share of each training label spread evenly over all classes when the candidates are
        retrained (RealMLP uses 0.1); scores and selection use the plain log loss.
    device : str, default="auto"
        ``"auto"`` uses CUDA when present and the CPU otherwise; or ``"cpu"``, ``"cuda"``.
    random_state : int, RandomState instance or None, default=None
        Seeds the splits, the initialisation and the batches.
    verbose : int, default=0
        Show progress bars for each phase.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    architecture_ : Architecture
        The ensemble member of largest weight; ``str()`` describes it, ``to_dict()``
        serialises it.
    selected_architecture_ : Architecture or None
        The cells the selector chose from the supernet (``None`` without a search).
    ensemble_ : list of dict
        Every trained candidate: its architecture, ensemble weight, validation scores,
        epochs and training time.
    argmax_architecture_ : Architecture or None
        What DARTS's argmax rule picks from the α at the end of the search (``None``
        when ``architecture`` was given): the baseline the selection is compared with.
    model_ : EnsembleModel
        The weighted ensemble of the trained candidates (on the CPU), one ``torch.nn.Module``.
    history_ : History
        One row per epoch of the ``search``, ``select`` and ``retrain`` phases.
    selection_trace_ : list of dict
        Per PT decision: the scores after removing each op or input, and what was kept.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
    timings_ : dict
        Seconds spent in each phase.
    fit_info_ : dict
        Sizes of the splits, the search's steps and α movement, the supernet's own
        validation scores (``supernet_val``) and the retrained model's (``best_val``).

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from tabnas import TabNASClassifier
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> clf = TabNASClassifier(
    ...     preset="fast", max_search_steps=40, max_epochs=5, random_state=0
    ... ).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    """

    def _encode_target(self, y, *, fitting: bool) -> np.ndarray:
        name = "y" if fitting else "y_val"
        y = as_target(y, name)
        check_finite_labels(y, name)
        check_one_label_type(y)
        check_classification_targets(y)
        if fitting:
            classes = np.unique(y)
            if len(classes) < 2:
                raise ValueError(
                    f"y has only one class ({classes[0]!r}); a classifier needs at least 2"
                    " classes in y"
                )
            self.classes_ = classes
        unknown = ~np.isin(y, self.classes_)
        if unknown.any():
            raise ValueError(
                f"y_val holds labels not present in y: {np.unique(y[unknown]).tolist()}"
            )
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _task(self) -> Task:
        return Task(
            kind="classification", d_out=len(self.classes_), label_smoothing=self.label_smoothing
        )

    def _stratify(self, y_encoded: np.ndarray) -> np.ndarray:
        return y_encoded

    def _selection_criterion(self) -> Criterion:
        return "accuracy"

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, columns ordered as ``classes_``."""
        return torch.softmax(self._raw_predict(X), dim=-1).numpy().astype(np.float64)

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]
