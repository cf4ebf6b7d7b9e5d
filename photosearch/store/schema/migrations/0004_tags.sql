-- Tags (issue 5).
--
-- tags: every known tag: from the taxonomy file (source 'taxonomy') or created by
-- hand (source 'user', group 'user'). Names are unique case-insensitively.
-- tag_scores: the latest score of every (photo, tag), a probability in 0..1, and
-- which CLIP model and which scorer ('zero-shot' or 'probe') made it. Replaced
-- per tag by every `photosearch tag` run.
-- tag_decisions: what the user said: 'accepted' or 'rejected' (no row: 'auto').
-- tag_probes: per-tag linear probe on CLIP vectors, trained on the decisions.
CREATE TABLE tags (
    name VARCHAR PRIMARY KEY,
    grp VARCHAR,
    parent VARCHAR,
    threshold DOUBLE NOT NULL,
    aliases VARCHAR[],
    prompts VARCHAR[],
    source VARCHAR NOT NULL,
    created_at TIMESTAMP
);

CREATE TABLE tag_scores (
    photo_id BIGINT NOT NULL,
    tag VARCHAR NOT NULL,
    score DOUBLE NOT NULL,
    model VARCHAR,
    scorer VARCHAR
);
CREATE INDEX tag_scores_tag ON tag_scores (tag);
CREATE INDEX tag_scores_photo ON tag_scores (photo_id);

CREATE TABLE tag_decisions (
    photo_id BIGINT NOT NULL,
    tag VARCHAR NOT NULL,
    state VARCHAR NOT NULL,
    decided_at TIMESTAMP,
    PRIMARY KEY (photo_id, tag)
);

CREATE TABLE tag_probes (
    tag VARCHAR PRIMARY KEY,
    model VARCHAR NOT NULL,
    weights BLOB NOT NULL,
    bias DOUBLE NOT NULL,
    positives INTEGER,
    negatives INTEGER,
    trained_at TIMESTAMP
);

-- Ratings set in photosearch (`photosearch rate`), to be written by `sync`.
CREATE TABLE photo_ratings (
    photo_id BIGINT PRIMARY KEY,
    rating INTEGER NOT NULL,
    rated_at TIMESTAMP
);
