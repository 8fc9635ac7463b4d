#!/bin/bash
# make install honours PREFIX and DESTDIR, puts the plugin where Debian's
# Slurm looks for plugins and never replaces an admin's vdesk.conf; make
# uninstall takes back what it put there and nothing else; make deb builds
# packages that lintian accepts and that install and purge cleanly.
. "$(dirname "$0")/../lib.sh"

VERSION=$(sed -n 's/^VERSION *:= *//p' "$T_ROOT/Makefile")

# vdesk_make TARGET DESTDIR [VAR=VALUE...]: make install or uninstall into
# DESTDIR, PREFIX=/usr unless a later PREFIX= says otherwise.
vdesk_make() {
    local target=$1 d=$2
    shift 2
    make_install "$target" DESTDIR="$d" PREFIX=/usr "$@"
}

# make_install TARGET VAR=VALUE...: make TARGET with a build directory of
# its own for each set of paths. The paths are compiled in (config.h), so
# one build directory for all would rebuild everything at each change of
# PREFIX, and leave T_BUILD built for the last one.
make_install() {
    local target=$1 b
    shift
    b=$T_BUILD/t_install/$(printf '%s\n' "$@" | grep -v '^DESTDIR=' |
        awk -F= '{ v[$1] = $0 } END { for (k in v) print v[k] }' | sort | md5sum | cut -c1-12)
    make -s -C "$T_ROOT" BUILD="$b" "$target" "$@"
}
t_teardown() { rm -rf "$T_BUILD/t_install"; }

test_install_into_destdir() {
    local d multiarch f out
    d=$(mktemp -d)
    multiarch=$(cc -print-multiarch)
    make_install install DESTDIR="$d" PREFIX=/usr >/dev/null
    for f in "usr/lib/$multiarch/slurm-wlm/vdesk.so" usr/share/man/man1/vdesk.1 \
             usr/share/man/man5/vdesk.conf.5 usr/share/man/man8/vdeskctl.8 \
             usr/libexec/vdesk/vdesk-prolog usr/libexec/vdesk/vdesk-epilog usr/libexec/vdesk/vdesk-jobcomp \
             usr/sbin/vdeskctl \
             usr/share/doc/vdesk/examples/vdesk.conf.example \
             usr/share/doc/vdesk/examples/plugstack.conf.d/vdesk.conf \
             usr/share/doc/vdesk/examples/slurm/vdesk-slurm.conf \
             usr/share/doc/vdesk/design.md usr/share/doc/vdesk/admin.md \
             etc/vdesk/vdesk.conf etc/logrotate.d/vdesk \
             usr/lib/systemd/system/vdesk-boot.service usr/lib/systemd/system/vdesk-boot-wait.service \
             usr/lib/systemd/system/vdesk-snapshot.service usr/lib/systemd/system/vdesk-snapshot.timer \
             usr/lib/systemd/system/vdesk-metrics.service usr/lib/systemd/system/vdesk-metrics.timer \
             usr/libexec/vdesk/vdesk-kiosk usr/share/xsessions/vdesk-kiosk.desktop \
             usr/share/man/man5/vdesk-profile.5 usr/share/doc/vdesk/examples/profiles/example.profile; do
        [ -s "$d/$f" ] || t_fail "missing after install: $f"
    done
    [ -d "/usr/lib/$multiarch/slurm-wlm" ] && assert_match "$(ls /usr/lib/"$multiarch"/slurm-wlm)" "spank|select_cons_tres" "Slurm's plugin dir"
    assert_eq "$(find "$d" -type f | wc -l)" 25 "files installed"
    assert_match "$(cat "$d/usr/libexec/vdesk/vdesk-kiosk")" '^vdeskctl=\$\{VDESKCTL:-/usr/sbin/vdeskctl\}$'
    assert_match "$(cat "$d/usr/share/xsessions/vdesk-kiosk.desktop")" '^Exec=/usr/libexec/vdesk/vdesk-kiosk$' 
    # The boot units start the installed vdeskctl, and systemd takes them.
    assert_match "$(cat "$d/usr/lib/systemd/system/vdesk-boot.service")" "^ExecStart=/usr/sbin/vdeskctl boot$"
    assert_match "$(cat "$d/usr/lib/systemd/system/vdesk-boot.service")" "^Before=slurmd.service$"
    assert_match "$(cat "$d/usr/lib/systemd/system/vdesk-snapshot.service")" "^ExecStart=/usr/sbin/vdeskctl snapshot --schedule$"
    assert_match "$(cat "$d/usr/lib/systemd/system/vdesk-metrics.service")" \
        "^ExecStart=/usr/sbin/vdeskctl metrics --textfile /var/lib/prometheus/node-exporter$"
    if command -v systemd-analyze >/dev/null; then
        # Installed under a prefix of its own, so that ExecStart's program exists.
        local p
        p=$(mktemp -d)
        make_install install PREFIX="$p/usr" SYSCONFDIR="$p/etc" \
            LOCALSTATEDIR="$p/var" SLURM_PLUGINDIR="$p/plugins" >/dev/null
        out=$(systemd-analyze verify --man=no "$p/usr/lib/systemd/system/vdesk-boot.service" \
            "$p/usr/lib/systemd/system/vdesk-boot-wait.service" "$p/usr/lib/systemd/system/vdesk-snapshot.service" \
            "$p/usr/lib/systemd/system/vdesk-snapshot.timer" "$p/usr/lib/systemd/system/vdesk-metrics.service" \
            "$p/usr/lib/systemd/system/vdesk-metrics.timer" 2>&1) ||
            t_fail "systemd-analyze verify refuses the units: $out"
        rm -rf "$p"
    fi
    [ -d "$d/var/lib/vdesk" ] || t_fail "no state directory after install"
    cmp -s "$d/etc/vdesk/vdesk.conf" "$T_ROOT/etc/vdesk.conf.example" ||
        t_fail "the installed vdesk.conf is not the example"
    assert_eq "$(stat -c %a "$d/etc/vdesk/vdesk.conf")" 644 "vdesk.conf mode"
    # The examples name where this install put things.
    assert_match "$(cat "$d/usr/share/doc/vdesk/examples/slurm/vdesk-slurm.conf")" \
        "^Prolog=/usr/libexec/vdesk/vdesk-prolog$"
    assert_match "$(grep -v '^#' "$d/usr/share/doc/vdesk/examples/plugstack.conf.d/vdesk.conf")" \
        "^required /usr/lib/$multiarch/slurm-wlm/vdesk.so "
    "$d/usr/sbin/vdeskctl" --conf "$T_ROOT/etc/vdesk.conf.example" check-config >/dev/null ||
        t_fail "the installed vdeskctl rejects the example config"
    rm -rf "$d"
}

