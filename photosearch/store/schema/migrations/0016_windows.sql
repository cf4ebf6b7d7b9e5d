-- 0016: window hashes (issue 16): pHashes of sub-windows of each photo (centred and corner crops,
-- and rectangles bounded by edges: a picture inside a screenshot or a frame), so that a crop of
-- a photo, or a screenshot holding it, is found as a duplicate candidate. An empty list: a video,
-- or nothing to hash. A photo without a row gets one at the next `index`.
CREATE TABLE image_windows (
    photo_id BIGINT PRIMARY KEY,
    windows UBIGINT[] NOT NULL
);
