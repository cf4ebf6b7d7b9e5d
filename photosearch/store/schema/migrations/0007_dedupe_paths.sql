-- 0007: one catalog row per path (issue 15). Two `index` runs at once could insert a file twice
-- before the writer lock existed; such duplicates are removed here (the lowest id, the first
-- one indexed, stays with everything attached to it). 0009 then keeps them out (an index
-- cannot be built in the transaction that deleted the duplicates).
CREATE TEMP TABLE _dup_ids AS
    SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY path ORDER BY id) AS n FROM photos) WHERE n > 1;
DELETE FROM embeddings WHERE photo_id IN (SELECT id FROM _dup_ids);
DELETE FROM image_hashes WHERE photo_id IN (SELECT id FROM _dup_ids);
DELETE FROM face_rejections WHERE face_id IN (SELECT id FROM faces WHERE photo_id IN (SELECT id FROM _dup_ids));
DELETE FROM faces WHERE photo_id IN (SELECT id FROM _dup_ids);
DELETE FROM face_scans WHERE photo_id IN (SELECT id FROM _dup_ids);
DELETE FROM tag_scores WHERE photo_id IN (SELECT id FROM _dup_ids);
DELETE FROM tag_decisions WHERE photo_id IN (SELECT id FROM _dup_ids);
DELETE FROM photo_ratings WHERE photo_id IN (SELECT id FROM _dup_ids);
DELETE FROM takeout WHERE photo_id IN (SELECT id FROM _dup_ids);
DELETE FROM photo_people WHERE photo_id IN (SELECT id FROM _dup_ids);
DELETE FROM photo_events WHERE photo_id IN (SELECT id FROM _dup_ids);
DELETE FROM not_duplicates WHERE photo_a IN (SELECT id FROM _dup_ids) OR photo_b IN (SELECT id FROM _dup_ids);
DELETE FROM photos WHERE id IN (SELECT id FROM _dup_ids);
-- The saved vector indexes held the removed rows: a new data version makes them stale.
UPDATE settings SET value = CAST(CAST(value AS BIGINT) + 1 AS VARCHAR)
    WHERE key = 'data_version' AND EXISTS (SELECT 1 FROM _dup_ids);
DROP TABLE _dup_ids;
