"""The on-disk format of a photosearch library, shipped with the package.

Installed as ``photosearch.index_format``. ``migrations/NNNN_*.sql`` are the
numbered catalog migrations applied by :mod:`photosearch.catalog`; FORMAT.md
documents every file in a library folder.
"""
