"""Scores and their pictures: MAE per slot and breakdowns, SRP-PHAT and constant baselines, plot data."""
