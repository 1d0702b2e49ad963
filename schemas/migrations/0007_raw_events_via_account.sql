-- The account whose own source delivered a payload (an inbox, notifications, a Page
-- webhook). Attribution depends on it, so re-publishing from the archive after a restart
-- on an empty broker must send it again.
ALTER TABLE raw_events ADD COLUMN IF NOT EXISTS via_account String DEFAULT '';
