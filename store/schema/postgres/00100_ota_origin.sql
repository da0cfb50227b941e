-- +goose Up
-- Who made each OTA artifact and target, so the FUOTA login (one pair shared by an ESP32 fleet) changes only what
-- it made itself, and nothing it uploaded is signed before a provisioner approves it.
-- firmware_artifacts.origin: 'operator' (/ota/firmware, imports) or 'fuota' (PUT /files); fuota_path: the update
-- file path a FUOTA upload was PUT under (the newest artifact with a path answers GET /files/<path>; artifacts are
-- immutable, so a new PUT is a new row); approved_at/approved_by: a provisioner's approval of a FUOTA upload.
-- ota_targets.origin: 'operator' (/ota/targets, campaigns) or 'fuota' (PUT /devices); prev_origin is the saved
-- target's, restored with it when a campaign ends.
ALTER TABLE firmware_artifacts ADD COLUMN origin text NOT NULL DEFAULT 'operator';
ALTER TABLE firmware_artifacts ADD COLUMN fuota_path text;
ALTER TABLE firmware_artifacts ADD COLUMN approved_at bigint;
ALTER TABLE firmware_artifacts ADD COLUMN approved_by text;
CREATE INDEX firmware_artifacts_fuota_path ON firmware_artifacts (fuota_path, id) WHERE fuota_path IS NOT NULL;
ALTER TABLE ota_targets ADD COLUMN origin text NOT NULL DEFAULT 'operator';
ALTER TABLE ota_campaign_devices ADD COLUMN prev_origin text;
CREATE INDEX ota_campaign_devices_prev_firmware ON ota_campaign_devices (prev_firmware_id)
    WHERE prev_firmware_id IS NOT NULL;

-- Rows from before: /ota/firmware named every upload <version>-b<build>-<first 8 of sha256>.bin, so any other
-- name came through PUT /files. A target pointing at such a file with an app_ver, set by no campaign, for an id
-- that is not a lodestone device, was written by PUT /devices.
UPDATE firmware_artifacts SET origin = 'fuota', fuota_path = filename
    WHERE filename NOT LIKE '%-b%-' || substr(sha256, 1, 8) || '.bin';
UPDATE ota_targets SET origin = 'fuota'
    WHERE from_version IS NOT NULL AND campaign_id IS NULL
    AND firmware_id IN (SELECT id FROM firmware_artifacts WHERE origin = 'fuota')
    AND device_id NOT IN (SELECT device_id FROM devices);

-- +goose Down
DROP INDEX ota_campaign_devices_prev_firmware;
ALTER TABLE ota_campaign_devices DROP COLUMN prev_origin;
ALTER TABLE ota_targets DROP COLUMN origin;
DROP INDEX firmware_artifacts_fuota_path;
ALTER TABLE firmware_artifacts DROP COLUMN approved_by;
ALTER TABLE firmware_artifacts DROP COLUMN approved_at;
ALTER TABLE firmware_artifacts DROP COLUMN fuota_path;
ALTER TABLE firmware_artifacts DROP COLUMN origin;
