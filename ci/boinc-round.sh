#!/usr/bin/env bash
# The whole round through a real BOINC project on this machine: ci/boinc-project.sh's project
# (BOINC's server built from source, MariaDB, Apache, the daemons and tasks of config.xml) and
# two of Debian's real BOINC clients attached over loopback, one honest, one hostile (BOINC's
# anonymous platform with tests/boinc-project/hostile.sh, which corrupts every delta).
#
# It runs the tiny skill until the aggregate task has made two global versions, stops making
# work, lets the clients finish, and checks in BOINC's database and agiNet's files:
# honest results valid and credited (host and user), hostile ones invalid, uncredited and their
# work units completed by the honest client; each honest delta queued once; v1 then v2, with
# v1 work units carrying v1's adapter and honest results made from it; file_deleter's work; the
# base downloaded once and kept (sticky); the snapshot's hosts and credit equal to BOINC's; and
# the resident validator deciding results (honest and hostile) for script_validator; and
# the validator daemon killed mid-run and restarted losing no result and
# counting none twice (killed with SIGKILL and started again with bin/start; bin/stop would
# also shut the scheduler, see below).
#
# Usage: ci/boinc-round.sh [DIR]   (default target/boinc-round; kept for inspection)
# Budget: 10 minutes on 2 cores with BOINC's build cached (ci/boinc-server-build.sh); it uses
# the debug aginet-server and the release static app that ci/test.sh has built (built here
# otherwise).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${1:-$REPO/target/boinc-round}"
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
START=$SECONDS
DEADLINE=$((SECONDS + ${AGINET_ROUND_BUDGET_S:-540}))

say() { echo "boinc-round.sh [$((SECONDS - START)) s]: $*" >&2; }
fail() {
  say "FAILED: $*"
  if declare -F sql >/dev/null; then
    echo "--- results (server_state outcome validate_state file_delete_state count), work units (assimilate_state file_delete_state count)" >&2
    sql "SELECT server_state, outcome, validate_state, file_delete_state, COUNT(*) FROM result GROUP BY 1, 2, 3, 4" >&2 || true
    sql "SELECT assimilate_state, file_delete_state, COUNT(*) FROM workunit GROUP BY 1, 2" >&2 || true
  fi
  for f in "$DIR"/project/volunteers/*/client.log; do echo "--- $f (last 15 lines)" >&2; tail -15 "$f" >&2; done
  for f in "$DIR"/project/project/log_*/*.log "$DIR"/project/project/log_*/*.out; do
    [ -f "$f" ] && { echo "--- $f (last 10 lines)" >&2; tail -10 "$f" >&2; }
  done
  exit 1
}

cd "$REPO"
# AGINET_SERVER: an aginet-server built already (ci/test.sh passes the tests' own, so that this
# script takes no lock on target/debug, where the CUDA check builds beside it).
if [ -z "${AGINET_SERVER:-}" ]; then
  cargo build --quiet -p aginet-server
  AGINET_SERVER="$REPO/target/debug/aginet-server"
fi
rm -rf "$DIR"
cleanup() {
  ci/boinc-project.sh down "$DIR/project" >/dev/null 2>&1 || true
}
# AGINET_ROUND_KEEP=1 leaves the project and the clients running, to look around
# (ci/boinc-project.sh down DIR/project stops them).
[ "${AGINET_ROUND_KEEP:-0}" = 1 ] || trap cleanup EXIT

AGINET_SERVER="$AGINET_SERVER" AGINET_SKILLS=tiny AGINET_MIN_UNSENT=3 \
  AGINET_BATCH=2 AGINET_CRON_S=5 AGINET_AGGREGATE_PERIOD="45 s" AGINET_SNAPSHOT_PERIOD="1 min" \
  ci/boinc-project.sh up "$DIR/project"
# shellcheck disable=SC1091
. "$DIR/project/settings.sh"
say "project up at $PROJECT_URL"

sql() {
  MYSQL_PWD="$DB_PASSWD" mysql --no-defaults --batch --skip-column-names --protocol tcp \
    --host "$DB_HOST" --port "$DB_PORT" --user "$DB_USER" --database "$DB_NAME" --execute "$1"
}

# The hostile client's anonymous platform: app_info.xml and its files in the project's folder
# before it attaches, so the client never fetches the project's own app version.
version_num=$(sql "SELECT MAX(version_num) FROM app_version JOIN app ON app.id = app_version.appid WHERE app.name = 'aginet'")
hostile_dir="$DIR/project/volunteers/hostile/projects/$PROJECT_FOLDER"
mkdir -p "$hostile_dir"
sed "s/@VERSION_NUM@/$version_num/" tests/boinc-project/app_info.xml >"$hostile_dir/app_info.xml"
install -m 0755 tests/boinc-project/hostile.sh "$hostile_dir/aginet_hostile.sh"
install -m 0755 "$(ls "$BOINC_PROJECT"/apps/aginet/*/x86_64-pc-linux-gnu/aginet_*_x86_64-pc-linux-gnu)" \
  "$hostile_dir/aginet_real"
