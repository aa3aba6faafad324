"""Using a model folder: batched classification (``classify``), text generation (``generate``),
scoring a classifier on a data split (``evaluate``) and oneDNN pre-packed linear weights for
fast CPU inference (``prepack``).
"""
