"""The catalog schema of a photosearch library, shipped with the package.

``migrations/NNNN_*.sql`` are the numbered catalog migrations applied by
:mod:`photosearch.store.catalog`; FORMAT.md documents every file in a library folder.
"""
