-- 0018: files remembered as unusable are tried once more. This version reads kinds it skipped
-- before (Photoshop documents, DV and MXF videos...) and keeps camera files without a picture
-- with their metadata; a remembered skip is only retried when its file changes, so without
-- this a PSD skipped by an earlier version would stay skipped while untouched.
DELETE FROM shard_skips;
