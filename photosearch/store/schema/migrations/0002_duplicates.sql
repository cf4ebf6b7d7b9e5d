-- 0002: near-duplicate detection and reversible resolution; rows files beside vector indexes.

-- Perceptual hashes per photo (see photosearch/hashes.py): pHash of the border-trimmed
-- image in its 8 rotations/mirrorings (index 1 = as displayed), and a dHash.
CREATE TABLE image_hashes (
    photo_id  BIGINT NOT NULL,
    phash     UBIGINT[] NOT NULL,
    dhash     UBIGINT NOT NULL,
    content_width   INTEGER,    -- size of the picture inside uniform borders, in full-size pixels
    content_height  INTEGER
);

-- Set when `dupes --move-to` quarantines a photo; such photos leave search results.
ALTER TABLE photos ADD COLUMN quarantined_at TIMESTAMP;

-- "Not duplicates" decisions (`dupes keep-both`), photo_a < photo_b.
CREATE TABLE not_duplicates (
    photo_a     BIGINT NOT NULL,
    photo_b     BIGINT NOT NULL,
    decided_at  TIMESTAMP NOT NULL
);

-- The rows file written with each vector index: what a search shows per photo (path, date,
-- camera...), so an unfiltered search needs no catalog query. See FORMAT.md.
ALTER TABLE vector_index ADD COLUMN rows_file VARCHAR;
