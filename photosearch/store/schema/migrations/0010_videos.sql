-- 0010: videos (issue 18). A video is a row of photos (media = 'video') whose own vector, hashes
-- and thumbnail are those of its first sampled frame; its sampled frames are rows of
-- video_frames, each with a CLIP vector per model in frame_embeddings (a vector index of their
-- own, so photo-only code never sees a frame id), and faces found in them carry their moment.
ALTER TABLE photos ADD COLUMN media VARCHAR DEFAULT 'photo';
ALTER TABLE photos ADD COLUMN duration DOUBLE;   -- seconds (videos)
-- The movie half of a Live Photo: the id of its still. Such a movie is never shown on its own
-- (searches, faces, duplicates leave it out) and moves with its still.
ALTER TABLE photos ADD COLUMN live_of BIGINT;
CREATE SEQUENCE frame_id_seq START 1;
CREATE TABLE video_frames (
    id        BIGINT PRIMARY KEY,
    photo_id  BIGINT NOT NULL,        -- the video
    t         DOUBLE NOT NULL,        -- seconds from its start
    phash     UBIGINT[]               -- the frame's 8 pHash variants (as image_hashes.phash)
);
CREATE INDEX video_frames_photo ON video_frames (photo_id);
CREATE TABLE frame_embeddings (
    frame_id  BIGINT NOT NULL,
    model     VARCHAR NOT NULL,
    vector    BLOB NOT NULL           -- float32, L2-normalized, little-endian
);
CREATE INDEX frame_embeddings_frame ON frame_embeddings (frame_id);
ALTER TABLE faces ADD COLUMN t DOUBLE;           -- the moment of a face found in a video
