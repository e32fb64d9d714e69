"""Corpus sources, shard writing (prepare) and the grain batch pipeline."""
