"""The compiled preprocessing gives exactly scikit-learn's matrix; scoring uses it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler

from framework.models.scoring import CompiledPreprocess, score, to_model_frame
from framework.tasks.estimators import preprocessor as _preprocessor


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "count_7d": pd.array(rng.integers(0, 20, n), dtype="int32"),
            "age": pd.array(rng.integers(18, 80, n), dtype="Int64"),
            "amount": rng.gamma(2.0, 30.0, n),
            "weekend": pd.array(rng.random(n) < 0.3, dtype="boolean"),
            "plan": rng.choice(["free", "basic", "pro"], n).astype(object),
            "country": rng.choice(["US", "DE", "FR"], n).astype(object),
        }
    )
    frame.loc[::7, "age"] = pd.NA
    frame.loc[::11, "amount"] = np.nan
    frame.loc[::5, "plan"] = None
    return frame


def _fitted(frame: pd.DataFrame) -> Pipeline:
    x = to_model_frame(frame, list(frame.columns))
    y = (frame["count_7d"].to_numpy() > 9).astype(int)
    return Pipeline([("preprocess", _preprocessor(x)), ("model", LogisticRegression())]).fit(x, y)


def test_compiled_matrix_equals_sklearns_including_missing_and_unseen_values():
    train = _frame(500, 1)
    model = _fitted(train)
    new = _frame(300, 2)
    new.loc[0, "plan"] = "enterprise"  # a category never seen in training
    new.loc[1, "country"] = None
    new.loc[2, "age"] = pd.NA
    compiled = CompiledPreprocess.compile(model)
    assert compiled is not None
    expected = model[0].transform(to_model_frame(new, list(new.columns)))
    got = compiled.transform(new)
    assert got.shape == expected.shape
    assert np.array_equal(got, expected)  # bit for bit
    assert got[0, -6:-3].sum() == 0  # the unseen plan is all zeros, as handle_unknown="ignore"
    meta = SimpleNamespace(task="binary", decision_threshold=0.5, features=list(new.columns))
    scores, labels = score(meta, model, new)
    assert np.array_equal(scores, model.predict_proba(to_model_frame(new, list(new.columns)))[:, 1])
    assert np.array_equal(labels, (scores >= 0.5).astype(int))


def test_an_unknown_pipeline_shape_falls_back_to_sklearn():
    train = _frame(200, 3)[["count_7d", "amount"]].fillna({"amount": 1.0})
    x = to_model_frame(train, list(train.columns))
    model = Pipeline([("scale", MinMaxScaler()), ("model", LogisticRegression())]).fit(
        x, (train["count_7d"] > 9).astype(int)
    )
    assert CompiledPreprocess.compile(model) is None
    meta = SimpleNamespace(task="binary", decision_threshold=0.5, features=list(train.columns))
    scores, _ = score(meta, model, train)
    assert np.array_equal(scores, model.predict_proba(x)[:, 1])
