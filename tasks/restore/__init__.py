"""The `restore` section: the restore test of seed 3.3 and the disaster-recovery checks of section 8.

target.py   the section's model, its bounds, the one way golive connects to the restore server
guard.py    the proof that the restore server is not the production cluster (fail closed)
dump.py     what an S3 object is, from its first bytes (pg_dump archive header)
pipe.py     the S3 object streamed into pg_restore under a watchdog
scratch.py  the scratch databases' names and their cleanup (also at interpreter exit, and stale ones)
counts.py   row counts: the restored copy vs the source (READ ONLY)
suites.py   integrity suites run on the restored copy (the extension point `expectations/` plugs into)
checks.py   backup.restore.server and backup.restore.test
recovery.py RPO, RTO, the rollback script and its rehearsal, the release tag (seed 8.1, 8.2)
"""
