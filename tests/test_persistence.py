"""A model fitted on a GPU predicts after unpickling on a CPU-only machine."""

import pickle

import numpy as np

from tabnas import TabNASRegressor

from .conftest import FAST


def test_gpu_fitted_model_predicts_on_cpu_after_unpickling(regression_data):
    X, y = regression_data
    reg = TabNASRegressor(**{**FAST, "max_epochs": 3}).fit(X, y)
    expected = reg.predict(X)
    # What a CUDA fit leaves behind: the device it ran on. The network itself is always
    # stored on the CPU, so nothing in the pickle refers to CUDA memory.
    reg.device_ = "cuda:0"
    assert all(p.device.type == "cpu" for p in reg.model_.parameters())
    restored = pickle.loads(pickle.dumps(reg))
    assert np.array_equal(restored.predict(X), expected)