test_prefix_moves_docs_not_the_plugin() {
    local d
    d=$(mktemp -d)
    make_install install DESTDIR="$d" PREFIX=/opt/vdesk >/dev/null
    [ -s "$d/opt/vdesk/share/man/man1/vdesk.1" ] || t_fail "man page not under PREFIX"
    [ -s "$d/usr/lib/$(cc -print-multiarch)/slurm-wlm/vdesk.so" ] || t_fail "plugin not in Slurm's plugin dir"
    [ -s "$d/opt/vdesk/etc/vdesk/vdesk.conf" ] || t_fail "vdesk.conf not under PREFIX/etc"
    # logrotate reads /etc/logrotate.d alone: another prefix gets an example.
    [ -s "$d/opt/vdesk/share/doc/vdesk/examples/logrotate.d/vdesk" ] || t_fail "logrotate example not in the docs"
    [ ! -e "$d/etc" ] || t_fail "PREFIX=/opt/vdesk installed into /etc: $(find "$d/etc")"
    assert_match "$("$d/opt/vdesk/sbin/vdeskctl" --version)" "\(default config /opt/vdesk/etc/vdesk/vdesk.conf\)$"
    assert_match "$(cat "$d/opt/vdesk/share/doc/vdesk/examples/slurm/vdesk-slurm.conf")" \
        "^Epilog=/opt/vdesk/libexec/vdesk/vdesk-epilog$"
    rm -rf "$d"
}

# The programs find vdesk.conf by the path compiled into them (slurmd gives
# the prolog no environment to find it with): that of the install.
test_installed_programs_name_their_version_and_config() {
    local d p
    d=$(mktemp -d)
    vdesk_make install "$d" >/dev/null
    assert_eq "$("$d/usr/sbin/vdeskctl" --version)" \
        "vdeskctl $VERSION (default config /etc/vdesk/vdesk.conf)" "installed vdeskctl --version"
    for p in vdesk-prolog vdesk-epilog vdesk-jobcomp; do
        assert_eq "$("$d/usr/libexec/vdesk/$p" --version)" \
            "$p $VERSION (reads /etc/vdesk/vdesk.conf)" "installed $p --version"
    done
    rm -rf "$d"
}

