"""The latent reasoner: decoder backbones, graph encoder, latent vectors, scoring, distillation, inference."""

from kgreason.model.backbones import Backbone, load_backbone
from kgreason.model.checkpoint import CheckpointError, CheckpointMismatchError
from kgreason.model.predictor import Prediction, Predictor, accuracy
from kgreason.model.reasoner import LatentReasoner, ReasonerOutput

__all__ = [
    "Backbone", "CheckpointError", "CheckpointMismatchError", "LatentReasoner", "Prediction", "Predictor",
    "ReasonerOutput", "accuracy", "load_backbone",
]
