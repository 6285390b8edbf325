#!/usr/bin/env bash
# A local BOINC project running agiNet, on 127.0.0.1 only, as this script's own processes.
#
#   ci/boinc-project.sh up [DIR]      build BOINC's server (cached), start MariaDB and Apache,
#                                     make the project, install and sign the app, start the daemons
#   ci/boinc-project.sh volunteer NAME [DIR]
#                                     start Debian's BOINC client in DIR/volunteers/NAME/, create
#                                     an account NAME through the project's web RPC and attach it
#   ci/boinc-project.sh down [DIR]    stop everything `up` and `volunteer` started, by pid
#   ci/boinc-project.sh env [DIR]     print the project's settings (URL, ports, folders) as shell
#
# DIR (default target/boinc-project) holds everything: mysql/ (MariaDB's data, own port),
# apache/ (an httpd.conf of its own, own port), project/ (the BOINC project: make_project's
# tree), aginet/ (the agiNet project folder: `aginet-server init`), bin/ (the aginet-server it
# runs), cron.pid (the loop that runs BOINC's `bin/start --cron` every AGINET_CRON_S seconds,
# in place of a crontab line), and settings.sh. No system service is touched; `down` leaves
# the files for inspection, and `up` starts afresh.
#
# The BOINC project's config.xml runs, on this host:
#   feeder, transitioner, file_deleter;
#   script_validator --app aginet --init_script aginet_validate --compare_script aginet_compare
#     --credit_from_wu (a work unit's credit is set by make-work --boinc);
#   script_assimilator --app aginet --script aginet_assimilate;
#   aginet_work_generator (aginet-server work-generator: keeps AGINET_MIN_UNSENT results unsent);
#   aginet_validator (aginet-server validator: the resident validator each aginet_validate hands
#     its result to, with the skill's base loaded once);
# and as BOINC <task>s (BOINC's cron): aginet_aggregate every AGINET_AGGREGATE_PERIOD (default
# "1 min" here; a real project runs it nightly), aginet_snapshot every AGINET_SNAPSHOT_PERIOD.
# The aginet_* commands are one-line wrappers in the project's bin/ (BOINC 1.6.2 passes nothing
# of a multi-word script command; docs/boinc-server.md).
#
# Environment: AGINET_SERVER (an aginet-server binary; default: cargo build --release),
# AGINET_SKILLS (default "tiny"), AGINET_MIN_UNSENT (4), AGINET_BATCH (2), AGINET_CRON_S (10),
# AGINET_AGGREGATE_PERIOD ("1 min"), AGINET_AGGREGATE_ARGS (none; e.g. "--min-deltas 8
# --strategy diloco": FedBuff's buffer when the period is short), AGINET_SNAPSHOT_PERIOD
# ("1 min"), and BOINC_SRC /
# AGINET_CACHE as ci/boinc-server-build.sh reads them. Budget: about 5 minutes the first time
# (BOINC's build, the release binaries), 20 seconds once they are cached.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
ACTION="${1:-}"
shift || true
if [ "$ACTION" = volunteer ]; then
  VOLUNTEER="${1:?usage: ci/boinc-project.sh volunteer NAME [DIR]}"
  shift
fi
DIR="$(mkdir -p "${1:-$REPO/target/boinc-project}" && cd "${1:-$REPO/target/boinc-project}" && pwd)"
NAME=aginet
HOST="$(hostname)"
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