test_install_keeps_an_existing_vdesk_conf() {
    local d out
    d=$(mktemp -d)
    mkdir -p "$d/etc/vdesk"
    printf '[vdesk]\nstate_dir = /srv/vdesk ; the admin'"'"'s\n' >"$d/etc/vdesk/vdesk.conf"
    cp "$d/etc/vdesk/vdesk.conf" "$d/admins.conf"
    out=$(vdesk_make install "$d")
    cmp -s "$d/etc/vdesk/vdesk.conf" "$d/admins.conf" || t_fail "install replaced the admin's vdesk.conf"
    assert_match "$out" "^install: kept $d/etc/vdesk/vdesk.conf "
    [ -s "$d/usr/share/doc/vdesk/examples/vdesk.conf.example" ] || t_fail "the example is not in the docs"
    # Installed from the example once, it is the admin's from then on.
    rm "$d/etc/vdesk/vdesk.conf"
    vdesk_make install "$d" >/dev/null
    cmp -s "$d/etc/vdesk/vdesk.conf" "$T_ROOT/etc/vdesk.conf.example" || t_fail "no vdesk.conf from the example"
    echo "; changed" >>"$d/etc/vdesk/vdesk.conf"
    cp "$d/etc/vdesk/vdesk.conf" "$d/admins.conf"
    vdesk_make install "$d" >/dev/null
    cmp -s "$d/etc/vdesk/vdesk.conf" "$d/admins.conf" || t_fail "a second install replaced the changed vdesk.conf"
    rm -rf "$d"
}

# vdesk refuses a state directory others can write to; it is root's alone
# (it holds the desktop's saved RAM), made so by install even if it was not.
test_state_dir_is_0700_root() {
    local d
    d=$(mktemp -d)
    vdesk_make install "$d" >/dev/null
    assert_eq "$(stat -c '%a %U %G' "$d/var/lib/vdesk")" "700 root root" "state directory"
    rm -rf "$d"
    d=$(mktemp -d)
    install -d -m 0775 "$d/var/lib/vdesk"
    echo '{}' >"$d/var/lib/vdesk/records.jsonl"
    vdesk_make install "$d" >/dev/null
    assert_eq "$(stat -c %a "$d/var/lib/vdesk")" 700 "an existing state directory after install"
    assert_eq "$(cat "$d/var/lib/vdesk/records.jsonl")" '{}' "what the state directory held"
    rm -rf "$d"
}

test_uninstall_removes_what_install_added() {
    local d prefix etc out dir
    for prefix in /usr /opt/vdesk; do
        etc=$prefix/etc
        [ "$prefix" = /usr ] && etc=/etc
        d=$(mktemp -d)
        vdesk_make install "$d" PREFIX="$prefix" >/dev/null
        vdesk_make uninstall "$d" PREFIX="$prefix" >/dev/null
        assert_eq "$(find "$d" -type f)" "" "files left by uninstall (PREFIX=$prefix)"
        # vdesk's own directories go; the shared ones (sbin, man8, Slurm's
        # plugin dir) may hold others' files and stay.
        for dir in "$prefix/libexec/vdesk" "$prefix/share/doc/vdesk" "$etc/vdesk" /var/lib/vdesk; do
            [ ! -e "$d$dir" ] || t_fail "left by uninstall (PREFIX=$prefix): $dir"
        done
        rm -rf "$d"
    done
    # The admin's vdesk.conf and a state directory in use are kept, and said so.
    d=$(mktemp -d)
    vdesk_make install "$d" >/dev/null
    echo "; changed" >>"$d/etc/vdesk/vdesk.conf"
    echo '{"op":"evict"}' >"$d/var/lib/vdesk/records.jsonl"
    out=$(vdesk_make uninstall "$d")
    assert_match "$out" "^uninstall: kept $d/etc/vdesk/vdesk.conf \(changed from the example\)$"
    assert_match "$out" "^uninstall: kept $d/var/lib/vdesk \(not empty: records.jsonl\)$"
    assert_eq "$(cd "$d" && find . -type f | sort | tr '\n' ' ')" \
        "./etc/vdesk/vdesk.conf ./var/lib/vdesk/records.jsonl " "files left by uninstall"
    rm -rf "$d"
}

