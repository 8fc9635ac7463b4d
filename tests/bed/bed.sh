# shellcheck shell=bash
# The vdesk test bed: a real Slurm cluster (munged, slurmctld, slurmd n1..n3)
# and a private libvirt daemon with small real QEMU guests, all under one
# directory, started and stopped by PID. Source this file; see docs/HACKING.md.
#
#   bed_up DIR        start everything in DIR (must not exist, or be empty)
#   bed_down DIR      stop everything started in DIR, by PID, and remove DIR
#   bed_guest NAME [ARGS]  create and start a desktop guest (heartbeat, stand-in devices);
#                   ARGS: extra kernel arguments (vdesk.ignore_power=1, acpiphp.disable=1)
#   bed_lxc NAME      create and start a container desktop (libvirt's LXC driver)
#
# Knobs (environment, read by bed_up):
#   VDESK_BED_PORT     first of 24 TCP ports on 127.0.0.1 (default: a free range)
#   VDESK_BED_PORTS=LO-HI   where a free range is looked for (default 20000-27999;
#                      make check gives each of its two platforms, which run
#                      side by side, a half of its own)
#   VDESK_BED_MIGRATION=1   one libvirt daemon per node (n1 on DIR/libvirt, n2 on
#                      DIR/libvirt-n2, ...), each listening on TCP for its peers,
#                      with its own migration ports and host UUID, and libvirt's
#                      lock manager (virtlockd, lock_manager = "lockd") in each:
#                      the desktops' disks under DIR/guests are one "shared
#                      storage" all of them reach (bed_node_uri, bed_peer_uri)
#   VDESK_CACHE        guest boot files and libvirt's capability cache (build/cache)
#   VDESK_BED_PROLOG / VDESK_BED_EPILOG   programs for slurm.conf Prolog=/Epilog=
#   VDESK_BED_PLUGSTACK                   lines for plugstack.conf
#   VDESK_BED_SLURM_EXTRA                 extra slurm.conf lines
#   VDESK_BED_GPU_NODES                   nodes that offer one GPU as gres
#   VDESK_BED_CRED_EXPIRE                 job credential lifetime (s), which is
#                                         also how long a requeued job waits
#   VDESK_BED_LXC_NODES                   nodes whose desktop is a container on the
#                                         LXC driver of the same daemon (bed_lxc
#                                         ct-NODE; bed_vdesk_files, bed_lxc_uri)
#   VDESK_BED_SLURMDBD=1                  Slurm's own accounting: a MariaDB server
#                                         (DIR/mariadb, port +22, user slurm) and
#                                         slurmdbd (port +23) under the bed, with
#                                         AccountingStorageTRES=gres/gpu; the
#                                         cluster and user root's account "lab"
#                                         are registered before slurmctld starts
#   VDESK_BED_QEMU_USER                   run QEMU as this user with libvirt's DAC
#                                         driver and dynamic ownership (Debian's
#                                         defaults: libvirt-qemu); default root
#                                         (File= a stand-in file, no driver)
#
# After bed_up, DIR/env holds the exports clients need (SLURM_CONF,
# LIBVIRT_DEFAULT_URI, ...); bed_up also exports them into the caller.

BED_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BED_BUILD=${BED_BUILD:-$BED_SRC/build}
BED_NODES="n1 n2 n3"

bed__log() { printf 'bed: %s\n' "$*" >&2; }

# bed__fail PART LOG MESSAGE: say which part failed and where its log is.
bed__fail() {
    bed__log "FAILED to start $1: $3"
    bed__log "  log: $2"
    [ -f "$2" ] && tail -n 15 "$2" | sed 's/^/  | /' >&2
    return 1
}

# bed__wait SECONDS COMMAND...: poll COMMAND every 50 ms until it succeeds.
bed__wait() {
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.05
    done
}

bed__port_free() { ! ss -Htln "sport = :$1" | grep -q .; }

bed__pick_ports() {
    if [ -n "${VDESK_BED_PORT:-}" ]; then echo "$VDESK_BED_PORT"; return; fi
    local base i ok lo hi
    IFS=- read -r lo hi <<<"${VDESK_BED_PORTS:-20000-27999}"
    [ "$((hi - lo + 1))" -ge 24 ] 2>/dev/null || { bed__log "VDESK_BED_PORTS=$VDESK_BED_PORTS: give LO-HI, at least 24 ports"; echo 0; return; }
    for _ in $(seq 50); do
        base=$((lo + (RANDOM % ((hi - lo + 1) / 24)) * 24))
        ok=1
        for i in $(seq 0 23); do bed__port_free $((base + i)) || { ok=0; break; }; done
        [ "$ok" = 1 ] && { echo "$base"; return; }
    done
    echo 0
}

bed__pid_of() { awk -v n="$1" '$1 == n { p = $2 } END { print p }' "$BED/pids"; }   # the newest

# bed__wait_up NAME SECONDS COMMAND...: like bed__wait, but gives up at once
# when the daemon NAME has died (its log then says why).
bed__wait_up() {
    local pid deadline=$((SECONDS + $2)) name=$1
    pid=$(bed__pid_of "$name"); shift 2
    until "$@" >/dev/null 2>&1; do
        bed__pid_alive "$pid" || { bed__log "$name (pid $pid) exited"; return 1; }
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.05
    done
}

# bed__start NAME LOG CMD...: start CMD in the background with the bed's
# owner mark in its environment (inherited by slurmstepd and job steps, not
# by clients) and record its PID for bed_down. CMD runs under tini -s, a
# child subreaper: what it daemonizes (slurmstepd, QEMU) is reaped at once
# instead of lingering as a zombie of PID 1, which reaps only every few
# seconds here. tini passes SIGTERM on to CMD.
bed__start() {
    local name=$1 log=$2; shift 2
    VDESK_BED_OWNER="$BED" setsid tini -s -- "$@" >>"$log" 2>&1 </dev/null &
    echo "$name $! $log" >>"$BED/pids"
}

