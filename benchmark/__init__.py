"""The evaluation harness: protocols, metrics, suites, runs, leaderboards (``python -m benchmark.run``).

``benchmark.evaluate(model, dataset, ...)`` scores any model from Python (see :mod:`benchmark.api`).
"""


def __getattr__(name: str):  # lazy: ``python -m benchmark.run --help`` should not import torch models
    if name == "evaluate":
        from .api import evaluate

        return evaluate
    raise AttributeError(f"module 'benchmark' has no attribute {name!r}")
