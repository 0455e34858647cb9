#!/usr/bin/env bash
# A throw-away single-node SLURM cluster on this machine, to try (and test) SLURM sweeps:
#
#   eval "$(scripts/slurm_local.sh up)"     # start it; prints `export SLURM_CONF=...`
#   skipbench train -m model=autoencoder,unet_concat hydra/launcher=slurm
#   scripts/slurm_local.sh status           # sinfo + squeue
#   scripts/slurm_local.sh down             # stop every daemon it started and wipe its state
#
# Everything lives under $SKIPBENCH_SLURM_DIR (default /tmp/skipbench-slurm): config, state, spool,
# logs, pid files, munge socket, a MariaDB data folder. Daemons: munged (as the munge user), a MariaDB
# on a socket only + slurmdbd (accounting: sacct sees CANCELLED jobs), slurmctld, slurmd; ports
# 6817-6819. Needs root (slurmd runs the jobs as their users) and Debian's packages
#   slurmctld slurmd slurm-client munge slurmdbd mariadb-server
# which `up` installs with apt-get when they are missing and it runs as root.
# Partition `debug` (Default=YES): all CPUs of the node, RealMemory = `slurmd -C` minus 2 GB, MaxTime
# 60 min and MaxMemPerNode = RealMemory, so the tests can ask for more than it allows.
# SKIPBENCH_SLURM_ACCOUNTING=0 skips MariaDB + slurmdbd (faster, but then sacct has nothing).
set -euo pipefail

DIR=${SKIPBENCH_SLURM_DIR:-/tmp/skipbench-slurm}
ACCOUNTING=${SKIPBENCH_SLURM_ACCOUNTING:-1}
PACKAGES=(slurmctld slurmd slurm-client munge)
[[ $ACCOUNTING == 1 ]] && PACKAGES+=(slurmdbd mariadb-server)
CONF=$DIR/etc/slurm.conf
HOST=$(hostname -s)

say() { echo "slurm_local: $*" >&2; }
die() { say "error: $*"; exit 1; }

# Wait up to $1 seconds for the command in "$@" to succeed.
wait_for() {
    local secs=$1; shift
    local end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < end)) || return 1
        sleep 0.2
    done
}

alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

ensure_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
        say "installing ${missing[*]} (apt-get)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
            || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; }
        # The packages start their own services where they can; this cluster uses its own daemons.
        command -v service >/dev/null && for s in slurmctld slurmd slurmdbd munge mariadb; do
            service "$s" stop >/dev/null 2>&1 || true
        done
    else
        die "missing packages: ${missing[*]} (as root: apt-get install ${missing[*]})"
    fi
}