# bed_report_dead [DIR]: for each daemon of the bed that is no longer
# running (its newest start), its name and the end of its log: a test that
# failed because a daemon died says so, in CI's output too.
bed_report_dead() {
    local dir=${1:-$VDESK_BED} name pid log
    [ -f "$dir/pids" ] || return 0
    awk '{ last[$1] = $0 } END { for (n in last) print last[n] }' "$dir/pids" |
        while read -r name pid log; do
            if bed__pid_alive "$pid"; then   # a zombie is dead
                case $name in libvirtd*) bed__report_deaf "$name" "$(dirname "$log")" ;; esac
                continue
            fi
            bed__log "$name (pid $pid) is not running; the end of ${log:-its log}:"
            [ -n "$log" ] && tail -n 8 "$log" 2>/dev/null | sed 's/^/    | /' >&2
            case $name in libvirtd*) tail -n 8 "$(dirname "$log")/libvirtd.log" 2>/dev/null | sed 's/^/    | /' >&2 ;; esac
        done
    return 0
}

# bed__report_deaf NAME DIR: a libvirt daemon (in DIR) that runs but does
# not answer on its socket: what state it is in, the signals it has
# pending, and the end of its log (a daemon shutting down closes its
# sockets first).
bed__report_deaf() {
    local pid
    timeout 10 "$BED_BUILD/tests/bedctl" -c "qemu:///system?socket=$2/run/libvirt-sock" ping </dev/null >/dev/null 2>&1 &&
        return 0
    pid=$(cat "$2/run/libvirtd.pid" 2>/dev/null)
    bed__log "$1 (pid ${pid:-?}) runs but does not answer on $2/run/libvirt-sock: $(grep -h -E '^(State|SigPnd|ShdPnd|Threads):' "/proc/$pid/status" 2>/dev/null | tr '\t\n' '  ')"
    tail -n 12 "$2/libvirtd.log" 2>/dev/null | sed 's/^/    | /' >&2
}

bed__munge() {
    local m=$BED/munge
    mkdir -p "$m" && chmod 0755 "$m"
    mungekey --create --keyfile="$m/munge.key" >/dev/null 2>&1 ||
        dd if=/dev/urandom of="$m/munge.key" bs=1024 count=1 status=none
    chmod 0600 "$m/munge.key"
    bed__start munged "$m/munged.log" munged --foreground --force \
        --socket="$m/munge.socket" --key-file="$m/munge.key" \
        --pid-file="$m/munged.pid" --log-file="$m/munged.log" --seed-file="$m/munge.seed"
    bed__wait_up munged 5 test -S "$m/munge.socket" ||
        bed__fail munged "$m/munged.log" "no socket at $m/munge.socket after 5 s"
}

bed__slurm_conf() {
    local s=$BED/slurm port=$1 i=2 n
    mkdir -p "$s/state" "$s/log"
    for n in $BED_NODES; do mkdir -p "$s/spool/$n"; done
    {
        cat <<EOF
# Generated by tests/bed/bed.sh for the vdesk test bed in $BED
ClusterName=vdeskbed
SlurmctldHost=localhost
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$BED/munge/munge.socket${VDESK_BED_CRED_EXPIRE:+,cred_expire=$VDESK_BED_CRED_EXPIRE}
CredType=cred/munge
StateSaveLocation=$s/state
SlurmdSpoolDir=$s/spool/%n
SlurmctldPidFile=$s/slurmctld.pid
SlurmdPidFile=$s/slurmd-%n.pid
SlurmctldLogFile=$s/log/slurmctld.log
SlurmdLogFile=$s/log/slurmd-%n.log
PlugStackConfig=$s/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
$(bed__accounting_conf "$port")
MpiDefault=none
MailProg=/bin/true
SchedulerParameters=batch_sched_delay=0
ReturnToService=2
SlurmctldTimeout=10
SlurmdTimeout=30
InactiveLimit=0
KillWait=2
MinJobAge=300
EOF
        [ -n "${VDESK_BED_PROLOG:-}" ] && echo "Prolog=$VDESK_BED_PROLOG"
        [ -n "${VDESK_BED_EPILOG:-}" ] && echo "Epilog=$VDESK_BED_EPILOG"
        [ -n "${VDESK_BED_SLURM_EXTRA:-}" ] && printf '%s\n' "$VDESK_BED_SLURM_EXTRA"
        [ -n "${VDESK_BED_GPU_NODES:-}" ] && echo "GresTypes=gpu"
        for n in $BED_NODES; do
            local gres=
            case " ${VDESK_BED_GPU_NODES:-} " in *" $n "*) gres=" Gres=gpu:1" ;; esac
            local feat=
            [ "${VDESK_BED_MIGRATION:-0}" = 1 ] && feat=" Features=vdesk"
            echo "NodeName=$n NodeHostname=localhost NodeAddr=127.0.0.1 Port=$((port + i)) CPUs=2 RealMemory=1000$gres$feat State=UNKNOWN"
            i=$((i + 1))
        done
        echo "PartitionName=desk Nodes=${BED_NODES// /,} Default=YES MaxTime=INFINITE State=UP"
    } >"$s/slurm.conf"
    printf '%s\n' "${VDESK_BED_PLUGSTACK:-# no SPANK plugins}" >"$s/plugstack.conf"
    : >"$s/gres.conf"
    for n in ${VDESK_BED_GPU_NODES:-}; do
        mkdir -p "$s/dev-$n" && mknod "$s/dev-$n/nvidia0" c 195 0
        echo "NodeName=$n Name=gpu File=$s/dev-$n/nvidia0" >>"$s/gres.conf"
    done
}

# The slurm.conf lines for accounting: none, or the bed's slurmdbd.
bed__accounting_conf() {
    if [ "${VDESK_BED_SLURMDBD:-0}" != 1 ]; then
        echo "AccountingStorageType=accounting_storage/none"
        return
    fi
    # AccountingStoragePass: the munge socket for talking to slurmdbd
    # (clients otherwise use munged's default one, not the bed's).
    printf '%s\n' "AccountingStorageType=accounting_storage/slurmdbd" "AccountingStorageHost=localhost" \
        "AccountingStoragePort=$(($1 + 23))" "AccountingStorageTRES=gres/gpu" \
        "AccountingStoragePass=$BED/munge/munge.socket"
}

