"""Ingest: a photo's way into the library, one pipeline of four stages.

``plan`` (walk, diff against the catalog) -> ``analyze`` (decode once, every analyzer of
``analyzers/``) -> ``commit`` (the one writer) -> ``finish`` (gone rows, people, vector
indexes). ``runners`` drives them in this process or over Parquet shards (``shardfile``),
locally or on Ray; ``report`` is what every run returns. Reads photos, never writes them.
"""
