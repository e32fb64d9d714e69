"""Measurements of a model: the eval split (splits.py), held-out loss
(heldout.py), control adherence (adherence.py), sample statistics and music
quality against held-out and training pieces."""
