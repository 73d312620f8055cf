"""Preprocessing of tables, target encoding and splits (Gorishniy et al. 2021)."""

from tabnas.preprocessing._split import holdout_split
from tabnas.preprocessing._tabular import TabularPreprocessor, n_quantiles_for, to_float_column

__all__ = ["TabularPreprocessor", "holdout_split", "n_quantiles_for", "to_float_column"]
