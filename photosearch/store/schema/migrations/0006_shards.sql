-- Shards (issue 8): manifest shards of pending photos written by the coordinator, embedded
-- anywhere (in process or on Ray), then ingested. Ids in a manifest are reserved from
-- photo_id_seq when it is written, so they are stable across crashes and reruns.
CREATE TABLE shards (
    name VARCHAR PRIMARY KEY,
    photos INTEGER NOT NULL,
    paths VARCHAR[],
    created_at TIMESTAMP,
    ingested_at TIMESTAMP
);

-- Files a shard embedder could not use, so unchanged ones are not planned again.
CREATE TABLE shard_skips (
    path VARCHAR PRIMARY KEY,
    size BIGINT,
    mtime_ns BIGINT,
    reason VARCHAR
);
