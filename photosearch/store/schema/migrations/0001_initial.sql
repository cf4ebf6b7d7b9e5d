-- 0001: the core catalog. One row per photo file; vectors per (photo, model).
-- Photo ids are never reused: a file whose bytes change gets a new id, so a
-- vector stored under an id never changes and FAISS indexes can be synced by
-- set difference of ids.

CREATE SEQUENCE photo_id_seq START 1;

CREATE TABLE photos (
    id            BIGINT NOT NULL DEFAULT nextval('photo_id_seq'),
    path          VARCHAR NOT NULL,   -- absolute, as found by the walk
    content_hash  VARCHAR NOT NULL,   -- sha256 of the file bytes, hex
    size          BIGINT NOT NULL,
    mtime_ns      BIGINT NOT NULL,
    width         INTEGER,            -- as displayed (EXIF orientation applied)
    height        INTEGER,
    format        VARCHAR,            -- detected from the content, not the extension
    taken_at      TIMESTAMP,
    camera_make   VARCHAR,
    camera_model  VARCHAR,
    lens          VARCHAR,
    gps_lat       DOUBLE,
    gps_lon       DOUBLE,
    orientation   SMALLINT,           -- EXIF orientation tag, 1..8
    keywords      VARCHAR[],          -- existing XMP dc:subject / IPTC keywords
    rating        SMALLINT,           -- xmp:Rating
    title         VARCHAR,
    description   VARCHAR,
    indexed_at    TIMESTAMP NOT NULL
);

CREATE TABLE embeddings (
    photo_id  BIGINT NOT NULL,
    model     VARCHAR NOT NULL,       -- name of the model in the library's model store
    vector    BLOB NOT NULL           -- float32, L2-normalized, little-endian
);

-- Folders given to `photosearch index`; a bare `photosearch index` re-walks them.
CREATE TABLE roots (
    path      VARCHAR NOT NULL,
    added_at  TIMESTAMP NOT NULL
);

-- Small key/value settings: active model, per-model vector version counters.
CREATE TABLE settings (
    key    VARCHAR NOT NULL,
    value  VARCHAR
);

-- The FAISS index file currently valid for a model, and the vector version it reflects.
CREATE TABLE vector_index (
    model     VARCHAR NOT NULL,
    file      VARCHAR NOT NULL,       -- relative to the library's vectors/ folder
    version   BIGINT NOT NULL,
    kind      VARCHAR NOT NULL,       -- 'flat' or 'ivf'
    count     BIGINT NOT NULL,
    nprobe    INTEGER,
    built_at  TIMESTAMP NOT NULL
);