install -m 0644 "$AGINET_PROJECT/keys/signing.pub" "$hostile_dir/aginet_project_key"

ci/boinc-project.sh volunteer honest "$DIR/project"
ci/boinc-project.sh volunteer hostile "$DIR/project"
honest_user=$(sql "SELECT id FROM user WHERE name = 'honest'")
hostile_user=$(sql "SELECT id FROM user WHERE name = 'hostile'")

# Run until the aggregate task has made v2; kill the validator daemon while it validates.
killed=0
until [ -f "$AGINET_PROJECT/skills/tiny/adapters/v000002.sealed" ]; do
  ((SECONDS < DEADLINE)) || fail "no v2 within the budget"
  # (`validate --project`: the per-result command, not the resident `validator` daemon.)
  if ((killed == 0)) && pgrep -f "aginet-server validate --project" >/dev/null; then
    # Not bin/stop: it also shuts the scheduler, which tells every client asking meanwhile
    # that the project is down for maintenance, and they wait an hour (seen here).
    # bin/start starts again only the daemons that are not running.
    kill -9 "$(cat "$BOINC_PROJECT/pid_$(hostname)/script_validator.pid")"
    say "validator daemon killed (SIGKILL) while validating; bin/start"
    # bin/start refuses to run beside another bin/start ("start is currently running!"), such
    # as the cron loop's: try again.
    for _ in $(seq 20); do
      (cd "$BOINC_PROJECT" && PATH="$BOINC_BUILD/.python-bin:$PATH" bin/start >/dev/null 2>&1) && break
      sleep 0.5
    done
    pgrep -f "script_validator.*aginet_validate" >/dev/null || fail "bin/start did not start the validator again"
    killed=1
  fi
  sleep 1
done
say "v2 made; the work generator stops, the clients finish what is out"
# Disabled in config.xml first: BOINC's cron (bin/start --cron) starts any daemon that is not
# running, so a daemon that is only killed comes back within a cron period (seen here).
python3 - "$BOINC_PROJECT/config.xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
tree = ET.parse(sys.argv[1])
for d in tree.getroot().iter("daemon"):
    if d.findtext("cmd") == "aginet_work_generator":
        ET.SubElement(d, "disabled").text = "1"
tree.write(sys.argv[1])
EOF
kill "$(cat "$BOINC_PROJECT/pid_$(hostname)/aginet_work_generator.pid")"
((killed == 1)) || fail "the validator was never seen validating"

# Quiet: nothing unsent or in progress, every work unit assimilated and its files deleted.
until [ "$(sql "SELECT COUNT(*) FROM result WHERE server_state IN (2, 4)")" = 0 ] &&
  [ "$(sql "SELECT COUNT(*) FROM workunit WHERE assimilate_state != 2 OR file_delete_state != 2")" = 0 ] &&
  [ "$(sql "SELECT COUNT(*) FROM result WHERE server_state = 5 AND outcome = 1 AND file_delete_state != 2")" = 0 ]; do
  ((SECONDS < DEADLINE)) || fail "the project did not settle within the budget"
  sleep 2
done
say "settled; checking"
# The last snapshot, as its task makes it.
"$BOINC_PROJECT/bin/aginet_snapshot" >/dev/null

check() { # DESCRIPTION ACTUAL EXPECTED
  [ "$2" = "$3" ] || fail "$1: got '$2', expected '$3'"
  say "ok: $1 ($2)"
}
positive() { # DESCRIPTION ACTUAL
  [ "$2" -gt 0 ] 2>/dev/null || fail "$1: got '$2', expected more than 0"
  say "ok: $1 ($2)"
}
# BOINC's numbers: outcome 1 success, 6 validate error (what script_validator makes of a
# result its script rejects); validate_state 1 valid, 2 invalid.
honest_valid=$(sql "SELECT COUNT(*) FROM result WHERE userid = $honest_user AND outcome = 1 AND validate_state = 1")
positive "honest results valid" "$honest_valid"
check "honest results not valid" \
  "$(sql "SELECT COUNT(*) FROM result WHERE userid = $honest_user AND outcome = 1 AND validate_state != 1")" 0
