"""Deploy: the prediction service, batch prediction, the prediction log, experiment
reports and the web pages.
"""

__all__: list[str] = []
