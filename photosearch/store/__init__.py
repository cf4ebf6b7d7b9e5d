"""Store: everything persisted in a library folder. All SQL (``catalog``), the FAISS vector
indexes (``vectors``, ``ondisk``, ``rows``) and the catalog schema (``schema/``). No business rules."""
