"""Ensembles, estimators, observables, diagnostics, sweeps, result store and CLI."""
