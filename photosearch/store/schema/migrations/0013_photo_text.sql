-- 0013: text in photos (issue 19). ocr_scans says a photo was read by an OCR model (and how
-- many lines it has: 0 for most photos); photo_text holds its lines, top to bottom: the text as
-- read, `norm` (case-folded, accents removed: what `--words` matches), the confidence, the
-- line's quadrilateral and its words' boxes (JSON: [[word, [x, y, w, h]], ...]), both in
-- fractions of the upright photo.
CREATE TABLE ocr_scans (
    photo_id   BIGINT NOT NULL,
    model      VARCHAR NOT NULL,
    lines      INTEGER NOT NULL,
    scanned_at TIMESTAMP,
    PRIMARY KEY (photo_id, model)
);
CREATE TABLE photo_text (
    photo_id BIGINT NOT NULL,
    model    VARCHAR NOT NULL,
    line     INTEGER NOT NULL,
    text     VARCHAR NOT NULL,
    norm     VARCHAR NOT NULL,
    score    DOUBLE,
    quad     DOUBLE[8],
    words    VARCHAR
);
CREATE INDEX photo_text_photo ON photo_text (photo_id);
-- What `--words` scans: one normalized document per photo (sub-strings and phrases), its
-- distinct words (typos: a word of the vocabulary within a few edits leads to its photos), and
-- the vocabulary of every word read (kept when photos go; a stale word only finds nothing).
CREATE TABLE photo_docs (
    photo_id BIGINT PRIMARY KEY,
    doc      VARCHAR NOT NULL
);
CREATE TABLE text_words (
    word     VARCHAR NOT NULL,
    photo_id BIGINT NOT NULL
);
CREATE INDEX text_words_word ON text_words (word);
CREATE TABLE text_vocab (
    word VARCHAR PRIMARY KEY
);
