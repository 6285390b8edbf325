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
# the validator daemon killed mid-run and restarted (bin/stop, bin/start) losing no result and
# counting none twice.
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
  for f in "$DIR"/clients/*/client.log; do echo "--- $f (last 15 lines)" >&2; tail -15 "$f" >&2; done
  for f in "$DIR"/project/project/log_*/*.log "$DIR"/project/project/log_*/*.out; do
    [ -f "$f" ] && { echo "--- $f (last 10 lines)" >&2; tail -10 "$f" >&2; }
  done
  exit 1
}

cd "$REPO"
cargo build --quiet -p aginet-server
rm -rf "$DIR"
mkdir -p "$DIR/clients"
cleanup() {
  for c in "$DIR"/clients/*/; do
    [ -f "$c/pid" ] && kill "$(cat "$c/pid")" 2>/dev/null || true
  done
  ci/boinc-project.sh down "$DIR/project" >/dev/null 2>&1 || true
}
trap cleanup EXIT

AGINET_SERVER="$REPO/target/debug/aginet-server" AGINET_SKILLS=tiny AGINET_MIN_UNSENT=3 \
  AGINET_BATCH=2 AGINET_CRON_S=5 AGINET_AGGREGATE_PERIOD="45 s" AGINET_SNAPSHOT_PERIOD="1 min" \
  ci/boinc-project.sh up "$DIR/project"
# shellcheck disable=SC1091
. "$DIR/project/settings.sh"
say "project up at $PROJECT_URL"

sql() {
  MYSQL_PWD="$DB_PASSWD" mysql --no-defaults --batch --skip-column-names --protocol tcp \
    --host "$DB_HOST" --port "$DB_PORT" --user "$DB_USER" --database "$DB_NAME" --execute "$1"
}

# A client in its own data folder and GUI RPC port, attached through the project's web RPC.
ESCAPED=$(echo "${PROJECT_URL#http://}" | sed 's/[^A-Za-z0-9._-]/_/g; s/_$//')
start_client() {
  local name="$1" d="$DIR/clients/$1" port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p "$d/projects/$ESCAPED"
  echo "$port" >"$d/port"
  echo "pw-$name" >"$d/gui_rpc_auth.cfg"
  cat >"$d/cc_config.xml" <<EOF
<cc_config><options>
  <report_results_immediately>1</report_results_immediately>
  <skip_cpu_benchmarks>1</skip_cpu_benchmarks>
  <no_gpus>1</no_gpus>
  <ncpus>1</ncpus>
</options></cc_config>
EOF
  cat >"$d/global_prefs_override.xml" <<EOF
<global_preferences>
  <run_if_user_active>1</run_if_user_active>
  <suspend_cpu_usage>0</suspend_cpu_usage>
  <max_ncpus_pct>100</max_ncpus_pct>
  <cpu_usage_limit>100</cpu_usage_limit>
  <work_buf_min_days>0.001</work_buf_min_days>
  <work_buf_additional_days>0</work_buf_additional_days>
  <disk_interval>5</disk_interval>
  <leave_apps_in_memory>0</leave_apps_in_memory>
</global_preferences>
EOF
  (cd "$d" && setsid boinc --dir "$d" --gui_rpc_port "$port" --no_info_fetch \
    >"$d/client.log" 2>&1 </dev/null & echo $! >"$d/pid")
  local deadline=$((SECONDS + 20))
  until boinccmd --host "127.0.0.1:$port" --passwd "pw-$name" --get_cc_status >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "client $name did not answer on port $port"
    sleep 0.3
  done
}
cmd() { # CLIENT ARGS...: boinccmd against that client
  local d="$DIR/clients/$1"
  shift
  boinccmd --host "127.0.0.1:$(cat "$d/port")" --passwd "pw-$(basename "$d")" "$@"
}
attach() {
  local name="$1" key
  key=$(cmd "$name" --create_account "$PROJECT_URL" "$name@example.org" "pw-$name" "$name" |
    sed -n 's/.*account key: *//p')
  [ -n "$key" ] || fail "create_account for $name gave no key"
  cmd "$name" --project_attach "$PROJECT_URL" "$key"
  say "$name attached (account key ${key:0:8}...)"
}

