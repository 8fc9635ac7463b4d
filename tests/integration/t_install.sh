#!/bin/bash
# make install honours PREFIX and DESTDIR and puts the plugin where Debian's
# Slurm looks for plugins.
. "$(dirname "$0")/../lib.sh"

test_install_into_destdir() {
    local d multiarch f
    d=$(mktemp -d)
    multiarch=$(cc -print-multiarch)
    make -s -C "$T_ROOT" BUILD="$T_BUILD" install DESTDIR="$d" PREFIX=/usr >/dev/null
    for f in "usr/lib/$multiarch/slurm-wlm/vdesk.so" usr/share/man/man1/vdesk.1 \
             usr/share/man/man5/vdesk.conf.5 usr/share/man/man8/vdeskctl.8 \
             usr/libexec/vdesk/vdesk-prolog usr/libexec/vdesk/vdesk-epilog usr/sbin/vdeskctl \
             usr/share/doc/vdesk/examples/vdesk.conf.example \
             usr/share/doc/vdesk/examples/plugstack.conf.d/vdesk.conf \
             usr/share/doc/vdesk/examples/slurm/vdesk-slurm.conf; do
        [ -s "$d/$f" ] || t_fail "missing after install: $f"
    done
    [ -d "/usr/lib/$multiarch/slurm-wlm" ] && assert_match "$(ls /usr/lib/"$multiarch"/slurm-wlm)" "spank|select_cons_tres" "Slurm's plugin dir"
    assert_eq "$(find "$d" -type f | wc -l)" 10 "files installed"
    "$d/usr/sbin/vdeskctl" --conf "$T_ROOT/etc/vdesk.conf.example" check-config >/dev/null ||
        t_fail "the installed vdeskctl rejects the example config"
    rm -rf "$d"
}

test_prefix_moves_docs_not_the_plugin() {
    local d
    d=$(mktemp -d)
    make -s -C "$T_ROOT" BUILD="$T_BUILD" install DESTDIR="$d" PREFIX=/opt/vdesk >/dev/null
    [ -s "$d/opt/vdesk/share/man/man1/vdesk.1" ] || t_fail "man page not under PREFIX"
    [ -s "$d/usr/lib/$(cc -print-multiarch)/slurm-wlm/vdesk.so" ] || t_fail "plugin not in Slurm's plugin dir"
    rm -rf "$d"
}

# Acting commands refuse a non-root user at once, with one line; the
# read-only ones stay available.
test_acting_commands_refuse_non_root() {
    local conf=$T_ROOT/etc/vdesk.conf.example cmd out
    as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$T_BUILD/cli/vdeskctl" --conf "$conf" --node ws01 "$@" 2>&1; }
    for cmd in "evict save" restore "restore --force" recover; do
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
