-- 0011: Apple's Live Photo identifier (issue 18): the still's MakerNote MediaGroupUUID (formerly
-- ContentIdentifier) and the movie's com.apple.quicktime.content.identifier hold the same UUID,
-- which pairs the two halves whatever their names or folders.
ALTER TABLE photos ADD COLUMN live_id VARCHAR;
