# The shell library of e2e/: messages, processes, ports, the Go toolchain, test certificates. Source it after
# setting `log_prefix` (what each message starts with); do not run it.
# shellcheck shell=bash

: "${log_prefix:=e2e}"
die() { echo "$log_prefix: error: $*" >&2; exit 1; }
log() { echo "$log_prefix: $*" >&2; }

# running PID: the process exists and is not a zombie.
running() {
  local stat
  kill -0 "$1" 2>/dev/null || return 1
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0 # no procfs: trust kill -0
  stat="${stat##*) }"
  [[ ${stat%% *} != Z ]]
}

# pid_alive FILE: true if FILE holds the pid of a live process.
pid_alive() {
  local f="$1" pid
  [[ -s $f ]] || return 1
  pid="$(<"$f")"
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  running "$pid"
}

# stop_pidfile FILE NAME [SECONDS]: TERM the process in FILE (if it is really NAME), KILL
# it when it has not stopped after SECONDS (default 10).
stop_pidfile() {
  local f="$1" name="$2" patience="${3:-10}" pid i
  [[ -s $f ]] || return 0
  pid="$(<"$f")"
  if ! [[ $pid =~ ^[0-9]+$ ]] || ! running "$pid"; then
    rm -f "$f"
    return 0
  fi
  # Only signal it if it is really ours: the binary we started.
  if [[ -r /proc/$pid/cmdline ]] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$name"; then
    log "pid $pid in $f is not $name any more; leaving it alone"
    rm -f "$f"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < patience * 10; i++)); do
    running "$pid" || break
    sleep 0.1
  done
  if running "$pid"; then
    log "$name (pid $pid) did not stop after TERM; sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      running "$pid" || break
      sleep 0.1
    done
  fi
  running "$pid" && die "could not stop $name (pid $pid)"
  rm -f "$f"
}

# wait_for WHAT PIDFILE LOGFILE DEADLINE_S CMD...: polls CMD until it succeeds; dies with
# the end of LOGFILE when the process of PIDFILE exits or DEADLINE_S seconds pass. A port
# taken meanwhile is named, with `$rerun` (the command that picks other ports).
wait_for() {
  local what="$1" pidfile="$2" logfile="$3" deadline=$((SECONDS + $4))
  shift 4
  until "$@" >/dev/null 2>&1; do
    if ! pid_alive "$pidfile"; then
      echo "---- last lines of $logfile ----" >&2
      tail -n 30 "$logfile" >&2
      if grep -qi "address already in use" "$logfile"; then
        die "$what could not start: port in use (see $logfile); run ${rerun:-it} again to pick other ports"
      fi
      die "$what exited during start-up (see $logfile)"
    fi
    if ((SECONDS > deadline)); then
      tail -n 30 "$logfile" >&2
      die "$what not ready after $(($4))s (see $logfile)"
    fi
    sleep 0.2
  done
}

# port_in_use PORT: anything accepting connections on loopback (also 0.0.0.0 listeners).
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pick_port VAR_NAME [ENV_OVERRIDE]: sets VAR_NAME to ENV_OVERRIDE (which must be free),
# else to a free loopback port not picked before by this script.
declare -A taken
pick_port() {
  local p i
  if [[ -n ${2:-} ]]; then
    port_in_use "$2" && die "port $2 (from environment) is in use on 127.0.0.1; free it or pick another"
    p="$2"
  else
    for ((i = 0; i < 200; i++)); do
      p=$((20000 + RANDOM % 40000))
      [[ -z ${taken[$p]:-} ]] && ! port_in_use "$p" && break
      p=""
    done
    [[ -n $p ]] || die "could not find a free port on 127.0.0.1"
  fi
  taken[$p]=1
  printf -v "$1" '%s' "$p"
}

# find_go: the path of a Go toolchain (PATH, else the usual install places).
find_go() {
  if command -v go >/dev/null 2>&1; then command -v go; return; fi
  local g
  for g in /usr/local/go/bin/go /usr/lib/go/bin/go "$HOME/go/bin/go" "$HOME/sdk/go/bin/go"; do
    if [[ -x $g ]]; then echo "$g"; return; fi
  done
  return 1
}

# --- test certificates ------------------------------------------------------
# openssl, its output kept in $state_dir/logs/openssl.log.
ossl() { openssl "$@" >>"$state_dir/logs/openssl.log" 2>&1 || die "openssl $1 failed (see $state_dir/logs/openssl.log)"; }

# new_ca DIR CN SANS [client]: a CA in DIR (ca.crt, ca.key) named CN, and DIR/ext.cnf
# with a [serving] section for SANS (an openssl subjectAltName), and a [client] section
# when asked.
new_ca() {
  local dir=$1 cn=$2 sans=$3 client=${4:-}
  ossl req -x509 -new -nodes -newkey rsa:2048 -keyout "$dir/ca.key" -out "$dir/ca.crt" \
    -days 3650 -subj "/CN=$cn"
  cat >"$dir/ext.cnf" <<EOF
[serving]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $sans
EOF
  [[ -z $client ]] || cat >>"$dir/ext.cnf" <<EOF
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
EOF
}

# issue_cert DIR NAME SUBJECT EXT: DIR/NAME.key and DIR/NAME.crt for SUBJECT, signed by
# the CA of DIR, with section EXT (serving or client) of DIR/ext.cnf.
issue_cert() {
  local dir=$1
  ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/$2.key"
  ossl req -new -key "$dir/$2.key" -subj "$3" -out "$dir/$2.csr"
  ossl x509 -req -in "$dir/$2.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 3650 -extfile "$dir/ext.cnf" -extensions "$4" -out "$dir/$2.crt"
}
