"""Media: files and pixels. Walking folders (``scan``), decoding (``decode``), metadata read and
safe write (``xmp``, ``regions``, ``takeout``), perceptual hashes and thumbnails."""
