#!/bin/sh
# install-config.sh EXAMPLE CONFIG_DIR - meson install script: put the
# commented example provfs.conf in CONFIG_DIR (under $DESTDIR) unless a
# provfs.conf is already there: an administrator's file is never replaced.
# The file must be owned by root and not writable by group or others
# (provfs refuses it otherwise); a staged DESTDIR install by a user other
# than root keeps that user's ownership for the packager to fix.
set -eu
example=$1
dir=${DESTDIR:-}$2
target=$dir/provfs.conf

install -d -m 755 "$dir"
if [ -e "$target" ] || [ -L "$target" ]; then
	echo "install-config: keeping the existing $target (example: $example)"
	exit 0
fi
install -m 644 "$example" "$target.tmp.$$"
[ "$(id -u)" = 0 ] && chown root:root "$target.tmp.$$"
# link(2) fails when the name exists: even a racing writer's file is kept.
if ! ln "$target.tmp.$$" "$target" 2>/dev/null; then
	rm -f "$target.tmp.$$"
	echo "install-config: keeping the existing $target (example: $example)"
	exit 0
fi
rm -f "$target.tmp.$$"
echo "install-config: installed $target"