# bed__mariadb: a MariaDB server of the bed's own (data, socket, logs under
# DIR/mariadb, TCP on 127.0.0.1 at port +22) with a user slurm that owns
# slurm_acct_db, as an admin sets one up for slurmdbd.
bed__mariadb() {
    local m=$BED/mariadb
    mkdir -p "$m/run"
    mariadb-install-db --no-defaults --datadir="$m/data" --user=root --skip-test-db \
        --auth-root-authentication-method=socket >"$m/install.log" 2>&1 ||
        { bed__fail mariadb "$m/install.log" "mariadb-install-db failed"; return 1; }
    # Without TLS: MariaDB 11.8 (Debian 13) offers it on TCP by default, and
    # Slurm 24.11's mysql plugin then fails its first query ("5027 Number
    # of columns in result (=1) set execeeds maxmimum allowed number of
    # columns (=0)"); docs/admin.md tells admins the same.
    bed__start mariadbd "$m/error.log" mariadbd --no-defaults --datadir="$m/data" --user=root --skip-ssl \
        --socket="$m/run/mysqld.sock" --port=$((BED_PORT + 22)) --bind-address=127.0.0.1 \
        --pid-file="$m/run/mysqld.pid" --skip-name-resolve --innodb-buffer-pool-size=64M \
        --innodb-lock-wait-timeout=900 --log-error="$m/error.log"
    bed__wait_up mariadbd 60 mariadb-admin --no-defaults --skip-ssl --socket="$m/run/mysqld.sock" ping ||
        { bed__fail mariadb "$m/error.log" "no answer on $m/run/mysqld.sock after 60 s"; return 1; }
    mariadb --no-defaults --skip-ssl --socket="$m/run/mysqld.sock" -e \
        "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'vdeskbed'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" \
        >>"$m/install.log" 2>&1 || { bed__fail mariadb "$m/install.log" "could not create user slurm"; return 1; }
}

# bed__slurmdbd: slurmdbd on the bed's MariaDB (it creates its tables on the
# first start), then the cluster and an account "lab" for root, which
# slurmctld needs to find when it registers.
bed__slurmdbd() {
    local s=$BED/slurm
    cat >"$s/slurmdbd.conf" <<EOF
# Generated by tests/bed/bed.sh for the vdesk test bed in $BED
AuthType=auth/munge
AuthInfo=socket=$BED/munge/munge.socket
DbdHost=localhost
DbdPort=$((BED_PORT + 23))
SlurmUser=root
PidFile=$s/slurmdbd.pid
LogFile=$s/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$((BED_PORT + 22))
StorageUser=slurm
StoragePass=vdeskbed
StorageLoc=slurm_acct_db
EOF
    chmod 0600 "$s/slurmdbd.conf"
    bed__slurmdbd_run || return 1
    { sacctmgr -i add cluster vdeskbed && sacctmgr -i add account lab cluster=vdeskbed &&
        sacctmgr -i add user root account=lab cluster=vdeskbed; } >>"$s/log/sacctmgr.log" 2>&1 ||
        { bed__fail slurmdbd "$s/log/sacctmgr.log" "sacctmgr could not add the cluster"; return 1; }
}

bed__all_idle() {
    local states
    states=$(sinfo -h -N -o '%T' 2>/dev/null | sort -u) || return 1
    [ "$states" = idle ] && [ "$(sinfo -h -N -o '%N' | wc -l)" -eq 3 ]
}

bed__slurm() {
    local s=$BED/slurm n
    bed__start slurmctld "$s/log/slurmctld.out" slurmctld -D -i -f "$SLURM_CONF"
    bed__wait_up slurmctld 10 scontrol ping ||
        { bed__fail slurmctld "$s/log/slurmctld.log" "controller does not answer 'scontrol ping'"; return 1; }
    for n in $BED_NODES; do
        bed__start "slurmd-$n" "$s/log/slurmd-$n.out" slurmd -D -N "$n" -f "$SLURM_CONF"
    done
    bed__wait 15 bed__all_idle && return 0
    for n in $BED_NODES; do
        sinfo -h -n "$n" -o '%T' | grep -qx idle ||
            bed__fail "slurmd $n" "$s/log/slurmd-$n.log" "node $n is not idle: $(sinfo -h -n "$n" -o '%T')"
    done
    return 1
}

