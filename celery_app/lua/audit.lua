-- Append one audit entry on its own, for a change made of plain commands in the same MULTI
-- (celery_app/audit.py). ARGV[5] the entry (lib.lua audit). Returns 'ok'.
audit(ARGV[5])
return 'ok'
