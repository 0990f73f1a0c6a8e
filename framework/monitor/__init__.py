"""Monitor: drift, realized performance, train/serve skew, reports and retraining."""

__all__: list[str] = []
