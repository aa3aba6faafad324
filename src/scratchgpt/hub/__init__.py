"""Sharing a model folder: the model card (``card``) and the one-commit
push to the Hub (``push``)."""
