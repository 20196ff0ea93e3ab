"""Readers for public rating data sets (MovieLens) and the synthetic generator."""
