-- ARGV: channel, kinds ([]), max jobs
-- Deletes up to `max` jobs whose retention has ended (see `sweep` in the prelude). Returns
-- how many; the caller repeats while a full batch came back.
return sweep(tonumber(ARGV[3]), now_ms())
