"""Multiclass classification: which of several classes (a plan, a reason, a category)?
Labels come from a table as text or integers; models learn class indices 0..K-1 in the
sorted order of the classes seen, and the answer is the most likely class with its
probability."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

import framework.tasks.estimators as estimators
from framework.common import html
from framework.errors import DataError
from framework.tasks.base import PARTS, Task
from framework.tasks.metrics import encode_classes, multiclass_metrics

__all__ = ["MULTICLASS_METRICS", "MulticlassTask", "class_matrix"]

MULTICLASS_METRICS = ("macro_f1", "log_loss", "accuracy")


def class_matrix(model: Any, proba: np.ndarray, classes: int) -> np.ndarray:
    """``predict_proba``'s columns placed at their class index 0..classes-1 (a class the
    model never saw in training gets probability 0)."""
    seen = np.asarray(model.classes_).astype(int)
    if proba.shape[1] == classes and (seen == np.arange(classes)).all():
        return proba
    out = np.zeros((len(proba), classes))
    out[:, seen] = proba
    return out


class MulticlassTask(Task):
    name = "multiclass"
    noun = "multiclass"
    metrics = MULTICLASS_METRICS
    candidates = ("baseline", "lightgbm", "logistic_regression", "random_forest")
    label_types = ("LabelTable",)

    def typed_labels(self, problem: Any, label: pd.Series) -> np.ndarray:
        """Classes as given (text or integers); null: no label."""
        if pd.api.types.is_float_dtype(label):
            whole = label.dropna()
            if (whole != whole.round()).any():
                raise DataError(
                    f"Problem {problem.name!r} is multiclass, but its labels hold fractions "
                    f"({whole[whole != whole.round()].iloc[0]!r}); classes are text or integers."
                )
            return label.astype("Int64").astype(object).where(label.notna(), None).to_numpy()
        return label.astype(object).where(label.notna(), None).to_numpy()

    def encode_labels(
        self, problem: Any, ys: dict[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], list[Any] | None]:
        classes, encoded = encode_classes(*(ys[k] for k in PARTS))
        ys, _ = super().encode_labels(problem, dict(zip(PARTS, encoded, strict=True)))
        return ys, classes

    def estimator(self, name: str, seed: int = 0) -> Any:
        return estimators.classifier(name, seed)

    def predict(self, model: Any, x: Any, **kwargs: Any) -> np.ndarray:
        return np.asarray(model.predict_proba(x, **kwargs))

    def scores(self, model: Any, x: pd.DataFrame, classes: int = 2) -> np.ndarray:
        return class_matrix(model, self.predict(model, x), classes)

    def evaluate(
        self,
        y: np.ndarray,
        score: np.ndarray,
        threshold: float = 0.5,
        classes: list[Any] | None = None,
        **context: Any,
    ) -> dict[str, float]:
        names = classes if classes is not None else list(range(score.shape[1]))
        return multiclass_metrics(y, score, names)

    def text_rows(self, result: Any) -> list[str]:
        lines = [f"  {'winner per class':<22}{'precision':>10}{'recall':>10}{'f1':>10}"]
        for name in result.classes or []:
            lines.append(
                f"  {name!s:<22}"
                + "".join(
                    f"{result.test[f'{k}[{name}]']:>10.4f}" for k in ("precision", "recall", "f1")
                )
            )
        return lines

    def label_facts(self, every: pd.Series, parts: dict[str, pd.Series]) -> dict[str, Any]:
        counts = {
            k: {str(c): int(n) for c, n in v.value_counts().items()} for k, v in parts.items()
        }
        total = {str(c): int(n) for c, n in every.value_counts().items()}
        return {"classes": total, "rows": len(every), "parts": counts}

    def check_label_facts(self, problem: Any, label: dict[str, Any]) -> None:
        need = problem.min_positives
        for part, counts in label["parts"].items():
            enough = [c for c, n in counts.items() if n >= need]
            if len(enough) < 2:
                raise DataError(
                    f"Problem {problem.name!r}: the {part} split holds {counts} rows per class; "
                    f"at least two classes need {need} rows each (min_positives) in each of "
                    "train, validation and test. Use more data or lower min_positives."
                )

    def card_labels(self, meta: Any, y_test: np.ndarray) -> np.ndarray:
        index = {c: i for i, c in enumerate(meta.classes or [])}
        return np.array([index[v.item() if hasattr(v, "item") else v] for v in y_test])

    def card_curves(
        self, y: np.ndarray, score: np.ndarray, classes: list[Any] | None
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        from sklearn import metrics as m

        plt = html.pyplot()
        k = score.shape[1]
        matrix = m.confusion_matrix(y.astype(int), score.argmax(axis=1), labels=list(range(k)))
        fig, ax = plt.subplots(figsize=(1.0 + 0.6 * k, 0.8 + 0.6 * k))
        ax.imshow(matrix, cmap="Blues")
        for (i, j), v in np.ndenumerate(matrix):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
        names = [str(c) for c in classes or range(k)]
        ax.set_xticks(range(k), names, rotation=45, ha="right")
        ax.set_yticks(range(k), names)
        ax.set(title="Confusion matrix (test)", xlabel="predicted", ylabel="actual")
        return {"confusion": matrix.tolist()}, [("Confusion matrix (test)", html.png(fig))]

    def card_section(self, meta: Any, rows: pd.DataFrame | None) -> str:
        test = meta.metrics["test"]
        table = [
            {
                "class": c,
                **{k: test.get(f"{k}[{c}]") for k in ("precision", "recall", "f1")},
                "rows": int(test.get(f"support[{c}]", 0)),
            }
            for c in meta.classes or []
        ]
        return "<h2>Per class (test, winner)</h2>" + html.table(
            table, ["class", "precision", "recall", "f1", "rows"]
        )

    def answer(
        self, meta: Any, model: Any, raw: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        proba = class_matrix(model, raw, len(meta.classes or ()))
        label = proba.argmax(axis=1)
        return proba[np.arange(len(proba)), label], label

    def answer_items(self, meta: Any, model: Any, raw: np.ndarray) -> list[dict[str, Any]]:
        """The most likely class (``label``, and its index), its probability (``score``) and
        every class's probability."""
        classes = meta.classes or []
        proba = class_matrix(model, raw, len(classes))
        labels = proba.argmax(axis=1)
        return [
            {
                "score": float(p[i]),
                "label": classes[int(i)],
                "label_index": int(i),
                "probabilities": {str(c): float(v) for c, v in zip(classes, p, strict=True)},
            }
            for p, i in zip(proba, labels, strict=True)
        ]

    def class_names(self, meta: Any, labels: np.ndarray | None) -> list[str] | None:
        if labels is None or not meta.classes:
            return None
        return [str(meta.classes[i]) for i in labels]

    def realized_labels(self, meta: Any, truth: pd.Series) -> pd.Series | None:
        """Actual classes as the version's class indices (-1: a class it never saw)."""
        if meta is None or not meta.classes:
            return None  # without the version's classes its labels cannot be compared
        index = {str(c): i for i, c in enumerate(meta.classes)}
        return pd.Series([index.get(str(v), -1) for v in truth], index=truth.index)

    def realized_metrics(
        self,
        y: np.ndarray,
        score: np.ndarray,
        predicted: np.ndarray,
        lists: np.ndarray | None = None,
        k: int = 10,
    ) -> dict[str, Any]:
        """The log keeps the predicted class, not every probability."""
        from sklearn import metrics as m

        return {
            "accuracy": float(m.accuracy_score(y, predicted)),
            "macro_f1": float(
                m.f1_score(y, predicted, average="macro", labels=np.unique(y), zero_division=0)
            ),
        }

    def gate_scores(
        self, meta: Any, model: Any, raw: np.ndarray, y: np.ndarray, classes: list[Any] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The champion's probabilities in the challenger's class order (0: unknown to it)."""
        if classes is None:
            return super().gate_scores(meta, model, raw, y, classes)
        proba = class_matrix(model, raw, len(meta.classes or ()))
        scores = np.zeros((len(raw), len(classes)))
        at = {str(c): i for i, c in enumerate(classes)}
        for j, c in enumerate(meta.classes or []):
            if str(c) in at:
                scores[:, at[str(c)]] = proba[:, j]
        return scores, np.array([at[str(v)] for v in y])