log() { echo "boinc-project.sh: $*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits up to $2 seconds for command $1 to succeed.
wait_for() {
  local deadline=$((SECONDS + $2))
  until eval "$1" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then
      log "timed out waiting for: $1"
      return 1
    fi
    sleep 0.3
  done
}

stop_pid_file() {
  local file="$1" pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

down() {
  for v in "$DIR"/volunteers/*/; do
    [ -f "$v/pid" ] && stop_pid_file "$v/pid"
  done
  if [ -f "$DIR/settings.sh" ]; then
    # shellcheck disable=SC1091
    . "$DIR/settings.sh"
    stop_pid_file "$DIR/cron.pid"
    if [ -x "$BOINC_PROJECT/bin/stop" ]; then
      (cd "$BOINC_PROJECT" && PATH="$BOINC_BUILD/.python-bin:$PATH" bin/stop >/dev/null 2>&1) || true
    fi
    # bin/stop signals the daemons but does not wait for them (its wait loop walks a Python 3
    # map it has already used up); wait here, by their pid files' pids.
    for f in "$BOINC_PROJECT"/pid_"$HOST"/*.pid; do
      [ -f "$f" ] && stop_pid_file "$f"
    done
    if [ -f "$DIR/apache/httpd.pid" ]; then
      /usr/sbin/apache2 -f "$DIR/apache/httpd.conf" -k stop 2>/dev/null || true
      wait_for "[ ! -f '$DIR/apache/httpd.pid' ]" 10 || stop_pid_file "$DIR/apache/httpd.pid"
    fi
    stop_pid_file "$DIR/mysql/mariadb.pid"
  fi
  log "stopped what ran from $DIR"
}

up() {
  down
  local boinc server app_dir version
  boinc=$("$REPO/ci/boinc-server-build.sh")
  server="${AGINET_SERVER:-}"
  if [ -z "$server" ]; then
    (cd "$REPO" && cargo build --quiet --release -p aginet-server)
    server="$REPO/target/release/aginet-server"
  fi
  rm -rf "$DIR/mysql" "$DIR/apache" "$DIR/project" "$DIR/aginet" "$DIR/bin" "$DIR/public" \
    "$DIR/volunteers"
  mkdir -p "$DIR/mysql" "$DIR/apache" "$DIR/bin"
  install -m 0755 "$server" "$DIR/bin/aginet-server"

  local db_port http_port db_pw url
  db_port=$(free_port)
  http_port=$(free_port)
  db_pw=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
  url="http://127.0.0.1:$http_port/$NAME/"
  cat >"$DIR/settings.sh" <<EOF
# Written by ci/boinc-project.sh up: the local BOINC project's settings.
BOINC_BUILD='$boinc'
BOINC_PROJECT='$DIR/project'
AGINET_PROJECT='$DIR/aginet'
AGINET_SERVER='$DIR/bin/aginet-server'
PROJECT_URL='$url'
# The project's folder under a client's projects/: the URL without its scheme, every other
# character than a letter, digit, '.', '-' or '_' as '_', no trailing '_'.
PROJECT_FOLDER='127.0.0.1_${http_port}_$NAME'
HTTP_PORT=$http_port
DB_HOST=127.0.0.1
DB_PORT=$db_port
DB_NAME=$NAME
DB_USER=boincadm
DB_PASSWD='$db_pw'
EOF

  # MariaDB: its own data folder, socket and port; a user for BOINC over TCP on 127.0.0.1.
  log "MariaDB on 127.0.0.1:$db_port"
  mysql_install_db --user=root --datadir="$DIR/mysql/data" --auth-root-authentication-method=normal \
    --skip-test-db >"$DIR/mysql/install.log" 2>&1
  (setsid mariadbd --no-defaults --user=root --datadir="$DIR/mysql/data" --socket="$DIR/mysql/mysql.sock" \
    --port="$db_port" --bind-address=127.0.0.1 --skip-name-resolve --pid-file="$DIR/mysql/mariadb.pid" \
    --log-error="$DIR/mysql/error.log" </dev/null >/dev/null 2>&1 &)
  wait_for "mysqladmin --no-defaults --socket='$DIR/mysql/mysql.sock' -u root ping" 60
  mysql --no-defaults --socket="$DIR/mysql/mysql.sock" -u root <<EOF
CREATE USER 'boincadm'@'127.0.0.1' IDENTIFIED BY '$db_pw';
GRANT ALL PRIVILEGES ON *.* TO 'boincadm'@'127.0.0.1' WITH GRANT OPTION;
FLUSH PRIVILEGES;
EOF

  # The BOINC project. make_project runs `python` (Debian's python3, which has MySQLdb) and
  # reads $USER; its config.xml names this host, or bin/start starts no daemon.
  log "make_project $NAME in $DIR/project"
  (cd "$DIR" && PATH="$boinc/.python-bin:$PATH" USER="${USER:-root}" "$boinc/tools/make_project" \
    --srcdir "$boinc" --no_query --delete_prev_inst --drop_db_first --project_root "$DIR/project" \
    --project_host "$HOST" --url_base "http://127.0.0.1:$http_port/" \
    --db_host "127.0.0.1:$db_port" --db_user boincadm --db_passwd "$db_pw" \
    "$NAME" "agiNet (local)" >"$DIR/make_project.log" 2>&1) ||
    { tail -20 "$DIR/make_project.log" >&2; exit 1; }

  # The agiNet project folder, beside it.
  "$DIR/bin/aginet-server" init --project "$DIR/aginet" --models "$REPO/models" \
    $(for s in ${AGINET_SKILLS:-tiny}; do printf -- '--skill %s ' "$s"; done) >/dev/null

  configure_project "$boinc"
  start_apache "$http_port"
  add_app "$boinc"

  # Daemons, then BOINC's cron in a loop of its own (no crontab needed).
  log "starting the daemons"
  (cd "$DIR/project" && PATH="$boinc/.python-bin:$PATH" bin/start >/dev/null)
  (setsid bash -c "cd '$DIR/project'; export PATH='$boinc/.python-bin:$PATH';
    while :; do bin/start --cron >/dev/null 2>&1; sleep ${AGINET_CRON_S:-10}; done" \
    </dev/null >/dev/null 2>&1 & echo $! >"$DIR/cron.pid")
  wait_for "[ -f '$DIR/project/pid_$HOST/feeder.pid' ]" 20
  log "up: $url (settings in $DIR/settings.sh)"
}

# config.xml's daemons and tasks, the one-line wrappers, fast round trips, one result per user
# per work unit (so a volunteer whose result was invalid never gets its reissue).
configure_project() {
  local boinc="$1" p="$DIR/project" wrap
  wrap() { # NAME COMMAND...: a one-line wrapper in the project's bin/
    printf '#!/bin/sh\n# agiNet: %s, called by BOINC (one word: BOINC passes its own arguments).\nexec %s\n' \
      "$1" "$2" >"$p/bin/$1"
    chmod 0755 "$p/bin/$1"
  }
  local server="$DIR/bin/aginet-server" ap="$DIR/aginet"
  wrap aginet_validate "'$server' validate --project '$ap' \"\$@\""
  wrap aginet_compare "'$server' validate --project '$ap' --compare \"\$@\""
  wrap aginet_validator "'$server' validator --project '$ap' --boinc '$p' \"\$@\""
  wrap aginet_assimilate "'$server' assimilate --project '$ap' --boinc '$p' \"\$@\""
  wrap aginet_work_generator "'$server' work-generator --project '$ap' --boinc '$p' --min-unsent ${AGINET_MIN_UNSENT:-4} --batch ${AGINET_BATCH:-2} --interval 2 \"\$@\""
  wrap aginet_aggregate "'$server' aggregate --project '$ap' ${AGINET_AGGREGATE_ARGS:-} \"\$@\""
  wrap aginet_snapshot "'$server' snapshot --project '$ap' --out '$DIR/public' \"\$@\""

  python3 - "$p/config.xml" "${AGINET_AGGREGATE_PERIOD:-1 min}" "${AGINET_SNAPSHOT_PERIOD:-1 min}" <<'EOF'
import sys, xml.etree.ElementTree as ET
path, aggregate_period, snapshot_period = sys.argv[1:]
tree = ET.parse(path)
root = tree.getroot()
config = root.find("config")
def setting(tag, value):
    node = config.find(tag)
    if node is None:
        node = ET.SubElement(config, tag)
    node.text = value
setting("min_sendwork_interval", "0")
setting("next_rpc_delay", "10")
setting("one_result_per_user_per_wu", "1")
setting("max_wus_in_progress", "4")
host = config.find("host").text
daemons = root.find("daemons")
for d in list(daemons):
    daemons.remove(d)
for cmd in [
    "feeder -d 3 --sleep_interval 1",
    "transitioner -d 3 --sleep_interval 1",
    "file_deleter -d 3 --sleep_interval 1",
    "script_validator -d 3 --app aginet --sleep_interval 1 --credit_from_wu"
    " --init_script aginet_validate --compare_script aginet_compare",
    "script_assimilator -d 3 --app aginet --sleep_interval 1 --script aginet_assimilate",
    "aginet_work_generator",
    "aginet_validator",
]:
    d = ET.SubElement(daemons, "daemon")
    ET.SubElement(d, "cmd").text = cmd
    ET.SubElement(d, "host").text = host
tasks = root.find("tasks")
for t in list(tasks):
    tasks.remove(t)
for cmd, period in [("aginet_aggregate", aggregate_period), ("aginet_snapshot", snapshot_period)]:
    t = ET.SubElement(tasks, "task")
    ET.SubElement(t, "cmd").text = cmd
    ET.SubElement(t, "period").text = period
    ET.SubElement(t, "host").text = host
    ET.SubElement(t, "output").text = cmd + ".out"
ET.indent(tree)
tree.write(path)
EOF
  # The scheduler and the upload handler run as Apache's user: they write logs and uploads.
  mkdir -p "$p/log_$HOST"
  chown -R www-data:www-data "$p/upload" "$p/log_$HOST"
  chmod -R a+rX "$p"
  chmod 0600 "$p"/keys/*_private
}

start_apache() {
  local port="$1" m=/usr/lib/apache2/modules
  cat >"$DIR/apache/httpd.conf" <<EOF
# Written by ci/boinc-project.sh: Apache for the local BOINC project only.
ServerRoot /etc/apache2
ServerName 127.0.0.1
Listen 127.0.0.1:$port
PidFile $DIR/apache/httpd.pid
ErrorLog $DIR/apache/error.log
LogFormat "%h %t \"%r\" %>s %b" common
CustomLog $DIR/apache/access.log common
User www-data
Group www-data
LoadModule mpm_prefork_module $m/mod_mpm_prefork.so
LoadModule authz_core_module $m/mod_authz_core.so
LoadModule alias_module $m/mod_alias.so
LoadModule mime_module $m/mod_mime.so
LoadModule dir_module $m/mod_dir.so
LoadModule cgi_module $m/mod_cgi.so
LoadModule php_module $m/libphp8.2.so
TypesConfig /etc/mime.types
DirectoryIndex index.php index.html
<FilesMatch "\.php$">
    SetHandler application/x-httpd-php
</FilesMatch>
StartServers 2
MinSpareServers 2
MaxSpareServers 4
Include $DIR/project/$NAME.httpd.conf
EOF
  log "Apache on 127.0.0.1:$port"
  /usr/sbin/apache2 -f "$DIR/apache/httpd.conf" -k start
  wait_for "curl -sf http://127.0.0.1:$port/$NAME/" 30
}

# The app: added to the project, its version (the static app and the project's public key)
# signed with the project's code-signing key and installed by update_versions.
add_app() {
  local boinc="$1" p="$DIR/project"
  python3 - "$p/project.xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
path = sys.argv[1]
tree = ET.parse(path)
root = tree.getroot()
if not any(a.findtext("name") == "aginet" for a in root.findall("app")):
    app = ET.SubElement(root, "app")
    ET.SubElement(app, "name").text = "aginet"
    ET.SubElement(app, "user_friendly_name").text = "agiNet skill fine-tuning"
ET.indent(tree)
tree.write(path)
EOF
  (cd "$p" && PATH="$boinc/.python-bin:$PATH" bin/xadd >/dev/null)
  log "packaging the static app"
  AGINET_PROJECT_KEY="$DIR/aginet/keys/signing.pub" "$REPO/ci/package-app.sh" --static "$p/apps" >/dev/null
  (cd "$p" && PATH="$boinc/.python-bin:$PATH" bin/update_versions --noconfirm >"$DIR/update_versions.log" 2>&1) ||
    { cat "$DIR/update_versions.log" >&2; exit 1; }
  # update_versions skips a version.xml it cannot parse with a PHP warning and exits 0; the
  # scheduler then has no app version and tells every client "reached a limit on tasks in
  # progress". Check that the version is in the database.
  local versions
  versions=$(mysql --no-defaults --socket="$DIR/mysql/mysql.sock" -u root --batch --skip-column-names \
    --execute "SELECT COUNT(*) FROM app_version JOIN app ON app.id = app_version.appid WHERE app.name = 'aginet'" "$NAME")
  [ "$versions" -gt 0 ] ||
    { cat "$DIR/update_versions.log" >&2; log "update_versions added no app version (log above)"; exit 1; }
}

# A volunteer: Debian's client in its own data folder, GUI RPC port and password, with settings
# that make a local round quick (report at once, a small work buffer, no benchmarks, one CPU,
# the app at the client's own priority instead of idle, so that whatever else runs, such as
# ci/test.sh's CUDA check beside the round, does not hold it up),
# attached through the project's own web RPC. Files the caller put into the volunteer's
# projects/PROJECT_FOLDER/ beforehand stay (an app_info.xml there: BOINC's anonymous platform).
volunteer() {
  # shellcheck disable=SC1091
  . "$DIR/settings.sh"
  local name="$VOLUNTEER" d="$DIR/volunteers/$VOLUNTEER" port key
  [ -f "$d/pid" ] && stop_pid_file "$d/pid"
  port=$(free_port)
  mkdir -p "$d/projects/$PROJECT_FOLDER"
  echo "$port" >"$d/port"
  head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$d/gui_rpc_auth.cfg"
  cat >"$d/cc_config.xml" <<EOF
<cc_config><options>
  <report_results_immediately>1</report_results_immediately>
  <skip_cpu_benchmarks>1</skip_cpu_benchmarks>
  <no_gpus>1</no_gpus>
  <no_priority_change>1</no_priority_change>
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
  # A simple command in the background, so $! is the client's own pid (an and-list would be a
  # subshell's).
  (setsid boinc --dir "$d" --gui_rpc_port "$port" --no_info_fetch >"$d/client.log" 2>&1 </dev/null &
    echo $! >"$d/pid")
  local rpc=(boinccmd --host "127.0.0.1:$port" --passwd "$(cat "$d/gui_rpc_auth.cfg")")
  wait_for "${rpc[*]} --get_cc_status" 20
  key=$("${rpc[@]}" --create_account "$PROJECT_URL" "$name@example.org" "pw-$name" "$name" |
    sed -n 's/.*account key: *//p')
  [ -n "$key" ] || { log "create_account for $name gave no account key"; exit 1; }
  "${rpc[@]}" --project_attach "$PROJECT_URL" "$key"
  log "volunteer $name attached (client in $d, GUI RPC port $port)"
}

case "$ACTION" in
  up) up ;;
  volunteer) volunteer ;;
  down) down ;;
  env) cat "$DIR/settings.sh" ;;
  *)
    echo "usage: ci/boinc-project.sh up|volunteer NAME|down|env [DIR]" >&2
    exit 2
    ;;
esac
