"""Sweeps on a cluster of workers: the Celery app, its one task (a chunk of one competitor's
listings), the dispatch that cuts a sweep into chunks and waits for them, and `pricemon worker`.

Imported only when `[cluster] broker_url` is set: without it nothing here (and no Celery) loads.
"""