# bed__libvirt [NODE]: the bed's libvirt daemon (NODE: the one of NODE in a
# migration bed, DIR/libvirt-NODE; none or n1: DIR/libvirt). It runs in its
# own mount namespace, where /etc/libvirt, /var/lib/libvirt, /run/libvirt,
# ... are the bed's directories (nothing of the machine's own libvirt is
# touched); in a migration bed virtlockd runs first in the same namespace.
bed__libvirt() {
    local node=${1:-n1} l name=libvirtd d k
    l=$(bed__libvirt_dir "$BED" "$node")
    [ "$node" = n1 ] || name=libvirtd-$node
    k=$(bed__node_index "$node")
    mkdir -p "$l"/{etc,lib,log,run} "$VDESK_CACHE/libvirt"
    for d in /etc/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt /run/libvirt; do
        mkdir -p "$d"
    done
    cat >"$l/etc/libvirtd.conf" <<EOF
unix_sock_group = "root"
unix_sock_rw_perms = "0770"
auth_unix_ro = "none"
auth_unix_rw = "none"
mdns_adv = 0
host_uuid = "$(cat /proc/sys/kernel/random/uuid)"
log_outputs = "2:file:$l/libvirtd.log"
EOF
    local listen=
    if [ "${VDESK_BED_MIGRATION:-0}" = 1 ]; then
        listen=--listen
        printf 'listen_tls = 0\nlisten_tcp = 1\nlisten_addr = "127.0.0.1"\ntcp_port = "%s"\nauth_tcp = "none"\n' \
            "$(bed__tcp_port "$node")" >>"$l/etc/libvirtd.conf"
        printf 'log_outputs = "3:file:%s/virtlockd.log"\n' "$l" >"$l/etc/virtlockd.conf"
    fi
    # Debian's defaults run QEMU as libvirt-qemu, with libvirt's DAC driver
    # giving it each file it needs (VDESK_BED_QEMU_USER=libvirt-qemu); the
    # default bed runs it as root, which hides permission problems.
    local quser=${VDESK_BED_QEMU_USER:-root} dyn=0
    [ "$quser" = root ] || { dyn=1; chmod 0711 "$BED"; }
    # The bed's 24 ports: slurmctld and the slurmds from +0, each node's
    # migration ports and TCP listener from +6, its two displays from +16. A
    # display gets one of the bed's ports, not libvirt's default 5900 up,
    # which every daemon on the machine (the other platform's beds too)
    # hands out on its own.
    cat >"$l/etc/qemu.conf" <<EOF
user = "$quser"
group = "$quser"
dynamic_ownership = $dyn
remember_owner = 0
security_driver = "none"
stdio_handler = "file"
cgroup_controllers = [ ]
namespaces = [ ]
migration_port_min = $((BED_PORT + 6 + 3 * k))
migration_port_max = $((BED_PORT + 7 + 3 * k))
remote_display_port_min = $((BED_PORT + 16 + 2 * k))
remote_display_port_max = $((BED_PORT + 17 + 2 * k))
EOF
    # Containers (LXC driver): no security driver, as for QEMU.
    echo 'security_driver = "none"' >"$l/etc/lxc.conf"
    # Locks on the disk files themselves (qemu-lockd.conf's default,
    # auto_disk_leases): every daemon's virtlockd sees the same files.
    [ -n "$listen" ] && echo 'lock_manager = "lockd"' >>"$l/etc/qemu.conf"
    # namespaces = [ ]: no private /dev per guest. The bed's libvirtd already
    # runs in its own mount namespace, and inside a chroot (make check's
    # second platform) QEMU 10 could not open /dev/urandom in that private /dev.
    # libvirt resolves its compiled-in qemu user even when told to run as
    # root; give it one in the namespace's /etc/passwd only.
    cp /etc/passwd "$l/passwd"
    cp /etc/group "$l/group"
    getent passwd libvirt-qemu >/dev/null ||
        echo 'libvirt-qemu:x:64055:64055:vdesk test bed:/var/lib/libvirt:/usr/sbin/nologin' >>"$l/passwd"
    getent group libvirt-qemu >/dev/null || echo 'libvirt-qemu:x:64055:' >>"$l/group"
    getent group kvm >/dev/null || echo 'kvm:x:64056:' >>"$l/group"
    # virtlockd gets its own pid file: the default is on the host's /run.
    bed__start "$name" "$l/libvirtd.out" unshare -m --propagation private -- sh -ec '
        mount --bind "$1/etc" /etc/libvirt
        mount --bind "$1/lib" /var/lib/libvirt
        mount --bind "$1/log" /var/log/libvirt
        mount --bind "$2" /var/cache/libvirt
        mount --bind "$1/run" /run/libvirt
        mount --bind "$1/passwd" /etc/passwd
        mount --bind "$1/group" /etc/group
        # The LXC driver fails to start a container ("Unable to create
        # directory /sys/fs/cgroup/unified") where the host mounts a cgroup2
        # "unified" hierarchy beside its v1 controllers: libvirt then mixes
        # v1 and v2. Without it, in this namespace only, it uses v1.
        if [ -n "$4" ] && grep -q " /sys/fs/cgroup/unified cgroup2 " /proc/self/mounts; then
            umount /sys/fs/cgroup/unified
        fi
        # A daemon started again finds the first virtlockd (and its socket)
        # still there: it keeps the locks, so it stays.
        if [ -n "$3" ] && ! kill -0 "$(cat /run/libvirt/virtlockd.pid 2>/dev/null)" 2>/dev/null; then
            virtlockd -d -f /etc/libvirt/virtlockd.conf -p /run/libvirt/virtlockd.pid
        fi
        exec libvirtd $3 -f /etc/libvirt/libvirtd.conf -p /run/libvirt/libvirtd.pid
    ' bed-libvirtd "$l" "$VDESK_CACHE/libvirt" "$listen" "${VDESK_BED_LXC_NODES:-}"
    bed__wait_up "$name" 10 test -S "$l/run/libvirt-sock" &&
        bed__wait_up "$name" 10 "$BED_BUILD/tests/bedctl" -c "qemu:///system?socket=$l/run/libvirt-sock" ping ||
        bed__fail "$name" "$l/libvirtd.log" "no answer on $l/run/libvirt-sock (see also $l/libvirtd.out)"
}

# The daemons of a migration bed: n1's is DIR/libvirt (the bed's only one
# otherwise), each other node's DIR/libvirt-NODE.
bed__libvirt_dir() { if [ "$2" = n1 ]; then echo "$1/libvirt"; else echo "$1/libvirt-$2"; fi; }
bed__node_index() { case $1 in n2) echo 1 ;; n3) echo 2 ;; *) echo 0 ;; esac; }
bed__tcp_port() { echo $((BED_PORT + 8 + 3 * $(bed__node_index "$1"))); }

# bed_node_uri DIR NODE: the URI of NODE's own daemon (the one vdesk.conf's
# uri = names); bed_peer_uri NODE: the TCP one its peers migrate to (after
# bed_up, or with VDESK_BED_PORT set).
bed_node_uri() {
    local n=$2
    case " ${VDESK_BED_LXC_NODES:-} " in *" $n "*) bed_lxc_uri "$1"; return ;; esac
    [ "${VDESK_BED_MIGRATION:-0}" = 1 ] || n=n1
    echo "qemu:///system?socket=$(bed__libvirt_dir "$1" "$n")/run/libvirt-sock"
}
# bed_lxc_uri DIR: the LXC driver of the bed's (n1's) daemon.
bed_lxc_uri() { echo "lxc:///system?socket=$1/libvirt/run/libvirt-sock"; }
bed_peer_uri() { local BED_PORT=${VDESK_BED_PORT:-$VDESK_BED_PORT_BASE}; echo "qemu+tcp://127.0.0.1:$(bed__tcp_port "$1")/system"; }