hostile_invalid=$(sql "SELECT COUNT(*) FROM result WHERE userid = $hostile_user AND outcome = 6 AND validate_state = 2")
positive "hostile results invalid" "$hostile_invalid"
check "hostile results returned and not invalid" \
  "$(sql "SELECT COUNT(*) FROM result WHERE userid = $hostile_user AND outcome IN (1, 6) AND validate_state != 2")" 0
check "hostile work units completed by someone else" \
  "$(sql "SELECT COUNT(*) FROM workunit w JOIN result r ON r.workunitid = w.id AND r.userid = $hostile_user
          JOIN result c ON c.id = w.canonical_resultid WHERE c.userid != $honest_user")" 0
check "hostile work units without a canonical result" \
  "$(sql "SELECT COUNT(*) FROM workunit w JOIN result r ON r.workunitid = w.id AND r.userid = $hostile_user
          WHERE w.canonical_resultid = 0")" 0
honest_credit=$(sql "SELECT ROUND(total_credit, 6) FROM user WHERE id = $honest_user")
check "hostile user credit" "$(sql "SELECT total_credit FROM user WHERE id = $hostile_user")" 0
check "hostile host credit" "$(sql "SELECT COALESCE(SUM(total_credit), 0) FROM host WHERE userid = $hostile_user")" 0
check "honest user credit = granted credit of its valid results" "$honest_credit" \
  "$(sql "SELECT ROUND(SUM(granted_credit), 6) FROM result WHERE userid = $honest_user AND validate_state = 1")"
check "honest host credit = honest user credit" \
  "$(sql "SELECT ROUND(SUM(total_credit), 6) FROM host WHERE userid = $honest_user")" "$honest_credit"
positive "honest credit (x 1e6)" "$(python3 -c "print(int($honest_credit * 1e6))")"

# agiNet's files against BOINC's records.
canonical=$(sql "SELECT COUNT(*) FROM workunit WHERE canonical_resultid != 0 AND assimilate_state = 2")
SB="$AGINET_PROJECT/scoreboard.csv"
check "scoreboard rows accepted = assimilated work units" \
  "$(grep -c ',valid,accepted,' "$SB")" "$canonical"
check "scoreboard rows per work unit (most)" \
  "$(grep ',valid,accepted,' "$SB" | cut -d, -f2 | sort | uniq -c | sort -rn | awk 'NR==1{print $1}')" 1
check "accepted deltas recorded once" \
  "$(sort "$AGINET_PROJECT/state/seen_deltas" | uniq -d | wc -l)" 0
check "accepted deltas = assimilated work units" \
  "$(wc -l <"$AGINET_PROJECT/state/seen_deltas")" "$canonical"
check "scoreboard hosts" "$(grep ',valid,accepted,' "$SB" | cut -d, -f4 | sort -u | tr '\n' ' ')" \
  "$(sql "SELECT DISTINCT hostid FROM result WHERE userid = $honest_user AND validate_state = 1" | sort -u | tr '\n' ' ')"
check "scoreboard credit = BOINC's" \
  "$(python3 -c "import csv,sys; print('%.6f' % sum(float(r['credit']) for r in csv.DictReader(open(sys.argv[1])) if r['verdict'] == 'valid'))" "$SB")" \
  "$honest_credit"

positive "v1 work units" "$(sql "SELECT COUNT(*) FROM workunit WHERE name LIKE 'tiny_v1_%'")"
check "v1 work units without v1's adapter" \
  "$(sql "SELECT COUNT(*) FROM workunit WHERE name LIKE 'tiny_v1_%' AND xml_doc NOT LIKE '%tiny_v1_adapter%'")" 0
positive "honest v1 results valid" \
  "$(sql "SELECT COUNT(*) FROM result r JOIN workunit w ON w.id = r.workunitid WHERE w.name LIKE 'tiny_v1_%' AND r.userid = $honest_user AND r.validate_state = 1")"
positive "deltas in v2's round" \
  "$(python3 -c "import json, sys; print(len(json.load(open(sys.argv[1]))['consumed']))" "$AGINET_PROJECT/skills/tiny/rounds/v000002.json")"

