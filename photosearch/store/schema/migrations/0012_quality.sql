-- 0012: how a photo looks, for films (issue 20): sharpness (variance of the Laplacian of its
-- grey levels at 256 px), brightness (mean grey level, 0-1), highlight (the 99th percentile grey
-- level, 0-1: low when nothing in the frame is bright, an underexposed shot) and blown (the share
-- of pixels blown to white). Made with the hashes from the same pixels; NULL for rows indexed
-- before (films then measure the thumbnail).
ALTER TABLE image_hashes ADD COLUMN sharpness DOUBLE;
ALTER TABLE image_hashes ADD COLUMN brightness DOUBLE;
ALTER TABLE image_hashes ADD COLUMN highlight DOUBLE;
ALTER TABLE image_hashes ADD COLUMN blown DOUBLE;
