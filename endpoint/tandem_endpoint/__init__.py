"""Tandem inference endpoint: SageMaker hosting protocol server with dynamic batching."""

__version__ = "0.1.0"