# The installed logrotate file rotates by rename (vdesk opens records.jsonl
# for each append, see etc/logrotate.d/vdesk), for both state_dir layouts.
# LOGROTATE=COMMAND runs another logrotate than the one in PATH.
test_logrotate_rotates_records_by_rename() {
    local lr=${LOGROTATE:-logrotate} d s ino
    if ! command -v "$lr" >/dev/null; then
        t_say "skipped: no logrotate here (apt-get install logrotate, or LOGROTATE=COMMAND)"
        return 0
    fi
    d=$(mktemp -d)
    vdesk_make install "$d" >/dev/null
    s=$d/var/lib/vdesk
    sed "s|/var/lib/vdesk|$s|g" "$d/etc/logrotate.d/vdesk" >"$d/logrotate.conf"
    install -d -m 0700 "$s/n1"
    echo '{"op":"evict"}' >"$s/records.jsonl"
    echo '{"op":"evict","node":"n1"}' >"$s/n1/records.jsonl"
    ino=$(stat -c %i "$s/records.jsonl")
    "$lr" -f -s "$d/state" "$d/logrotate.conf" || t_fail "logrotate failed"
    assert_eq "$(stat -c %i "$s/records.jsonl.1")" "$ino" "records.jsonl.1 is the renamed file"
    [ ! -e "$s/records.jsonl" ] || t_fail "logrotate created records.jsonl (vdesk does, on its next append)"
    assert_eq "$(cat "$s/n1/records.jsonl.1")" '{"op":"evict","node":"n1"}' "%n state_dir rotated"
    # The next rotation compresses the one before (delaycompress).
    echo '{"op":"restore"}' >"$s/records.jsonl"
    "$lr" -f -s "$d/state" "$d/logrotate.conf" || t_fail "logrotate failed (2nd)"
    assert_eq "$(cat "$s/records.jsonl.1")" '{"op":"restore"}' "newest rotated records"
    assert_eq "$(zcat "$s/records.jsonl.2.gz")" '{"op":"evict"}' "older rotated records, compressed"
    rm -rf "$d"
}