bed__libvirts() {
    local n
    bed__libvirt n1 || return 1
    [ "${VDESK_BED_MIGRATION:-0}" = 1 ] || return 0
    for n in $BED_NODES; do
        [ "$n" = n1 ] || bed__libvirt "$n" || return 1
    done
}

bed_up() {
    BED=${1:?usage: bed_up DIR}
    mkdir -p "$BED" && BED=$(cd "$BED" && pwd)
    [ -e "$BED/pids" ] && { bed__log "$BED holds a running bed: run bed_down $BED first"; return 1; }
    : >"$BED/pids"
    VDESK_CACHE=${VDESK_CACHE:-$BED_BUILD/cache}
    [ -x "$BED_BUILD/tests/bedctl" ] || { bed__log "$BED_BUILD/tests/bedctl missing: run make"; return 1; }
    BED_PORT=$(bed__pick_ports)
    [ "$BED_PORT" != 0 ] || { bed__log "no free range of 24 TCP ports found"; return 1; }
    local t0
    t0=$(date +%s%N)
    cat >"$BED/env" <<EOF
export VDESK_BED="$BED"
export VDESK_BED_PORT_BASE=$BED_PORT
export VDESK_BED_MIGRATION=${VDESK_BED_MIGRATION:-0}
export SLURM_CONF="$BED/slurm/slurm.conf"
export LIBVIRT_DEFAULT_URI="qemu:///system?socket=$BED/libvirt/run/libvirt-sock"
export VDESK_BED_LXC_NODES="${VDESK_BED_LXC_NODES:-}"
export VDESK_CACHE="$VDESK_CACHE"
EOF
    # shellcheck disable=SC1091
    . "$BED/env"
    bed__slurm_conf "$BED_PORT"
    bed__munge && bed__accounting && bed__libvirts && bed__slurm || { bed_down "$BED" keep; return 1; }
    BED_UP_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
    bed__log "up in $BED_UP_MS ms: $BED (source $BED/env to use it)"
}

bed__accounting() {
    [ "${VDESK_BED_SLURMDBD:-0}" = 1 ] || return 0
    bed__mariadb && bed__slurmdbd
}

# A zombie counts as stopped: the daemons outlive the shell that started
# them, and PID 1 here reaps its adopted children only every few seconds.
bed__pid_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

# bed__stop NAME PID: TERM, wait up to 10 s, then KILL.
bed__stop() {
    bed__pid_alive "$2" || return 0
    kill -TERM "$2" 2>/dev/null
    local i
    for i in $(seq 200); do bed__pid_alive "$2" || return 0; sleep 0.05; done
    bed__log "$1 (pid $2) ignored SIGTERM for 10 s; killing it"
    kill -KILL "$2" 2>/dev/null
    for i in $(seq 100); do bed__pid_alive "$2" || return 0; sleep 0.05; done
}