write_config() {
    local cpus mem
    read -r cpus mem < <(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*RealMemory=\([0-9]*\).*/\1 \2/p')
    mem=$((mem - 2048))  # a margin for the OS: a node reporting less than RealMemory drains
    ((mem > 1024)) || die "only $((mem + 2048)) MB of memory: too little for a SLURM node"
    local acct="AccountingStorageType=accounting_storage/none"
    [[ $ACCOUNTING == 1 ]] && acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/none"
    cat >"$CONF" <<EOF
# Written by scripts/slurm_local.sh: a single-node cluster for tests; removed by \`down\`.
ClusterName=skipbench
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
EnforcePartLimits=ALL
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
MinJobAge=300
KillWait=30
JobRequeue=1
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
$acct
NodeName=$HOST CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=60 MaxMemPerNode=$mem State=UP
EOF
    if [[ $ACCOUNTING == 1 ]]; then
        cat >"$DIR/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=skipbench_acct
EOF
        chmod 600 "$DIR/etc/slurmdbd.conf"
    fi
}

start_munge() {
    alive "$DIR/run/munged.pid" && return 0
    # The default socket: not every SLURM client honours AuthInfo=socket=... (sacctmgr does not).
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0  # a munged of the system already runs: use it, and leave it running at `down`
    fi
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 "$DIR/munge"
    runuser -u munge -- munged --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" \
        --seed-file="$DIR/munge/munged.seed" --num-threads=10
    wait_for 10 bash -c "munge -n | unmunge" || die "munged did not start (see $DIR/munge/munged.log)"
    ln -sf "$DIR/munge/munged.pid" "$DIR/run/munged.pid"
}

start_mariadb() {
    alive "$DIR/run/mariadb.pid" && return 0
    if [[ ! -d $DIR/mysql/mysql ]]; then
        mariadb-install-db --no-defaults --user=root --datadir="$DIR/mysql" --auth-root-authentication-method=socket \
            --skip-test-db >"$DIR/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed (see $DIR/log/mariadb-install.log)"
    fi
    # --skip-networking: only the socket under $DIR, no port clashes with any other MariaDB.
    (mariadbd --no-defaults --user=root --datadir="$DIR/mysql" --socket="$DIR/run/mysql.sock" --skip-networking \
        --pid-file="$DIR/run/mariadb.pid" --log-error="$DIR/log/mariadb.log" --innodb-buffer-pool-size=32M \
        </dev/null >/dev/null 2>&1 &)
    wait_for 60 test -S "$DIR/run/mysql.sock" || die "MariaDB did not start (see $DIR/log/mariadb.log)"
    wait_for 10 test -s "$DIR/run/mariadb.pid" || true
}

start_slurmdbd() {
    alive "$DIR/run/slurmdbd.pid" && return 0
    # slurmdbd finds the database through the client library's default socket.
    MYSQL_UNIX_PORT=$DIR/run/mysql.sock slurmdbd
    wait_for 30 sacctmgr -n list cluster || die "slurmdbd did not answer (see $DIR/log/slurmdbd.log)"
    sacctmgr -i -Q add cluster skipbench >/dev/null 2>&1 || true
}

start_slurm() {
    alive "$DIR/run/slurmctld.pid" || slurmctld
    wait_for 30 scontrol ping || die "slurmctld did not answer (see $DIR/log/slurmctld.log)"
    alive "$DIR/run/slurmd.pid" || slurmd
    wait_for 30 bash -c "sinfo -h -N -o %T | grep -qE '^(idle|mixed|allocated)'" \
        || die "the node is not idle: $(sinfo -h -N -o '%T %E' 2>&1) (see $DIR/log/slurmd.log)"
}

up() {
    ensure_packages
    [[ $EUID -eq 0 ]] || die "needs root (slurmd runs jobs as their users)"
    export SLURM_CONF=$CONF
    mkdir -p "$DIR"/{etc,state,spool,run,log}
    [[ -f $CONF ]] || write_config
    start_munge
    if [[ $ACCOUNTING == 1 ]]; then
        start_mariadb
        start_slurmdbd
    fi
    start_slurm
    say "up: $(sinfo -h -o '%P %D node(s) %c CPUs %m MB %l max' | head -1)"
    echo "export SLURM_CONF=$CONF"
}

stop_pid() {  # stop_pid NAME PIDFILE: SIGTERM, wait, then SIGKILL
    local pidfile=$2 pid
    [[ -s $pidfile ]] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        wait_for 15 bash -c "! kill -0 $pid" || { say "$1 ($pid) ignores SIGTERM: killing it"; kill -9 "$pid" 2>/dev/null || true; }
    fi
}

down() {
    [[ -d $DIR ]] || { say "nothing to stop ($DIR does not exist)"; return 0; }
    export SLURM_CONF=$CONF
    if [[ -f $CONF ]] && alive "$DIR/run/slurmctld.pid"; then
        scancel --full --quiet --user="$(id -un)" >/dev/null 2>&1 || true  # jobs, then daemons
    fi
    stop_pid slurmd "$DIR/run/slurmd.pid"
    stop_pid slurmctld "$DIR/run/slurmctld.pid"
    stop_pid slurmdbd "$DIR/run/slurmdbd.pid"
    stop_pid mariadbd "$DIR/run/mariadb.pid"
    stop_pid munged "$DIR/run/munged.pid"
    # slurmd leaves a job's processes behind only if it was killed; they are ours, in our spool.
    rm -rf "$DIR"
    say "down: daemons stopped, $DIR removed"
}

status() {
    [[ -f $CONF ]] || { say "not up ($CONF missing)"; return 1; }
    export SLURM_CONF=$CONF
    local d
    for d in munged:run/munged.pid mariadbd:run/mariadb.pid slurmdbd:run/slurmdbd.pid slurmctld:run/slurmctld.pid slurmd:run/slurmd.pid; do
        if alive "$DIR/${d#*:}"; then echo "${d%%:*}: running (pid $(cat "$DIR/${d#*:}"))"; else echo "${d%%:*}: not running"; fi
    done
    sinfo
    squeue
    echo "export SLURM_CONF=$CONF"
}

case ${1:-} in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status   (state in \$SKIPBENCH_SLURM_DIR, default /tmp/skipbench-slurm)" >&2; exit 2 ;;
esac
