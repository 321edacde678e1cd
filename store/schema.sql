-- provfs provenance store, schema version 8.
--
-- One SQLite database (WAL mode) may be shared by several mounts and hosts.
-- The recorder's single writer thread is the only writer of a daemon;
-- provfs-query only reads.  Times are nanoseconds since the Unix epoch
-- (UTC) in INTEGER columns whose names end in _ns.  Hashes are XXH3-128 as
-- 32 lowercase hex digits, exactly the first field of `xxhsum -H2 FILE`.
-- Paths of files are relative to the mount root (no leading '/'); the
-- mount session says where that root was mounted and what it passed
-- through, so a path given by a user (in the mount, in the backing
-- directory, or relative) is resolved through mount_sessions.
--
-- The lineage graph, as W3C PROV would say it:
--   versions (entities) --written_version_id-- accesses --process_id-- processes (activities)
--   processes --read_version_id via accesses--> versions ("used")
--   processes --run_id--> runs (grouping activities; a job's one execution)
-- A file's identity follows its inode (host, device, inode, generation);
-- file_names keeps the history of its paths.
--
-- Migrations: PRAGMA user_version holds the schema version; store.c applies
-- each step above the stored version in one transaction and refuses a store
-- whose version is newer than it knows.

-- One row per mount: where, what, by which daemon.
CREATE TABLE mount_sessions (
	id INTEGER PRIMARY KEY,
	host TEXT NOT NULL,
	backing_dir TEXT NOT NULL,           -- absolute, canonical
	mount_point TEXT NOT NULL,           -- absolute, canonical (= backing_dir when mounted in place)
	provfs_version TEXT NOT NULL,
	daemon_pid INTEGER NOT NULL,
	started_ns INTEGER NOT NULL,
	stopped_ns INTEGER,                  -- NULL while mounted, or after the daemon was killed
	backing_exposed INTEGER NOT NULL,    -- 1: users other than root can reach backing_dir directly
	recording INTEGER NOT NULL,          -- 1: this daemon records (a -o norecord mount has no
	                                     -- store and leaves no session row)
	policy INTEGER NOT NULL,             -- 0 when mounted with -o nopolicy
	policy_revision TEXT,                -- XXH3-128 of the provfs.conf in force (labels issue)
	config_reload_failures INTEGER NOT NULL DEFAULT 0, -- SIGHUP reloads refused
	last_config_error TEXT,              -- why the last refused reload failed
	-- (version 8) the backing directory itself: device, inode and generation
	-- (NULL when unknown).  A later mount of the same directory under another
	-- path (it was moved) carries its files' rows over
	-- (recorder/moved_backing.c).
	backing_device INTEGER,
	backing_inode INTEGER,
	backing_generation INTEGER
);
CREATE INDEX mount_sessions_backing ON mount_sessions(backing_device, backing_inode); -- version 8

-- A run: one execution of a job; groups the processes of a pipeline.
-- Its root is the session leader, or the topmost process carrying the same
-- PROVFS_JOB.  uuid is derived from (host, root pid, root start, job) so it
-- is stable and the same in every export.
CREATE TABLE runs (
	id INTEGER PRIMARY KEY,
	uuid TEXT NOT NULL UNIQUE,
	job_name TEXT NOT NULL,              -- PROVFS_JOB, else the root's executable name
	named_by TEXT NOT NULL,              -- 'PROVFS_JOB' or 'session'
	host TEXT NOT NULL,
	root_pid INTEGER NOT NULL,
	root_start_ns INTEGER NOT NULL,
	started_ns INTEGER NOT NULL,
	ended_ns INTEGER,                    -- when its root process exited, if seen; with
	                                     -- end_unknown, when a later daemon found it gone
	parent_namespace TEXT,               -- OPENLINEAGE_PARENT_JOB_NAMESPACE (orchestrator run)
	parent_job_name TEXT,                -- OPENLINEAGE_PARENT_JOB_NAME
	parent_run_id TEXT,                  -- OPENLINEAGE_PARENT_RUN_ID
	-- (version 3) The root of the orchestrator's chain of runs (the DAG run
	-- above the task that is the parent): OPENLINEAGE_ROOT_PARENT_*; the
	-- parent itself when a parent was named without a root (OpenLineage's
	-- rule: such a parent started the chain); NULL when unknown (recorded
	-- before version 3).
	root_parent_namespace TEXT,
	root_parent_job_name TEXT,
	root_parent_run_id TEXT,
	-- (version 7) 1: no daemon saw the root process end.  The daemon that
	-- recorded the run stopped (killed, crashed, unmounted) while the root
	-- still ran; a later daemon of the same host found the root gone (its
	-- pid free, or another process's) and closed the run: ended_ns is when
	-- it noticed, the end itself came earlier, at a time nobody knows.  Its
	-- OpenLineage terminal event is ABORT.  0: ended_ns (when set) is the
	-- root's exit as seen.
	end_unknown INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_job ON runs(job_name, started_ns);
CREATE INDEX runs_started ON runs(started_ns);
-- The runs still open: what a starting daemon looks through for runs whose
-- root ended while no daemon recorded it (version 7).
CREATE INDEX runs_open ON runs(host) WHERE ended_ns IS NULL;

-- A process image: (host, pid, start time, kernel_id) tells processes apart
-- across pid reuse; exec_index counts execve() calls, each of which makes a
-- new row linked to the image before it (previous_id).  kernel_id is the
-- pidfs inode of the process, which only Linux 6.9 and later give each
-- process; before, every pidfd shares one anonymous inode, kernel_id is 0,
-- and a pid reused within one clock tick of the start time (PID@START) is
-- not told apart.
CREATE TABLE processes (
	id INTEGER PRIMARY KEY,
	host TEXT NOT NULL,
	pid INTEGER NOT NULL,
	start_ns INTEGER NOT NULL,           -- boot time + start ticks (what PID@START is made of)
	exec_index INTEGER NOT NULL,
	parent_id INTEGER REFERENCES processes(id),
	previous_id INTEGER REFERENCES processes(id),
	run_id INTEGER REFERENCES runs(id),
	mount_session_id INTEGER REFERENCES mount_sessions(id),
	executable TEXT,                     -- absolute path as the kernel reports it
	executable_hash TEXT,                -- NULL until hashed, or when unreadable
	argv BLOB NOT NULL,                  -- the words, each followed by a NUL byte (exact bytes,
	                                     -- any encoding); redacted words are "[REDACTED]"
	cwd TEXT,
	uid INTEGER NOT NULL,
	gid INTEGER NOT NULL,
	session_id INTEGER,
	cgroup TEXT,
	seen_ns INTEGER NOT NULL,            -- first seen by provfs
	exited_ns INTEGER,                   -- exit, or when it was seen gone
	exit_status INTEGER,                 -- wait status as the kernel reports it; NULL when unknown
	exit_known INTEGER NOT NULL DEFAULT 0,
	kernel_id INTEGER NOT NULL DEFAULT 0, -- pidfs inode (Linux >= 6.9): unique since boot, tells
	                                     -- apart a pid reused within one clock tick; 0 unknown,
	                                     -- always 0 before 6.9 (see above)
	UNIQUE (host, pid, start_ns, exec_index, kernel_id)
);
CREATE INDEX processes_run ON processes(run_id);
CREATE INDEX processes_parent ON processes(parent_id);
CREATE INDEX processes_pid ON processes(pid, start_ns);

-- A file: an inode of a backing filesystem.
CREATE TABLE files (
	id INTEGER PRIMARY KEY,
	host TEXT NOT NULL,
	device INTEGER NOT NULL,
	inode INTEGER NOT NULL,
	generation INTEGER NOT NULL,
	backing_dir TEXT NOT NULL,
	path TEXT NOT NULL,                  -- last known path
	first_seen_ns INTEGER NOT NULL,
	removed_ns INTEGER,                  -- last name unlinked
	UNIQUE (host, device, inode, generation)
);
CREATE INDEX files_path ON files(backing_dir, path);
-- The newest row of an inode number, in one seek however often the backing
-- filesystem gave the number out again (a rename over a file frees one that
-- the next new file takes: thousands of rows per number); the UNIQUE index
-- orders by generation, which is random.
CREATE INDEX files_inode ON files(host, device, inode); -- version 5

-- Every path a file had, with when; several at once for hard links.
CREATE TABLE file_names (
	id INTEGER PRIMARY KEY,
	file_id INTEGER NOT NULL REFERENCES files(id),
	backing_dir TEXT NOT NULL,
	path TEXT NOT NULL,
	since_ns INTEGER NOT NULL,
	until_ns INTEGER,                    -- renamed away or unlinked
	how TEXT NOT NULL                    -- 'seen', 'create', 'rename', 'link'
);
CREATE INDEX file_names_path ON file_names(backing_dir, path, since_ns);
CREATE INDEX file_names_file ON file_names(file_id);
-- The current names: what every rename and unlink looks at, in O(log n)
-- however many names a path or a file had before.  Names beneath a
-- directory are a range: path >= 'dir/' AND path < 'dir0'.
CREATE INDEX file_names_current ON file_names(backing_dir, path) WHERE until_ns IS NULL;
CREATE INDEX file_names_current_file ON file_names(file_id) WHERE until_ns IS NULL;

-- A version: the content of a file between two changes.  number counts
-- 1, 2, 3 ... per file in recording order.
CREATE TABLE versions (
	id INTEGER PRIMARY KEY,
	file_id INTEGER NOT NULL REFERENCES files(id),
	number INTEGER NOT NULL,
	size INTEGER NOT NULL,
	mtime_ns INTEGER NOT NULL,
	ctime_ns INTEGER NOT NULL,
	hash TEXT,                           -- NULL while pending or when not hashable
	hash_state TEXT NOT NULL,            -- 'pending', 'hashed', 'changed' (modified again before
	                                     -- its hash was taken), 'failed' (could not be read: gone,
	                                     -- removed or renamed over before its turn, or
	                                     -- unreadable), 'unhashed' (the hash
	                                     -- queue was full: never hashed, counted in
	                                     -- recorder_stats.hashes_unhashed)
	origin TEXT NOT NULL,                -- 'written': produced through provfs;
	                                     -- 'external': changed outside provfs (unattributed);
	                                     -- 'initial': first seen, history unknown;
	                                     -- 'unrecorded' (version 4): written through provfs,
	                                     -- but the store lost its record (it failed, say full,
	                                     -- when the writer's batch came); recorded when it was
	                                     -- next read, with its producer when known
	producer_process_id INTEGER REFERENCES processes(id), -- last writer to close ('written',
	                                     -- 'unrecorded')
	recorded_ns INTEGER NOT NULL,        -- when it came to be: its last writer's close(2) (a
	                                     -- truncate's time; for 'initial', 'external' and
	                                     -- 'unrecorded', the open that found it); what --at
	                                     -- compares.  Stores before 2026-12-07 hold the time
	                                     -- the daemon wrote the row, up to its queue later
	label TEXT,                          -- propagated label of this version (labels issue)
	label_from_version_id INTEGER REFERENCES versions(id), -- the input it was propagated from
	hash_method TEXT,                    -- (version 3) how the hash was taken: 'streamed' (from
	                                     -- the bytes written through provfs, in order from
	                                     -- offset 0, as they passed; or a truncate to size 0),
	                                     -- 'reread' (the hash pool read the file back after the
	                                     -- fact: random or partial writes, external and initial
	                                     -- versions); NULL while there is no hash, or unknown
	                                     -- (hashed before version 3)
	UNIQUE (file_id, number)
);
CREATE INDEX versions_hash ON versions(hash);
CREATE INDEX versions_producer ON versions(producer_process_id);
CREATE INDEX versions_origin ON versions(origin) WHERE origin = 'external';
CREATE INDEX versions_unrecorded ON versions(origin) WHERE origin = 'unrecorded'; -- version 4
-- Versions whose hash is still to be taken: a daemon finishes those an
-- earlier one left (recorder/pending_hashes.c).  Version 8.
CREATE INDEX versions_pending ON versions(file_id) WHERE hash_state = 'pending';

-- An access: one open handle, aggregated at close.
CREATE TABLE accesses (
	id INTEGER PRIMARY KEY,
	process_id INTEGER NOT NULL REFERENCES processes(id),
	file_id INTEGER NOT NULL REFERENCES files(id),
	mount_session_id INTEGER NOT NULL REFERENCES mount_sessions(id),
	path TEXT NOT NULL,                  -- path at open
	open_flags INTEGER NOT NULL,         -- as open(2) got them
	is_exec INTEGER NOT NULL DEFAULT 0,  -- opened to execute
	read_version_id INTEGER REFERENCES versions(id),    -- input: the version read
	written_version_id INTEGER REFERENCES versions(id), -- output: the version produced
	opened_ns INTEGER NOT NULL,
	closed_ns INTEGER,
	-- Bytes and calls the daemon served (page-cache hits excluded); NULL when
	-- unknown: the kernel passed the handle's data through (FUSE passthrough).
	bytes_read INTEGER DEFAULT 0,
	bytes_written INTEGER DEFAULT 0,
	read_calls INTEGER DEFAULT 0,
	write_calls INTEGER DEFAULT 0
);
CREATE INDEX accesses_process ON accesses(process_id);
CREATE INDEX accesses_written_version ON accesses(written_version_id)
	WHERE written_version_id IS NOT NULL;
-- A file's accesses, and the readers of one of its versions (a version
-- belongs to one file): one index serves both, so that each recorded open
-- costs the writer one index fewer (version 6; before it, accesses_file on
-- (file_id, opened_ns) and accesses_read_version on (read_version_id)).
CREATE INDEX accesses_file_read ON accesses(file_id, read_version_id, opened_ns);

-- Changes to names and attributes, with who made them.
CREATE TABLE namespace_events (
	id INTEGER PRIMARY KEY,
	kind TEXT NOT NULL,                  -- 'create', 'rename', 'exchange', 'link', 'unlink',
	                                     -- 'truncate', 'chmod', 'chown', 'xattr' (an
	                                     -- extended attribute or ACL set or removed)
	file_id INTEGER REFERENCES files(id),
	process_id INTEGER REFERENCES processes(id),
	mount_session_id INTEGER NOT NULL REFERENCES mount_sessions(id),
	path TEXT,
	new_path TEXT,
	time_ns INTEGER NOT NULL
);
CREATE INDEX namespace_events_file ON namespace_events(file_id, time_ns);

-- Refused opens (labels issue): who, what, which label against which clearance.
CREATE TABLE denials (
	id INTEGER PRIMARY KEY,
	process_id INTEGER REFERENCES processes(id),
	file_id INTEGER REFERENCES files(id),
	mount_session_id INTEGER NOT NULL REFERENCES mount_sessions(id),
	path TEXT NOT NULL,
	uid INTEGER NOT NULL,
	label TEXT NOT NULL,
	clearance TEXT NOT NULL,
	rule TEXT NOT NULL,                  -- what decided, e.g. "paths: raw/crm/** (line 14)"
	time_ns INTEGER NOT NULL,
	operation TEXT NOT NULL DEFAULT 'read', -- 'read', 'exec', 'xattr-read' (getxattr of user.*), 'write-down'
	label_source TEXT,                   -- where the label came from: "rule raw/crm/** (line 14)",
	                                     -- "explicit", "propagated from PATH"
	grants TEXT,                         -- the grant lines considered and why each did not hold
	version_id INTEGER REFERENCES versions(id), -- the file's version at the time, if recorded
	policy_revision TEXT                 -- XXH3-128 of the provfs.conf in force
);
CREATE INDEX denials_time ON denials(time_ns);

-- Labels set by admins, including declassifications (labels issue).
CREATE TABLE label_changes (
	id INTEGER PRIMARY KEY,
	file_id INTEGER NOT NULL REFERENCES files(id),
	version_id INTEGER REFERENCES versions(id),
	level TEXT,                          -- NULL: explicit label removed
	forced INTEGER NOT NULL DEFAULT 0,   -- declassification below the propagated/rule level
	reason TEXT,
	uid INTEGER NOT NULL,
	time_ns INTEGER NOT NULL
);
CREATE INDEX label_changes_file ON label_changes(file_id, time_ns);

-- OpenLineage events waiting for delivery, in order per run (open-standards issue).
CREATE TABLE openlineage_outbox (
	id INTEGER PRIMARY KEY,
	run_id INTEGER NOT NULL REFERENCES runs(id),
	event_type TEXT NOT NULL,            -- 'START', 'COMPLETE', 'FAIL', 'ABORT'
	event TEXT NOT NULL,                 -- the JSON document, byte-identical on every attempt
	created_ns INTEGER NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	last_error TEXT,
	delivered_ns INTEGER,
	dead_ns INTEGER,                     -- (version 2) refused for good (4xx): dead-lettered
	response TEXT                        -- (version 2) the refusing response, status and body
);
CREATE INDEX openlineage_outbox_pending ON openlineage_outbox(id)
	WHERE delivered_ns IS NULL AND dead_ns IS NULL;
CREATE INDEX openlineage_outbox_run ON openlineage_outbox(run_id, event_type);

-- Recorder counters per mount session, refreshed by the writer thread.
CREATE TABLE recorder_stats (
	mount_session_id INTEGER PRIMARY KEY REFERENCES mount_sessions(id),
	events_queued INTEGER NOT NULL,
	events_written INTEGER NOT NULL,
	events_lost INTEGER NOT NULL,        -- counted loss while the store failed
	batches INTEGER NOT NULL,
	queue_high_water INTEGER NOT NULL,
	queue_capacity INTEGER NOT NULL,
	hash_backlog INTEGER NOT NULL,
	hashes_done INTEGER NOT NULL,
	store_errors INTEGER NOT NULL,
	last_error TEXT,
	updated_ns INTEGER NOT NULL,
	hashes_unhashed INTEGER NOT NULL DEFAULT 0, -- versions left 'unhashed' (hash queue full)
	queue_length INTEGER NOT NULL DEFAULT 0 -- events queued, not yet written, as of updated_ns:
	                                     -- what a crash then loses (see stats)
);
