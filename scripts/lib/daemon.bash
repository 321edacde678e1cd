# scripts/lib/daemon.bash - sourced by the scripts that wait for a provfs
# daemon to exit (the benchmarks time it; demo and soak wait on it).
#
# daemon_running PID: is the process still running?  A zombie is not: it has
# exited.  The daemon detaches at mount, so init reaps it, and init may take a
# second or more to do so (1.5 s on the VM the benchmarks run on): `kill -0`
# would count that wait as the daemon's.  A daemon started in the foreground
# by the script itself stays a zombie until the script waits for it.
daemon_running() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}
