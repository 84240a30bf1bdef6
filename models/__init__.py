"""RefSR model zoo: one interface (``forward(lr, ref) -> sr``), a registry, safe checkpoint loading."""
from .registry import MODELS, create_model, get_spec, list_models, register_model
from .spec import CheckpointFile, MemoryCost, ModelSpec, WeightTag

__all__ = ["CheckpointFile", "MODELS", "MemoryCost", "ModelSpec", "RefSRModel", "WeightTag", "create_model", "get_spec",
           "list_models", "register_model"]


def __getattr__(name: str):  # lazy: listing models and specs does not import torch
    if name == "RefSRModel":
        from .base import RefSRModel

        return RefSRModel
    raise AttributeError(f"module 'models' has no attribute {name!r}")
