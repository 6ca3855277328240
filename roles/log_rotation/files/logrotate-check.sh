#!/bin/sh
# Check of a candidate logrotate file by the log_rotation role, run on the host as the
# validate command of its template task: /bin/sh -c "THIS TEXT" log_rotation_check FILE NAME.
# Checks the candidate with logrotate itself, in the context of the whole configuration:
# /etc/logrotate.conf with its include of /etc/logrotate.d pointed at a staged copy of
# /etc/logrotate.d/ in which the candidate replaces /etc/logrotate.d/NAME. So an invalid
# option, an unknown user, a missing endscript and a log already handled by another file
# (duplicate log entry) are all caught before the file is installed. The candidate is
# rejected when logrotate reports an error that the installed configuration does not already
# have (logrotate exits 0 after some errors, e.g. an unknown option, so its error lines are
# what counts; errors elsewhere that predate the candidate do not block it). Prints the new
# error lines on stderr.
# The text goes to sh -c between single quotes and through the percent operator of Python
# (validate fills in the candidate there): it holds neither character, comments included
# (tests/unit/test_log_rotation_plan.py checks).
set -u
cand=$1 name=$2
stage=$(mktemp -d) || exit 1
trap "rm -rf $stage" EXIT
mkdir "$stage/d"
for f in /etc/logrotate.d/*; do
  if [ -f "$f" ] && [ "$f" != "/etc/logrotate.d/$name" ]; then cp -p "$f" "$stage/d/"; fi
done
install -m 0644 "$cand" "$stage/d/$name"
sed "s|^\([[:space:]]*include[[:space:]][[:space:]]*\)/etc/logrotate\.d/*[[:space:]]*$|\1$stage/d|" /etc/logrotate.conf >"$stage/main.conf"
if ! grep -q "$stage/d" "$stage/main.conf"; then
  echo "error: /etc/logrotate.conf has no line include /etc/logrotate.d" >&2
  exit 1
fi
logrotate -d /etc/logrotate.conf 2>&1 | grep "^error:" | sort -u >"$stage/before"
logrotate -d "$stage/main.conf" >"$stage/out" 2>&1
rc=$?
grep "^error:" "$stage/out" | sed "s|$stage/d/|/etc/logrotate.d/|g" | sort -u >"$stage/after"
comm -13 "$stage/before" "$stage/after" >"$stage/new"
if [ -s "$stage/new" ]; then
  cat "$stage/new" >&2
  exit 1
fi
if [ "$rc" -ne 0 ] && [ ! -s "$stage/before" ]; then
  tail -n 3 "$stage/out" >&2
  exit "$rc"
fi
exit 0
