"""photosearch: a local, private search engine for personal photo libraries.

The public library API lives in :mod:`photosearch.api`; the CLI in
:mod:`photosearch.cli` is a thin layer over it. Nothing heavy is imported here.
"""

__version__ = "0.1.0"
