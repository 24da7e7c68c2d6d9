"""Shared state of the service: Redis records (jobs, datasets, workers) and artifact files.

Both the API and the workers use this package; the engine knows nothing of it.
"""
