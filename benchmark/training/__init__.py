"""Training zoo models on built or imported splits (``python -m benchmark.train``)."""
from .recipe import Recipe, RecipeError, list_recipes, load_recipe
from .trainer import TrainConfig, Trainer

__all__ = ["Recipe", "RecipeError", "TrainConfig", "Trainer", "list_recipes", "load_recipe", "train"]


def train(model: str, dataset: str, out: str, **kwargs) -> dict:
    """Train ``model`` (``name[.tag]``) on ``dataset``'s train split; see :class:`TrainConfig`."""
    return Trainer(TrainConfig(model=model, dataset=str(dataset), out=str(out), **kwargs)).run()
