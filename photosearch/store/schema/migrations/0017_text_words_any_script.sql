-- 0017: the words `--words` forgives typos in are runs of letters and digits of any script
-- (Unicode classes L and N), not ASCII ones alone: a Cyrillic, Greek or CJK word was cut at
-- every letter before, and its typos never found. Rebuilt from the documents; a word whose
-- photos are gone is dropped from the vocabulary with it.
DELETE FROM text_words;
INSERT INTO text_words SELECT DISTINCT w, photo_id FROM (SELECT photo_id,
    unnest(regexp_split_to_array(doc, '[^\pL\pN]+')) AS w FROM photo_docs) WHERE length(w) >= 2;
DELETE FROM text_vocab;
INSERT INTO text_vocab SELECT DISTINCT word FROM text_words;
