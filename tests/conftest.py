"""Seeded fixtures shared by the tests: small real and synthetic tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_breast_cancer

# Tests run on the CPU, deterministically; small budgets keep fits to seconds.
FAST = dict(preset="fast", max_search_steps=40, max_epochs=20, device="cpu", random_state=0)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(autouse=True)
def _threads_unchanged():
    """A test must hand back torch's threads as it found them: a worker left with two
    threads beside another worker slows every later fit in it about tenfold on 2 cores."""
    before = torch.get_num_threads()
    yield
    after = torch.get_num_threads()
    if after != before:
        torch.set_num_threads(before)
        pytest.fail(f"the test left torch with {after} intra-op threads (it had {before})")


@pytest.fixture(scope="session")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return X, y


@pytest.fixture(scope="session")
def mixed_frame():
    """Numeric + categorical columns with missing values, binary string labels."""
    rng = np.random.default_rng(0)
    n = 240
    num = rng.normal(size=n)
    num2 = rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    X = pd.DataFrame(
        {
            "num": num,
            "num2": num2,
            "color": pd.Categorical(color),
            "flag": rng.random(n) > 0.5,
        }
    )
    X.loc[rng.choice(n, 20, replace=False), "num"] = np.nan
    X.loc[rng.choice(n, 10, replace=False), "color"] = np.nan
    score = num2 + 1.5 * (color == "red") - 0.5 * np.nan_to_num(num)
    y = np.where(score > 0.3, "yes", "no")
    return X, y


@pytest.fixture(scope="session")
def regression_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = 1000.0 * (X[:, 0] - 0.5 * X[:, 1] ** 2) + 5000.0
    return X, y


def pytest_configure(config):
    # Under pytest-xdist every worker is a process of its own: one torch thread each keeps
    # the workers from fighting over the cores.
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)
