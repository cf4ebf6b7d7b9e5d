-- 0015: albums (issue 21). A manual album lists its photos in album_photos (source NULL: added
-- by the user; 'file': read from an `Albums/NAME` keyword in the photo's metadata). A smart
-- album is a saved search: its text query and filters (JSON, the search options' names), run
-- again whenever it is shown.
CREATE SEQUENCE album_id_seq START 1;
CREATE TABLE albums (
    id         BIGINT PRIMARY KEY DEFAULT nextval('album_id_seq'),
    name       VARCHAR NOT NULL,
    query      VARCHAR,
    filters    VARCHAR,
    created_at TIMESTAMP
);
CREATE TABLE album_photos (
    album_id BIGINT NOT NULL,
    photo_id BIGINT NOT NULL,
    source   VARCHAR,
    added_at TIMESTAMP,
    PRIMARY KEY (album_id, photo_id)
);
