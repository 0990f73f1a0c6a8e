"""Train, evaluate, improve: labels, training sets, validation, candidates, model
cards, and the training run that ties them together.
"""

__all__: list[str] = []
