-- 0009: at most one catalog row per path (duplicates were removed by 0007).
CREATE UNIQUE INDEX photos_path ON photos (path);
