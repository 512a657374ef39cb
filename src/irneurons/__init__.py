"""irneurons: which neurons matter in neural re-rankers (Neuron Integrated Gradients for cross-encoders)."""

__version__ = "0.1.0"
