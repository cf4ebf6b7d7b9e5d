"""Ingest: a photo's way into the library (walk and diff, analyze, commit, finish).

``indexer`` runs the stages in this process; ``shards`` runs the same per-photo analysis
(``analyze``) over Parquet shards, in process or on Ray. Reads photos, never writes them.
"""