# make deb: both packages, lintian clean, installed on this machine with
# dpkg -i and purged again. T_SKIP_DEB=1 skips it (it builds everything
# once more and runs lintian: a minute or two).
test_deb_packages_build_install_and_purge() {
    local out debs node plugin p f multiarch etc_slurm_before sconf
    if [ "${T_SKIP_DEB:-0}" = 1 ]; then t_say "skipped: T_SKIP_DEB=1"; return 0; fi
    out=$(make -C "$T_ROOT" BUILD="$T_BUILD" deb 2>&1) || { t_say "$(tail -30 <<<"$out")"; t_fail "make deb failed"; }
    assert_match "$out" "^deb: lintian found no errors or warnings"
    debs=$T_BUILD/deb
    node=$(ls "$debs"/vdesk-node_"$VERSION"-*.deb)
    plugin=$(ls "$debs"/vdesk-plugin_"$VERSION"-*.deb)
    multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
    assert_match "$(dpkg-deb -f "$node" Depends)" "vdesk-plugin \(= $VERSION-[^)]*\)"
    for p in libibverbs1 libvirt0 libhwloc15 libinih1 libjson-c5 'libsqlite3-0' 'libslurm[0-9]+(t64)?'; do
        assert_match "$(dpkg-deb -f "$node" Depends)" "(^|, )$p( |,|$)" "vdesk-node Depends"
    done
    assert_no_match "$(dpkg-deb -f "$node" Depends)" "libvirt-daemon" "libvirt's daemon is recommended, not required"
    assert_match "$(dpkg-deb -f "$node" Recommends)" "libvirt-daemon-driver-qemu"
    # The plugin loads only into the Slurm major.minor it was built for.
    assert_match "$(dpkg-deb -f "$plugin" Depends)" \
        "slurm-wlm-basic-plugins \(>= [0-9]+\.[0-9]+\), slurm-wlm-basic-plugins \(<< [0-9]+\.[0-9]+~\)"
    assert_eq "$(dpkg-deb -I "$node" conffiles | sort | tr '\n' ' ')" \
        "/etc/logrotate.d/vdesk /etc/vdesk/vdesk.conf " "vdesk-node conffiles"
    assert_eq "$(dpkg-deb -I "$plugin" conffiles)" "/etc/slurm/plugstack.conf.d/vdesk.conf" "vdesk-plugin conffiles"
    assert_match "$(dpkg-deb -c "$node")" "^drwx------ root/root .* \./var/lib/vdesk/$"
    assert_match "$(dpkg-deb -c "$plugin")" " \./usr/lib/$multiarch/slurm-wlm/vdesk\.so$"

    # Installing them here must change nothing of the machine's own: skip
    # if anything of vdesk is there already.
    for f in /etc/slurm/plugstack.conf.d/vdesk.conf /etc/vdesk /var/lib/vdesk /usr/libexec/vdesk \
             /usr/sbin/vdeskctl /etc/logrotate.d/vdesk "/usr/lib/$multiarch/slurm-wlm/vdesk.so"; do
        if [ -e "$f" ]; then t_say "skipped installing the packages: $f exists on this machine"; return 0; fi
    done
    for p in vdesk-plugin vdesk-node; do
        if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'installed'; then
            t_say "skipped installing the packages: $p is installed on this machine"; return 0
        fi
    done
    etc_slurm_before=$(find /etc/slurm -type f -exec sha256sum {} + 2>/dev/null | sort)
    trap 'dpkg -P vdesk-node vdesk-plugin >/dev/null 2>&1 || true' EXIT
    dpkg -i "$plugin" "$node" >/dev/null || t_fail "dpkg -i failed"
    assert_eq "$(/usr/sbin/vdeskctl --version)" "vdeskctl $VERSION (default config /etc/vdesk/vdesk.conf)"
    assert_eq "$(/usr/libexec/vdesk/vdesk-prolog --version)" "vdesk-prolog $VERSION (reads /etc/vdesk/vdesk.conf)"
    assert_match "$(/usr/sbin/vdeskctl check-config)" "OK$"
    assert_eq "$(stat -c '%a %U' /var/lib/vdesk)" "700 root" "the package's state directory"
    # The admin enables the units (admin.md); scheduled snapshots above all.
    [ ! -e /etc/systemd/system/timers.target.wants/vdesk-snapshot.timer ] || t_fail "vdesk-snapshot.timer enabled by the package"
    [ ! -e /etc/systemd/system/timers.target.wants/vdesk-metrics.timer ] || t_fail "vdesk-metrics.timer enabled by the package"
    [ -s /usr/lib/systemd/system/vdesk-snapshot.timer ] || t_fail "no vdesk-snapshot.timer in the package"
    # Debian's plugstack.conf includes plugstack.conf.d/*.conf: with the
    # package's line, sbatch offers --vdesk with its arguments (max_timeout).
    sconf=$(mktemp -d)
    printf '%s\n' ClusterName=vdesk-t-install SlurmctldHost=localhost \
        PlugStackConfig=/etc/slurm/plugstack.conf 'NodeName=n1 CPUs=1' 'PartitionName=p Nodes=n1' >"$sconf/slurm.conf"
    out=$(SLURM_CONF=$sconf/slurm.conf timeout 30 sbatch --help 2>&1) || true
    assert_match "$out" "--vdesk=MODE" "sbatch --help with the packaged plugin"
    assert_match "$out" "at most $(sed -n 's/^required .* max_timeout=\([0-9]*\).*/\1/p' \
        "$T_ROOT/etc/plugstack.conf.d/vdesk.conf")\)" "the packaged plugstack line's max_timeout"
    rm -rf "$sconf"
    dpkg -P vdesk-node vdesk-plugin >/dev/null || t_fail "dpkg -P failed"
    trap - EXIT
    for f in /etc/slurm/plugstack.conf.d/vdesk.conf /etc/vdesk /var/lib/vdesk /usr/libexec/vdesk \
             /usr/sbin/vdeskctl /etc/logrotate.d/vdesk "/usr/lib/$multiarch/slurm-wlm/vdesk.so"; do
        [ ! -e "$f" ] || t_fail "left after dpkg -P: $f"
    done
    assert_eq "$(find /etc/slurm -type f -exec sha256sum {} + 2>/dev/null | sort)" "$etc_slurm_before" \
        "/etc/slurm after install and purge"
}

# Acting commands refuse a non-root user at once, with one line; the
# read-only ones stay available.
test_acting_commands_refuse_non_root() {
    local conf=$T_ROOT/etc/vdesk.conf.example cmd out
    as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$T_BUILD/cli/vdeskctl" --conf "$conf" --node ws01 "$@" 2>&1; }
    for cmd in "evict save" restore "restore --force" recover boot "select desk-b"; do
        # shellcheck disable=SC2086
        if out=$(as_nobody $cmd); then t_fail "'vdeskctl $cmd' as nobody succeeded"; fi
        assert_eq "$out" "vdeskctl ${cmd%% *}: must run as root (it acts on the desktop VM and its devices); status, check-config and inventory need no root" "vdeskctl $cmd as nobody"
    done
    # check-config needs only a readable file (the checkout may be private to root).
    cp "$conf" /tmp/vdesk-nobody.conf && chmod 644 /tmp/vdesk-nobody.conf
    conf=/tmp/vdesk-nobody.conf
    assert_match "$(as_nobody check-config)" "OK$"
    rm -f /tmp/vdesk-nobody.conf
}

t_main
