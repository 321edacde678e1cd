# scripts/lib/daemon.bash - sourced by the benchmark scripts that time a provfs
# daemon's exit.
#
# daemon_running PID: is the process still running?  A zombie is not: it has
# exited.  The daemon detaches at mount, so init reaps it, and init may take a
# second or more to do so (1.5 s on the VM the benchmarks run on): `kill -0`
# would count that wait as the daemon's.
daemon_running() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}
