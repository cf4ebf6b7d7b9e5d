-- 0014: keywords from the files (issue 17). keyword_paths holds a photo's hierarchical keywords
-- ("Places/France/Paris": Lightroom's hierarchicalSubject, digiKam's TagsList, Windows'
-- LastKeywordXMP), beside the flat `keywords`. tag_decisions.source says who decided: NULL for
-- the user, 'file' for a keyword read from the photo's metadata (refreshed at every index run;
-- a user's decision on the same photo and tag always wins).
ALTER TABLE photos ADD COLUMN keyword_paths VARCHAR[];
ALTER TABLE tag_decisions ADD COLUMN source VARCHAR;