# file_deleter: no upload left of a successful result. BOINC's transitioner never marks the
# files of a result its validator rejected (outcome 6) for deletion: they stay in upload/.
left=0
for r in $(sql "SELECT name FROM result WHERE outcome = 1"); do
  if [ -n "$(find "$BOINC_PROJECT/upload" -name "${r}_*" -print -quit)" ]; then left=$((left + 1)); fi
done
check "uploads left of successful results" "$left" 0
check "successful results whose files are not deleted" \
  "$(sql "SELECT COUNT(*) FROM result WHERE outcome = 1 AND file_delete_state != 2")" 0
check "work units whose input files are not deleted" \
  "$(sql "SELECT COUNT(*) FROM workunit WHERE file_delete_state != 2")" 0
say "uploads kept of rejected results (BOINC keeps them): $(find "$BOINC_PROJECT/upload" -type f | wc -l) files"
# The resident validator (the aginet_validator daemon) decided the results aginet_validate
# handed it: one log line per verdict, honest and hostile.
resident_log="$BOINC_PROJECT/log_$(hostname)/aginet_validator.log"
resident_valid=$(grep -c ': valid (' "$resident_log" || true)
resident_invalid=$(grep -c ': invalid (' "$resident_log" || true)
((resident_valid > 0 && resident_invalid > 0)) ||
  fail "the resident validator decided $resident_valid valid and $resident_invalid invalid results ($resident_log)"
say "the resident validator decided $resident_valid valid and $resident_invalid invalid results"
# Sticky base: on the honest client still, downloaded once.
honest_project="$DIR/project/volunteers/honest/projects/$PROJECT_FOLDER"
check "bases on the honest client" "$(find "$honest_project" -name 'tiny_*_model' | wc -l)" 1
check "base downloads by the honest client" \
  "$(grep -c 'Finished download of tiny_.*_model' "$DIR/project/volunteers/honest/client.log")" 1

# The dashboard shows what BOINC recorded.
python3 - "$DIR/project/public/metrics.json" "$honest_credit" <<'EOF' || fail "the dashboard's metrics"
import json, sys
m = json.load(open(sys.argv[1]))
credit = sum(s["credit"] for s in m["skills"])
assert abs(credit - float(sys.argv[2])) < 1e-5, f"credit {credit} != BOINC's {sys.argv[2]}"
hosts = max(n["active_hosts"] for n in m["nights"])
assert hosts == 1, f"active hosts {hosts}, expected 1 (the honest client)"
print(f"boinc-round.sh: ok: dashboard credit {credit:.6f}, active hosts {hosts}", file=sys.stderr)
EOF
grep -q 'credit' "$DIR/project/public/index.html" || fail "index.html shows no credit"

# Timing, for the record: create_work to the result's return and to its assimilation (the
# scoreboard's time), and the time between the aggregate task's versions.
sql "SELECT name, create_time FROM workunit" >"$DIR/workunits.tsv"
python3 - "$DIR/workunits.tsv" "$SB" "$AGINET_PROJECT/skills/tiny/adapters" <<'EOF'
import csv, os, statistics, sys
created = dict(line.split("\t") for line in open(sys.argv[1]).read().splitlines())
waits = sorted(int(r["time"]) - int(created[r["workunit"]]) for r in csv.DictReader(open(sys.argv[2]))
               if r["verdict"] == "valid")
print(f"boinc-round.sh: create_work -> assimilated: median {statistics.median(waits):.0f} s, "
      f"range {waits[0]}-{waits[-1]} s over {len(waits)} work units", file=sys.stderr)
d = sys.argv[3]
times = sorted(os.stat(os.path.join(d, f)).st_mtime for f in os.listdir(d))
gaps = [round(b - a) for a, b in zip(times, times[1:])]
print(f"boinc-round.sh: {len(times)} versions, seconds between them: {gaps}", file=sys.stderr)
EOF
sql "SELECT id, userid, ROUND(total_credit, 6) FROM host" | awk '{print "boinc-round.sh: BOINC host " $1 " (user " $2 "): total_credit " $3}' >&2
# down stops everything up and volunteer started (the clients' apps notice within seconds).
ci/boinc-project.sh down "$DIR/project"
sleep 12
left=$(pgrep -af "$DIR/project" | grep -v "pgrep" || true)
[ -z "$left" ] || fail "still running after down: $left"
say "ok: nothing of the project runs after down"
say "passed: $honest_valid honest results valid, $hostile_invalid hostile invalid, honest credit $honest_credit"
