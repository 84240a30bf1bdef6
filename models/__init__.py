"""RefSR model zoo: one interface (``forward(lr, ref) -> sr``), a registry, safe checkpoint loading."""
from .base import CheckpointFile, MemoryCost, ModelSpec, RefSRModel, WeightTag
from .registry import MODELS, create_model, get_spec, list_models, register_model

__all__ = ["CheckpointFile", "MODELS", "MemoryCost", "ModelSpec", "RefSRModel", "WeightTag", "create_model", "get_spec",
           "list_models", "register_model"]
