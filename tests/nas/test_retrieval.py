"""The ``retrieval`` backbone: ModernNCA as a point of the space."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from tabnas.nas.network import DataShapes, RetrievalNetwork, TrainingRows, build_network
from tabnas.nas.space import Architecture, RetrievalSettings, SearchSpace


def rows(n=60, d_out=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    x_num = torch.randn(n, 3, generator=g)
    x_cat = torch.randint(0, 4, (n, 1), generator=g)
    y = x_num[:, 0].clone() if d_out == 1 else (x_num[:, 0] > 0).long()
    return TrainingRows(x_num, x_cat, y)


def network(training_rows, d_out=1, **settings):
    arch = Architecture.modern_nca(RetrievalSettings(**settings), num_embedding="periodic")
    return build_network(arch, DataShapes(3, (4,), d_out), training_rows)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def test_a_training_row_never_retrieves_itself_and_prediction_retrieves_every_row():
    train = rows()
    net = network(train, sample_rate=1.0)  # every other row is a candidate in training
    batch = torch.arange(8)
    out = net(train.x_num[batch], train.x_cat[batch], rows=batch).squeeze(-1)
    with torch.no_grad():
        points = net.embed(train.x_num, train.x_cat)
        distances = torch.cdist(points[batch], points)
        distances[batch, batch] = torch.inf  # itself: weight zero
        expected = torch.softmax(-distances, dim=-1) @ train.y
    torch.testing.assert_close(out.detach(), expected, rtol=1e-4, atol=1e-5)
    net.eval()
    with torch.no_grad():
        evaluated = net(train.x_num[batch], train.x_cat[batch]).squeeze(-1)
        with_self = torch.softmax(-torch.cdist(points[batch], points), dim=-1) @ train.y
    torch.testing.assert_close(evaluated, with_self, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(evaluated, out.detach())  # the row's own label now counts


def test_training_compares_a_batch_with_a_sampled_share_of_the_other_rows(monkeypatch):
    train = rows(n=108)
    net = network(train, sample_rate=0.5)
    widths = []
    cdist = torch.cdist
    monkeypatch.setattr(torch, "cdist", lambda a, b: widths.append(len(b)) or cdist(a, b))
    batch = torch.arange(8)
    first = net(train.x_num[batch], train.x_cat[batch], rows=batch)
    second = net(train.x_num[batch], train.x_cat[batch], rows=batch)
    assert widths == [8 + 50, 8 + 50]  # the batch + half of the 100 other rows
    assert not torch.allclose(first, second)  # a new sample each step
    with pytest.raises(ValueError, match="rows="):
        net(train.x_num[batch], train.x_cat[batch])


def test_outputs_are_class_log_probabilities_or_a_weighted_mean_target():
    train = rows(d_out=3)
    train = train._replace(y=torch.randint(0, 3, (60,)))
    proba = network(train, d_out=3).eval()(train.x_num, train.x_cat).exp()
    torch.testing.assert_close(proba.sum(-1), torch.ones(60), rtol=1e-5, atol=1e-5)
    reg = rows()
    values = network(reg).eval()(reg.x_num, reg.x_cat)
    assert values.shape == (60, 1)
    assert reg.y.min() <= values.min() and values.max() <= reg.y.max()


def test_modern_nca_is_a_point_of_the_space_with_the_official_parameter_count():
    """TALENT's ModernNCA: embeddings -> Linear(d_in, dim) [-> blocks -> BatchNorm]."""
    train = rows()
    settings = RetrievalSettings(dim=32, n_blocks=1, d_block=64, d_embedding=8)
    space = SearchSpace(backbones=("cells", "retrieval"), retrieval=settings)
    arch = space.modern_nca()
    assert space.contains(arch) and not SearchSpace().contains(arch)
    assert arch.num_embedding == space.search_embedding
    net = build_network(arch, DataShapes(3, (4,), 1), train)
    embedding = n_params(net.num_embeddings)
    d_in = 3 * 8 + 4  # numeric embeddings + one-hot categories
    block = 2 * 32 + (32 * 64 + 64) + (64 * 32 + 32)  # BatchNorm, Linear, Linear
    assert n_params(net) == embedding + d_in * 32 + 32 + block + 2 * 32
    assert space.candidates(space.chain(["attention", "ffn"]))[-1] == arch


def test_the_training_rows_travel_in_the_state_dict_into_an_empty_network():
    train = rows(d_out=2)
    net = network(train, d_out=2).eval()
    shell = build_network(net.architecture, DataShapes(3, (4,), 2))
    assert isinstance(shell, RetrievalNetwork) and len(shell.train_y) == 0
    shell.load_state_dict(net.state_dict())
    assert torch.equal(shell.train_y, train.y) and shell.train_y.dtype == torch.long
    torch.testing.assert_close(
        shell.eval()(train.x_num, train.x_cat), net(train.x_num, train.x_cat)
    )
    three_classes = build_network(net.architecture, DataShapes(3, (4,), 3))
    with pytest.raises(RuntimeError, match="saved with 2 outputs, this one has 3"):
        three_classes.load_state_dict(net.state_dict())


def test_retrieval_architectures_round_trip_and_refuse_bad_settings():
    arch = Architecture.modern_nca(RetrievalSettings(temperature=0.5))
    assert Architecture.from_dict(json.loads(arch.to_json())) == arch
    assert "ModernNCA" in str(arch) and "temperature=0.5" in str(arch)
    with pytest.raises(ValueError, match="needs retrieval settings"):
        Architecture(cells=(), backbone="retrieval")
    with pytest.raises(ValueError, match="belong to the 'retrieval' backbone"):
        dataclasses.replace(Architecture.tabm(), retrieval=RetrievalSettings())
    for bad in (dict(sample_rate=0.0), dict(temperature=0.0), dict(dim=0), dict(n_blocks=-1)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            RetrievalSettings(**bad)


def test_a_retrieval_architecture_fits_alone_in_the_estimators(regression_data, cancer):
    from tabnas import TabNASClassifier, TabNASRegressor
    from tests.conftest import FAST

    X, y = regression_data
    point = Architecture.modern_nca(num_embedding="periodic")
    reg = TabNASRegressor(**{**FAST, "max_epochs": 30}, architecture=point).fit(X, y)
    assert reg.architecture_ == point and reg.score(X, y) > 0.5
    X, y = cancer
    clf = TabNASClassifier(**{**FAST, "max_epochs": 10}, architecture=point).fit(X, y)
    assert clf.score(X, y) > 0.9
    assert np.allclose(clf.predict_proba(X[:5]).sum(1), 1.0)


def test_a_fit_with_a_retrieval_candidate_saves_and_loads_predicting_the_same(tmp_path):
    import pickle
    import warnings

    import tabnas
    from tabnas import TabNASRegressor
    from tests.conftest import FAST

    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    y = np.sin(2 * X[:, 0]) + X[:, 1]
    space = dataclasses.replace(
        TabNASRegressor(preset="fast").search_space(), backbones=("tabm", "retrieval")
    )
    reg = TabNASRegressor(**{**FAST, "max_epochs": 5}, space=space).fit(X, y)
    assert [m["architecture"]["backbone"] for m in reg.ensemble_] == ["tabm", "retrieval"]
    assert "ModernNCA" in repr(reg.model_)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the space and every fitted attribute are saved
        restored = tabnas.load(reg.save(tmp_path / "model.zip"))
    assert restored.search_space() == space
    assert np.array_equal(restored.predict(X), reg.predict(X))
    assert np.array_equal(pickle.loads(pickle.dumps(reg)).predict(X), reg.predict(X))