# bed_qemu_pids DIR: PIDs of the bed's running QEMUs (libvirt keeps one
# NAME.pid per guest; driver.pid beside them is the daemon's own lock).
bed_qemu_pids() {
    local f
    for f in "$1"/libvirt/run/qemu/*.pid "$1"/libvirt-n*/run/qemu/*.pid; do
        [ -f "$f" ] && [ "$(basename "$f")" != driver.pid ] && echo "$(cat "$f")"   # no newline in them
    done
    return 0
}

bed__pid_gone() { [ ! -e "/proc/$1" ]; }

# Processes that carry the bed's owner mark (slurmstepd, job steps,
# anything a daemon left behind), and QEMUs of the bed's guests: libvirt
# clears their environment, but their command line names the bed's files.
bed__marked() {
    grep -lsaz "^VDESK_BED_OWNER=$1\$" /proc/[0-9]*/environ 2>/dev/null |
        sed -n 's,^/proc/\([0-9]*\)/environ$,\1,p'
    grep -lsa -- "$1/" /proc/[0-9]*/cmdline 2>/dev/null |
        sed -n 's,^/proc/\([0-9]*\)/cmdline$,\1,p' |
        while read -r pid; do
            case $(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") in /usr/bin/qemu-system*) echo "$pid" ;; esac
        done
}

bed_down() {
    local dir=${1:?usage: bed_down DIR [keep]} keep=${2:-} name pid
    [ -f "$dir/pids" ] || { bed__log "no bed in $dir"; return 0; }
    dir=$(cd "$dir" && pwd)
    local l
    for l in "$dir"/libvirt "$dir"/libvirt-n*; do
        [ -S "$l/run/libvirt-sock" ] || continue
        "$BED_BUILD/tests/bedctl" -c "qemu:///system?socket=$l/run/libvirt-sock" purge-all ||
            bed__log "could not purge guests through libvirt; stopping their QEMUs by PID"
    done
    local qemus cts
    qemus=$(bed_qemu_pids "$dir")
    for pid in $qemus; do bed__stop qemu "$pid"; done
    cts=$(bed__lxc_down "$dir")
    if [ -S "$dir/munge/munge.socket" ] && [ -f "$dir/slurm/slurm.conf" ]; then
        SLURM_CONF=$dir/slurm/slurm.conf scancel --quiet --full --user=root 2>/dev/null || true
    fi
    if mountpoint -q "$dir/hw" 2>/dev/null; then
        fusermount3 -u -z "$dir/hw" || bed__log "could not unmount $dir/hw"
    fi
    # Reverse start order: libvirtd and slurmds before slurmctld before munged.
    tac "$dir/pids" | while read -r name pid _; do bed__stop "$name" "$pid"; done
    local marked
    marked=$(bed__marked "$dir")
    for pid in $marked; do kill -KILL "$pid" 2>/dev/null; done
    # Stopped processes linger as zombies until PID 1 reaps them; wait for
    # that so that nothing of the bed shows in ps afterwards.
    for pid in $(awk '{ print $2 }' "$dir/pids") $qemus $cts $marked; do
        bed__wait 10 bed__pid_gone "$pid" || bed__log "pid $pid still there after 10 s"
    done
    bed__lxc_cgroups_rm "$dir"
    rm -f "$dir/pids"
    if [ "$keep" = keep ]; then
        bed__log "stopped; $dir kept for inspection (rm -rf $dir when done)"
    else
        rm -rf "$dir"
    fi
}

# bed_guest NAME: a desktop stand-in on the bed's libvirt daemon: 1 vCPU,
# 192 MiB (BED_GUEST_MIB=N for another size), q35 with ACPI hotplug, a
# qcow2 disk with one I/O thread, console in
# $VDESK_BED/guests/NAME/console.log and two hot-pluggable stand-in devices
# (user aliases ua-gpu0 and ua-ib0; see tests/guest/devices/); with
# BED_GUEST_DISPLAY=spice or vnc, an emulated display on 127.0.0.1 and a
# VGA card whose text console the guest paints (tests/guest/init). Kernel
# arguments the guest's init reads: vdesk.ignore_power=1, vdesk.fill=MIB
# (that much non-zero data in RAM), vdesk.busy=1 (a busy loop),
# vdesk.shmem=VALUE (a member of a shared memory group; with
# BED_GUEST_PCI_BRIDGE=1 the guest has a slot to hot-plug its device into).
bed_guest() {
    local name=${1:?usage: bed_guest NAME [KERNEL-ARGS]} args=${2:+ $2} g boot=$VDESK_CACHE/guest
    local mib=${BED_GUEST_MIB:-192}
    g=$VDESK_BED/guests/$name
    mkdir -p "$g"
    # An unprivileged QEMU may not reach the build tree: its own copies.
    if grep -q '^user = "root"' "$VDESK_BED/libvirt/etc/qemu.conf" 2>/dev/null; then :; else
        boot=$VDESK_BED/guests/boot
        mkdir -p "$boot" && cp -u "$VDESK_CACHE/guest/vmlinuz" "$VDESK_CACHE/guest/initrd.img" "$boot/"
        chmod 0711 "$VDESK_BED/guests" "$g"
    fi
    qemu-img create -q -f qcow2 "$g/disk.qcow2" 16M || return 1
    local display=
    [ -n "${BED_GUEST_DISPLAY:-}" ] &&
        display="<graphics type='$BED_GUEST_DISPLAY' autoport='yes' listen='127.0.0.1'/><video><model type='vga'/></video>"
    # q35 hot-plugs conventional PCI devices (ivshmem) only behind such a
    # bridge: without one libvirt says "No more available PCI slots".
    local bridge=
    [ "${BED_GUEST_PCI_BRIDGE:-0}" = 1 ] &&
        bridge="<controller type='pci' index='0' model='pcie-root'/><controller type='pci' index='1' model='pcie-root-port'/><controller type='pci' index='2' model='pcie-to-pci-bridge'/>"
    sed -e "s|@NAME@|$name|g" -e "s|@DIR@|$g|g" -e "s|@CMDLINE@|$args|g" -e "s|@MEM@|$mib|g" \
        -e "s|@DISPLAY@|$display|g" \
        -e "s|@KERNEL@|$boot/vmlinuz|g" -e "s|@INITRD@|$boot/initrd.img|g" \
        -e "s|@BRIDGE@|$bridge|g" \
        "$BED_SRC/tests/guest/domain.xml.in" >"$g/domain.xml"
    "$BED_BUILD/tests/bedctl" create "$g/domain.xml"
}

# bed_lxc NAME: a container desktop on the bed's LXC driver (same daemon
# as the guests; VDESK_BED_LXC_NODES set before bed_up): its root is
# $VDESK_BED/guests/NAME/root, busybox-static with tests/guest/lxc-init as
# /init, which counts boots and writes a heartbeat to root/hb (bed_lxc_hb).
bed_lxc() {
    local name=${1:?usage: bed_lxc NAME} g r a
    g=$VDESK_BED/guests/$name
    r=$g/root
    mkdir -p "$r/bin" "$r/proc" "$r/sys" "$r/dev" "$r/tmp" "$r/etc" || return 1
    cp /bin/busybox "$r/bin/busybox" && cp "$BED_SRC/tests/guest/lxc-init" "$r/init" || return 1
    for a in sh sleep cat mv echo; do ln -sf busybox "$r/bin/$a"; done
    echo "$name" >>"$VDESK_BED/lxc-names"
    sed -e "s|@NAME@|$name|g" -e "s|@ROOT@|$r|g" "$BED_SRC/tests/guest/lxc.xml.in" >"$g/domain.xml"
    "$BED_BUILD/tests/bedctl" -c "$(bed_lxc_uri "$VDESK_BED")" create "$g/domain.xml"
}

# bed_lxc_hb NAME: "BOOT N" of the container's last heartbeat.
bed_lxc_hb() {
    sed -n 's/^vdesk-hb boot=\([0-9]*\) n=\([0-9]*\).*/\1 \2/p' "$VDESK_BED/guests/$1/root/hb" 2>/dev/null
}

# bed__lxc_down DIR: purges the bed's containers through libvirt, stops any
# left (their libvirt_lxc controllers, by the PIDs libvirt keeps), and
# prints those PIDs for bed_down to wait on.
bed__lxc_down() {
    local f pid
    [ -s "$1/lxc-names" ] || return 0
    for f in "$1"/libvirt/run/lxc/*.pid; do [ -f "$f" ] && cat "$f" && echo; done
    [ -S "$1/libvirt/run/libvirt-sock" ] &&
        { "$BED_BUILD/tests/bedctl" -c "$(bed_lxc_uri "$1")" purge-all >&2 ||
              bed__log "could not purge containers through libvirt; stopping them by PID"; }
    for f in "$1"/libvirt/run/lxc/*.pid; do
        [ -f "$f" ] && pid=$(cat "$f") && bed__stop libvirt_lxc "$pid"
    done
    return 0
}

# bed__lxc_cgroups_rm DIR: the LXC driver leaves its containers' cgroup
# directories (machine/lxc-PID-NAME.libvirt-lxc on each v1 hierarchy) on the
# host; those of this bed's containers whose controller is gone go (rmdir:
# only empty ones).
bed__lxc_cgroups_rm() {
    local name d pid
    [ -s "$1/lxc-names" ] || return 0
    while read -r name; do
        for d in /sys/fs/cgroup/*/machine/lxc-*-"$name".libvirt-lxc; do
            [ -d "$d" ] || continue
            pid=${d##*/lxc-}; pid=${pid%%-*}
            [ -e "/proc/$pid" ] || rmdir "$d" 2>/dev/null || true
        done
    done <"$1/lxc-names"
}

# bed_hb NAME: "BOOT N" of the guest's last heartbeat on its console.
bed_hb() {
    # Complete lines only (the serial console ends them with \r\n): the last
    # one may still be being written.
    grep -a $'^vdesk-hb boot=[0-9]* n=[0-9]*\r$' "$VDESK_BED/guests/$1/console.log" 2>/dev/null | tail -n 1 |
        sed -n 's/^vdesk-hb boot=\([0-9]*\) n=\([0-9]*\).*/\1 \2/p'
}

# bed_wait_hb NAME [SECONDS]: wait until the guest prints heartbeats.
bed_wait_hb() {
    bed__wait "${2:-30}" bed__has_hb "$1"
}
bed__has_hb() { [ -n "$(bed_hb "$1")" ]; }

# bed_disk NAME: "BOOT HB" as recorded on the guest's disk (works while it
# runs). The disk is the active layer the domain names, which after a vdesk
# snapshot is an overlay whose backing chain qemu-img follows. Reading an
# image in use (-U) may catch QEMU between two metadata writes: tried again
# for a few seconds, then what was read is said on stderr.
bed_disk() {
    local i out err
    err=$(mktemp)
    for i in 1 2 3 4 5 6; do
        out=$(bed__disk_read "$1" 2>"$err") && [ -n "$out" ] && break
        [ "$i" -eq 6 ] || sleep 0.5
    done
    [ -n "$out" ] && echo "$out" || echo "bed_disk $1: no record on its disk: $(tr '\n' ' ' <"$err")" >&2
    rm -f "$err"
}
bed__disk_read() {
    local disk raw
    disk=$("$BED_BUILD/tests/bedctl" xml "$1" | sed -n "s/.*<source file='\([^']*\)'.*/\1/p" | head -n 1)
    [ -n "$disk" ] || { echo "the domain names no disk file" >&2; return 1; }
    raw=$(mktemp)
    qemu-img dd -U -f qcow2 -O raw bs=512 count=1 if="$disk" of="$raw" 2>/dev/null ||
        qemu-img convert -U -f qcow2 -O raw "$disk" "$raw" || { rm -f "$raw"; echo "cannot read $disk" >&2; return 1; }
    head -c 512 "$raw" | tr -d '\000' | head -n 1 |
        sed -n 's/^vdesk-disk boot=\([0-9]*\) hb=\([0-9]*\).*/\1 \2/p'
    echo "$disk, first line: $(head -c 80 "$raw" | tr -d '\000' | head -n 1)" >&2
    rm -f "$raw"
}

# bed_vdesk_files DIR: vdesk's node side for a bed in DIR (before bed_up):
# DIR/vdesk/vdesk.conf with a section per node (desktop desk-nN on the bed's
# libvirtd, stand-in devices gpu ua-gpu0 and ib ua-ib0, desktop core 1; in a
# migration bed each node's own daemon, its migrate_uri and address), and
# DIR/vdesk/prolog and epilog, which slurmd runs. slurmd gives them a clean
# environment, so they set VDESK_CONF themselves; a test that writes a step
# name into DIR/vdesk/crash makes the next one crash there (VDESK_TEST_CRASH,
# docs/design.md), once.
#
# With `hw`, node n1's devices are the emulated workstation's GPU (whose
# IOMMU group has 4 functions) and HCA, at DIR/hw (bed_hw): vdesk then also
# rebinds them between vfio-pci and their host drivers.
bed_vdesk_files() {
    local dir=$1 hw=${2:-} d n p gpu ib kind
    # A migration bed's vdesk.conf names the daemons' TCP ports: fix them now.
    if [ "${VDESK_BED_MIGRATION:-0}" = 1 ] && [ -z "${VDESK_BED_PORT:-}" ]; then
        VDESK_BED_PORT=$(bed__pick_ports)
        export VDESK_BED_PORT
    fi
    d=$dir/vdesk
    mkdir -p "$d"
    {
        cat <<EOF
[vdesk]
state_dir = $d/state/%n
snapshot_dir = $d/snapshots/%n
snapshots_keep = 2
policy = save,shutdown
timeout_unplug = 10
timeout_shutdown = 20
min_shutdown_grace = 2
EOF
        [ -n "$hw" ] && printf 'sysfs_root = %s/hw/sys\ndev_root = %s/hw/dev\nproc_root = %s/hw/proc\n' \
            "$dir" "$dir" "$dir"
        [ "${VDESK_BED_MIGRATION:-0}" = 1 ] && printf 'migrate_unsafe = yes\n'
        for n in $BED_NODES; do
            kind=desk
            case " ${VDESK_BED_LXC_NODES:-} " in *" $n "*) kind=ct ;; esac
            printf '\n[node %s]\nuri = %s\ndomain = %s-%s\n' "$n" "$(bed_node_uri "$dir" "$n")" "$kind" "$n"
            [ "${VDESK_BED_MIGRATION:-0}" = 1 ] &&
                printf 'migrate_uri = %s\nmigrate_address = tcp://127.0.0.1\n' "$(bed_peer_uri "$n")"
            gpu= ib=
            [ -n "$hw" ] && [ "$n" = n1 ] && gpu=" 0000:01:00.0" ib=" 0000:02:00.0"
            case " ${VDESK_BED_LXC_NODES:-} " in *" $n "*) continue ;; esac
            printf 'desktop_cores = 1\ndevice = gpu ua-gpu0%s\ndevice = ib ua-ib0%s\n' "$gpu" "$ib"
        done
    } >"$d/vdesk.conf"
    for p in prolog epilog; do
        cat >"$d/$p" <<EOF
#!/bin/sh
export VDESK_CONF="$d/vdesk.conf"
if [ -s "$d/crash" ]; then VDESK_TEST_CRASH=\$(cat "$d/crash"); export VDESK_TEST_CRASH; rm -f "$d/crash"; fi
# skip-epilog: job ids whose epilog does nothing (a test that wants a
# crashed prolog's journal left as it is).
if [ "$p" = epilog ] && grep -qsx "\$SLURM_JOB_ID" "$d/skip-epilog"; then exit 0; fi
exec "$BED_BUILD/prolog/vdesk-$p"
EOF
        chmod +x "$d/$p"
    done
    # slurmctld's job completion program (JobCompLoc=): jobcomp/script runs
    # it with no SLURM_CONF or VDESK_CONF, so the bed's go in here.
    cat >"$d/jobcomp" <<EOF
#!/bin/sh
export VDESK_CONF="$d/vdesk.conf" SLURM_CONF="$dir/slurm/slurm.conf"
exec "$BED_BUILD/jobcomp/vdesk-jobcomp"
EOF
    chmod +x "$d/jobcomp"
}

