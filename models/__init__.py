"""RefSR model zoo: one interface (``forward(lr, ref) -> sr``), a registry, safe checkpoint loading."""
from .base import CheckpointFile, ModelSpec, RefSRModel
from .registry import create_model, get_spec, list_models, register_model

__all__ = ["CheckpointFile", "ModelSpec", "RefSRModel", "create_model", "get_spec", "list_models",
           "register_model"]
