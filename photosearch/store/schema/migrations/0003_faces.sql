-- Faces and people (issue 3).
--
-- faces: one row per face in a photo. Boxes are normalized (0..1) to the photo
-- as displayed (EXIF orientation applied), top-left origin. A detected face has
-- the vector of the face model named in `model`; a face known only from a
-- region stored in the file (digiKam, Lightroom, Picasa...) has no vector.
-- person_id: the person (or unnamed cluster) the face belongs to, set by
-- clustering ('auto'), by hand ('user') or from the file's region ('file').
CREATE SEQUENCE face_id_seq START 1;
CREATE SEQUENCE person_id_seq START 1;

CREATE TABLE faces (
    id BIGINT PRIMARY KEY,
    photo_id BIGINT NOT NULL,
    model VARCHAR,
    x DOUBLE NOT NULL,
    y DOUBLE NOT NULL,
    w DOUBLE NOT NULL,
    h DOUBLE NOT NULL,
    score DOUBLE,
    vector BLOB,
    person_id BIGINT,
    assigned VARCHAR,
    source VARCHAR NOT NULL,
    region_name VARCHAR
);
CREATE INDEX faces_photo ON faces (photo_id);

-- Which photos a face model has looked at (also those with no face).
CREATE TABLE face_scans (
    photo_id BIGINT NOT NULL,
    model VARCHAR NOT NULL,
    faces INTEGER NOT NULL,
    scanned_at TIMESTAMP,
    PRIMARY KEY (photo_id, model)
);

-- People: named people and unnamed clusters (name NULL).
CREATE TABLE people (
    id BIGINT PRIMARY KEY,
    name VARCHAR,
    created_at TIMESTAMP
);

-- `people reject FACE`: this face is not this person; never proposed again.
CREATE TABLE face_rejections (
    face_id BIGINT NOT NULL,
    person_id BIGINT NOT NULL,
    rejected_at TIMESTAMP,
    PRIMARY KEY (face_id, person_id)
);