# bed_libvirt_stop [NODE] / bed_libvirt_start: stop the bed's libvirt daemon
# (NODE's in a migration bed; SIGKILL, as a crash would: its QEMUs keep
# running) and start a new one on the same directories; it finds the
# domains and the running QEMUs again.
bed_libvirt_stop() {
    local pid
    pid=$(cat "$(bed__libvirt_dir "$VDESK_BED" "${1:-n1}")/run/libvirtd.pid" 2>/dev/null) || return 1
    kill -KILL "$pid"
    bed__wait 10 bed__pid_gone "$pid"
}
bed_libvirt_start() {
    BED=$VDESK_BED BED_PORT=$VDESK_BED_PORT_BASE
    local l
    l=$(bed__libvirt_dir "$BED" "${1:-n1}")
    rm -f "$l/run/libvirt-sock" "$l/run/libvirt-sock-ro" "$l/run/libvirt-admin-sock"
    bed__libvirt "${1:-n1}"
}

# bed_slurmdbd_stop / bed_slurmdbd_start: stop the bed's slurmdbd (SIGKILL,
# as a crash would) and start it again on the same database.
bed_slurmdbd_stop() {
    BED=$VDESK_BED
    local pid
    pid=$(bed__pid_of slurmdbd)
    [ -n "$pid" ] || return 1
    # slurmdbd itself, under tini (whose own death by a signal the shell
    # that started it would announce).
    pkill -KILL -P "$pid" slurmdbd
    bed__wait 10 bed__pid_gone "$pid"
}
bed_slurmdbd_start() {
    BED=$VDESK_BED BED_PORT=$VDESK_BED_PORT_BASE
    bed__slurmdbd_run
}

