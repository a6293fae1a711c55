"""Training of the latent reasoner: the recipe, its data, the CSV log and DDP process groups."""

from kgreason.training.recipe import TrainingRecipe, TrainResult, train

__all__ = ["TrainResult", "TrainingRecipe", "train"]
