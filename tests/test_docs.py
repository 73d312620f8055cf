"""The examples in the public docstrings and the README's Python blocks run."""

import doctest
import re
from pathlib import Path

import pytest

import tabnas.estimators._classifier
import tabnas.estimators._regressor
import tabnas.nas.space

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "module", [tabnas.estimators._classifier, tabnas.estimators._regressor, tabnas.nas.space]
)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize(
    "page",
    [  # the two longest pages fit several models: about a minute each, run by `make test-slow`
        pytest.param("README.md", marks=pytest.mark.slow),
        pytest.param("docs/usage.md", marks=pytest.mark.slow),
        "docs/sklearn.md",
    ],
)
def test_python_blocks_of_the_docs_run(page, tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(), flags=re.S)
    assert blocks, f"{page} shows Python usage"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, page, "exec"), namespace)
