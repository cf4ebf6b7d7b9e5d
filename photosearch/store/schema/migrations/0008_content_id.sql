-- 0008: a photo's identity by its image data (photosearch/media/identity.py), so a file whose
-- metadata another app edited keeps its row, vectors, faces and decisions (issue 15). NULL for
-- formats without one, and for photos indexed before this column until their file is read again.
-- (Before 0009's index: DuckDB cannot add a column to a table that has one.)
ALTER TABLE photos ADD COLUMN content_id VARCHAR;