# The hostile client's anonymous platform: app_info.xml and its files in the project's folder
# before it attaches, so the client never fetches the project's own app version.
version_num=$(sql "SELECT MAX(version_num) FROM app_version JOIN app ON app.id = app_version.appid WHERE app.name = 'aginet'")
hostile_dir="$DIR/clients/hostile/projects/$ESCAPED"
mkdir -p "$hostile_dir"
sed "s/@VERSION_NUM@/$version_num/" tests/boinc-project/app_info.xml >"$hostile_dir/app_info.xml"
install -m 0755 tests/boinc-project/hostile.sh "$hostile_dir/aginet_hostile.sh"
install -m 0755 "$(ls "$BOINC_PROJECT"/apps/aginet/*/x86_64-pc-linux-gnu/aginet_*_x86_64-pc-linux-gnu)" \
  "$hostile_dir/aginet_real"
install -m 0644 "$AGINET_PROJECT/keys/signing.pub" "$hostile_dir/aginet_project_key"

start_client honest
start_client hostile
attach honest
attach hostile
honest_user=$(sql "SELECT id FROM user WHERE name = 'honest'")
hostile_user=$(sql "SELECT id FROM user WHERE name = 'hostile'")

# Run until the aggregate task has made v2; kill the validator daemon while it validates.
killed=0
until [ -f "$AGINET_PROJECT/skills/tiny/adapters/v2.sealed" ]; do
  ((SECONDS < DEADLINE)) || fail "no v2 within the budget"
  if ((killed == 0)) && pgrep -f "aginet-server validate" >/dev/null; then
    kill -9 "$(cat "$BOINC_PROJECT/pid_$(hostname)/script_validator.pid")"
    say "validator daemon killed (SIGKILL) while validating; bin/stop, bin/start"
    (cd "$BOINC_PROJECT" && PATH="$BOINC_BUILD/.python-bin:$PATH" bin/stop >/dev/null 2>&1 &&
      sleep 2 && PATH="$BOINC_BUILD/.python-bin:$PATH" bin/start >/dev/null)
    killed=1
  fi
  sleep 1
done
say "v2 made; the work generator stops, the clients finish what is out"
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
# BOINC's numbers: outcome 1 success; validate_state 1 valid, 2 invalid.
honest_valid=$(sql "SELECT COUNT(*) FROM result WHERE userid = $honest_user AND outcome = 1 AND validate_state = 1")
positive "honest results valid" "$honest_valid"
check "honest results not valid" \
  "$(sql "SELECT COUNT(*) FROM result WHERE userid = $honest_user AND outcome = 1 AND validate_state != 1")" 0
hostile_invalid=$(sql "SELECT COUNT(*) FROM result WHERE userid = $hostile_user AND outcome = 1 AND validate_state = 2")
positive "hostile results invalid" "$hostile_invalid"
check "hostile results not invalid" \
  "$(sql "SELECT COUNT(*) FROM result WHERE userid = $hostile_user AND outcome = 1 AND validate_state != 2")" 0
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
  "$(python3 -c "import json, sys; print(len(json.load(open(sys.argv[1]))['consumed']))" "$AGINET_PROJECT/skills/tiny/rounds/v2.json")"

# file_deleter: no uploaded file of a result whose files it deleted.
left=0
for r in $(sql "SELECT name FROM result WHERE file_delete_state = 2 AND outcome = 1"); do
  if [ -n "$(find "$BOINC_PROJECT/upload" -name "${r}_*" -print -quit)" ]; then left=$((left + 1)); fi
done
check "uploads left of results whose files were deleted" "$left" 0
# Sticky base: on the honest client still, downloaded once.
honest_project="$DIR/clients/honest/projects/$ESCAPED"
check "bases on the honest client" "$(find "$honest_project" -name 'tiny_*_model' | wc -l)" 1
check "base downloads by the honest client" \
  "$(grep -c 'Finished download of tiny_.*_model' "$DIR/clients/honest/client.log")" 1

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

# Timing for the closing note.
sql "SELECT MIN(r.received_time - w.create_time), MAX(r.received_time - w.create_time) FROM result r JOIN workunit w ON w.id = r.workunitid WHERE r.validate_state = 1" |
  awk '{print "boinc-round.sh: create_work -> result received: " $1 "-" $2 " s"}' >&2
say "passed: $honest_valid honest results valid, $hostile_invalid hostile invalid, honest credit $honest_credit"
