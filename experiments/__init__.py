"""Entry points: prepare, train, sample, serve. Only this package parses flags."""
