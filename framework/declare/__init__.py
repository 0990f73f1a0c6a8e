"""Define the problem and the data: the declarations a feature repo holds.

Windowed views (``windows``), date expansions (``dates``), row filters
(``expressions``), problems (``problems``), data contracts (``contracts``),
experiments (``experiments``), and ``FeatureRepo`` (``repo``), which imports them
the way ``feast apply`` does and knows where every dataset, model and report lives.
"""

__all__: list[str] = []
