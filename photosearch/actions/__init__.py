"""Actions that change files: sync (metadata into files), organize, quarantine, watch, and the
journal that makes each of them undoable (``photosearch undo``)."""