# slurmdbd on the bed's slurmdbd.conf, which it reads beside SLURM_CONF.
bed__slurmdbd_run() {
    local s=$BED/slurm
    bed__start slurmdbd "$s/log/slurmdbd.out" env SLURM_CONF="$SLURM_CONF" slurmdbd -D
    bed__wait_up slurmdbd 60 sacctmgr -n list cluster ||
        { bed__fail slurmdbd "$s/log/slurmdbd.log" "sacctmgr gets no answer after 60 s"; return 1; }
}

# bed_virtlockd_start [NODE]: starts virtlockd again in the mount namespace
# (and root: make check's second platform runs in a chroot) of NODE's
# libvirt daemon, after a test killed it. Its socket and pid file are where
# the daemon looks.
bed_virtlockd_start() {
    local l pid
    l=$(bed__libvirt_dir "$VDESK_BED" "${1:-n1}")
    pid=$(cat "$l/run/libvirtd.pid") || return 1
    rm -f "$l/run/virtlockd-sock" "$l/run/virtlockd-admin-sock"
    nsenter -t "$pid" -m -r -w -- virtlockd -d -f /etc/libvirt/virtlockd.conf -p /run/libvirt/virtlockd.pid &&
        bed__wait 10 test -S "$l/run/virtlockd-sock"
}

# bed_hw MACHINE: mounts the sysfs emulator (tests/sysfs/MACHINE.ini) at
# $VDESK_BED/hw; bed_down unmounts it.
bed_hw() {
    BED=$VDESK_BED
    local m=$BED/hw
    mkdir -p "$m"
    bed__start sysfs-emu "$BED/hw.log" "$BED_BUILD/tests/vdesk-sysfs-emu" \
        "$BED_SRC/tests/sysfs/$1.ini" "$m" -f -o max_threads=16
    bed__wait_up sysfs-emu 10 test -d "$m/sys/bus/pci/devices" ||
        bed__fail sysfs-emu "$BED/hw.log" "$m is not mounted"
}

# bed_hw_vfio BDF: puts the IOMMU group of BDF on vfio-pci, as starting the
# desktop VM would have.
bed_hw_vfio() { bed__hw_group "$1" vfio-pci; }

# bed_hw_host BDF: gives the IOMMU group of BDF back to its host drivers.
bed_hw_host() { bed__hw_group "$1" ""; }

# bed__hw_group BDF OVERRIDE: every member of BDF's group to the driver
# OVERRIDE names ("": the host's own), by sysfs writes alone.
bed__hw_group() {
    local s=$VDESK_BED/hw/sys f drv
    for f in "$s/bus/pci/devices/$1/iommu_group/devices"/*; do
        f=$(basename "$f")
        echo "$2" >"$s/bus/pci/devices/$f/driver_override"
        drv=$(readlink "$s/bus/pci/devices/$f/driver") && echo "$f" >"$s/bus/pci/drivers/${drv##*/}/unbind"
        echo "$f" >"$s/bus/pci/drivers_probe"
    done
}

# bed_hw_driver BDF: the driver the emulated device is bound to.
bed_hw_driver() {
    local l
    l=$(readlink "$VDESK_BED/hw/sys/bus/pci/devices/$1/driver") && echo "${l##*/}"
}
