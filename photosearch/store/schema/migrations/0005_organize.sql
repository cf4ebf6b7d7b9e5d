-- Takeout sidecars, events and organizing (issue 6).
--
-- takeout: what a Google Takeout JSON beside a photo said (UTC date, place,
-- description, people), kept so `sync` can offer to write it into the file.
-- photo_people: people named for a whole photo (no face box), e.g. by Takeout.
-- events: photos grouped by time gaps and distance; photo_events links them.
-- Events are recomputed as a whole (`photosearch events`); `key` (the start time)
-- is stable while the event's first photo stays.
CREATE TABLE takeout (
    photo_id BIGINT PRIMARY KEY,
    json_path VARCHAR,
    taken_at TIMESTAMP,
    gps_lat DOUBLE,
    gps_lon DOUBLE,
    description VARCHAR,
    people VARCHAR[]
);

CREATE TABLE photo_people (
    photo_id BIGINT NOT NULL,
    name VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    PRIMARY KEY (photo_id, name)
);

CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    key VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    start_at TIMESTAMP,
    end_at TIMESTAMP,
    place VARCHAR,
    lat DOUBLE,
    lon DOUBLE,
    tags VARCHAR[],
    photos INTEGER
);

CREATE TABLE photo_events (
    photo_id BIGINT PRIMARY KEY,
    event_id INTEGER NOT NULL
);
