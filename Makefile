# vdesk - preemptible desktop VMs on Slurm nodes.
#
#   make            build everything into $(BUILD)
#   make check      install missing Debian packages, build, run every test here
#                   and again in a Debian $(ROOT_SUITE) root (tests/root.sh)
#   make check-here / check-root   one of the two legs
#   make demo       install missing Debian packages, build, run the demo
#   make bench      benchmarks, here and in the $(ROOT_SUITE) root (measured side by
#                   side; docs/benchmarks.md); make bench-here / bench-root: one
#   make install    PREFIX=/usr/local DESTDIR= (the plugin goes where Slurm
#                   looks on this distribution: $(SLURM_PLUGINDIR)); make uninstall
#   make deb        Debian packages vdesk-plugin and vdesk-node, lintian-checked
#   make testbed-up / testbed-down   a test bed to poke at by hand (docs/HACKING.md)
#   make fuzz       libFuzzer targets (clang), FUZZ_SECONDS each (docs/HACKING.md)
#   make soak       SIGKILL at random moments, recover at once: SOAK_CYCLES cycles

PREFIX         ?= /usr/local
DESTDIR        ?=
BUILD          ?= build
CC             ?= cc
MULTIARCH      := $(shell $(CC) -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
SLURM_PLUGINDIR ?= /usr/lib/$(MULTIARCH)/slurm-wlm
SLURM_INCDIR   ?= /usr/include/slurm
SYSCONFDIR     ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
MANDIR         ?= $(PREFIX)/share/man
LOCALSTATEDIR  ?= /var
VERSION        := 0.5.0

# Debian packages: to build, and to run the tests and the demo.
DEPS_BUILD := gcc make pkg-config libc6-dev libslurm-dev libvirt-dev libxml2-dev \
              libcmocka-dev libhwloc-dev libinih-dev libjson-c-dev libfuse3-dev libibverbs-dev \
              libsqlite3-dev
DEPS_RUN   := slurmctld slurmd slurm-client munge libvirt-daemon libvirt-daemon-driver-lxc \
              libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils busybox-static \
              tini cpio gzip xz-utils zstd util-linux procps iproute2 valgrind bc fuse3 logrotate \
              xorriso cloud-init sqlite3
# (xorriso makes the cloud-init seed of vdeskctl bootstrap; cloud-init's
# schema check is what vdeskctl profile check runs on user-data.)
# The student's screen (t_display): a real X server, the kiosk's viewer,
# and screenshots of it.
DEPS_RUN   += xvfb virt-viewer matchbox-window-manager x11-apps imagemagick
# vdeskctl report --svg's picture, rendered (t_report).
DEPS_RUN   += librsvg2-bin
# Slurm's own accounting (t_slurmdbd): slurmdbd on a MariaDB server of the
# test bed's own.
DEPS_RUN   += slurmdbd mariadb-server
# virtlockd and libvirt's lockd plugin (live migration's lock manager,
# t_migrate): part of libvirt-daemon up to Debian 12, packages of their own
# from Debian 13.
DEPS_LOCKD_bookworm :=
# Debian 13 also splits the storage driver (vdeskctl bootstrap's volumes,
# t_bootstrap) out of libvirt-daemon, and QEMU's SPICE display (t_display)
# out of qemu-system-x86.
DEPS_LOCKD_trixie   := libvirt-daemon-lock libvirt-daemon-plugin-lockd libvirt-daemon-driver-storage \
                       qemu-system-modules-spice
# make check's second platform: the supported Debian this machine is not
# (Debian 12 bookworm, Debian 13 trixie), in a root made by debootstrap and
# cached in $(BUILD)/cache/$(ROOT_SUITE).
HOST_SUITE := $(shell . /etc/os-release 2>/dev/null && echo $$VERSION_CODENAME)
ROOT_SUITE ?= $(if $(filter trixie,$(HOST_SUITE)),bookworm,trixie)

# make deb (and the test that builds and installs the packages).
DEPS_DEB := build-essential debhelper dpkg-dev fakeroot lintian pkg-config libslurm-dev \
            libvirt-dev libxml2-dev libhwloc-dev libinih-dev libjson-c-dev libibverbs-dev libsqlite3-dev
# Only `make fuzz` needs clang: make check replays the corpus with gcc.
DEPS_FUZZ  := clang libclang-rt-14-dev
# Only `make bench` plots (the curve's SVG).
DEPS_BENCH := gnuplot-nox

PKGS       := libvirt libxml-2.0 hwloc inih json-c libibverbs sqlite3
WARN       := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wformat=2
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O2 -fPIC $(WARN) -Ilib -Ilib/base -I$(BUILD)
PKG_CFLAGS  = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS    = $(shell pkg-config --libs $(PKGS)) -lslurm -lpthread
SAN         := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

# lib/base: what the SPANK plugin links too (libc only: it runs inside every
# srun); lib: the node side's library, which may use it.
BASE_SRC  := $(wildcard lib/base/*.c)
LIB_SRC   := $(wildcard lib/*.c) $(BASE_SRC)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
UNIT_ASAN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/asan/%)
TOOLS     := $(BUILD)/tests/bedctl $(BUILD)/tests/vdesk-sysfs-emu $(BUILD)/tests/pcibench \
             $(BUILD)/tests/nvidia-persistenced $(BUILD)/tests/nvml/libnvidia-ml.so.1 \
             $(BUILD)/tests/cpuwork $(BUILD)/tests/placebench $(BUILD)/tests/snapbench $(BUILD)/tests/shmcopy
PROGS     := $(BUILD)/prolog/vdesk-prolog $(BUILD)/prolog/vdesk-epilog $(BUILD)/cli/vdeskctl \
             $(BUILD)/jobcomp/vdesk-jobcomp
PLUGIN    := $(BUILD)/spank/vdesk.so
# The plugin runs inside every srun: of lib/, only lib/base.
PLUGIN_OBJ := $(BUILD)/spank/vdesk.o $(BASE_SRC:%.c=$(BUILD)/%.o)

# Fuzz targets (tests/fuzz/fuzz_NAME.c) and the lib/ sources each one needs.
FUZZ_ALL         := conf mode journal gres sysfs shmem
FUZZ_TARGETS     ?= $(FUZZ_ALL)
FUZZ_SECONDS     ?= 60
FUZZ_LIB_conf    := conf cpulist base/mode base/err
FUZZ_LIB_mode    := base/mode base/err
FUZZ_LIB_journal := journal statedir base/err
FUZZ_LIB_gres    := slurmapi base/err
FUZZ_LIB_sysfs   := sysfs pci nvidia child base/err
FUZZ_LIB_shmem   := shmem hv conf cpulist journal statedir pci sysfs nvidia child base/mode base/err
FUZZ_REPLAY := $(FUZZ_ALL:%=$(BUILD)/tests/fuzz/fuzz_%)
CLANG       ?= clang
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fPIC $(WARN) -Ilib -Ilib/base -I$(BUILD) $(FUZZ_SAN)

.PHONY: FORCE all deps fuzz-deps deb-deps bench-deps bench-here bench-root check check-here check-root unit integration demo bench install clean testbed-up testbed-down guest fuzz soak
all: $(BUILD)/libvdesk.a $(PLUGIN) $(PROGS) $(TOOLS) $(UNIT_BIN) $(UNIT_ASAN) $(FUZZ_REPLAY)

# What the programs must know of their build: the install prefix's
# configuration directory (slurmd gives Prolog/Epilog no environment to
# find vdesk.conf with), the default state directory
# (LOCALSTATEDIR/lib/vdesk) and the version. Rewritten only when it changes,
# so `make install PREFIX=/usr` rebuilds what reads it.
CONFIG_H := $(BUILD)/config.h
$(CONFIG_H): FORCE
	@mkdir -p $(dir $@)
	@printf '#define VD_SYSCONFDIR "%s"\n#define VD_LOCALSTATEDIR "%s"\n#define VD_VERSION "%s"\n' \
	    '$(SYSCONFDIR)' '$(LOCALSTATEDIR)' '$(VERSION)' >$@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi

$(BUILD)/%.o: %.c $(CONFIG_H) $(wildcard lib/*.h lib/base/*.h prolog/*.h cli/*.h tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Iprolog $(PKG_CFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/asan/%.o: %.c $(CONFIG_H) $(wildcard lib/*.h lib/base/*.h tests/unit/*.h tests/fuzz/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(SAN) $(PKG_CFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/libvdesk.a: $(LIB_OBJ)
	$(AR) rcs $@ $^

$(BUILD)/libvdesk-asan.a: $(LIB_SRC:%.c=$(BUILD)/asan/%.o)
	$(AR) rcs $@ $^

$(BUILD)/spank/vdesk.o: spank/vdesk.c $(CONFIG_H) $(wildcard lib/base/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -I$(SLURM_INCDIR)/.. $(CFLAGS) -c $< -o $@

$(PLUGIN): $(PLUGIN_OBJ) spank/vdesk.map
	$(CC) -shared $(LDFLAGS) -Wl,--version-script=spank/vdesk.map -o $@ $(PLUGIN_OBJ)

$(BUILD)/prolog/vdesk-%: $(BUILD)/prolog/%.o $(BUILD)/prolog/common.o $(BUILD)/libvdesk.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# slurmctld's job completion program (JobCompType=jobcomp/script).
$(BUILD)/jobcomp/vdesk-jobcomp: $(BUILD)/jobcomp/vdesk-jobcomp.o $(BUILD)/libvdesk.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# vdeskctl: every cli/*.c, one file a command (or a few related ones).
$(BUILD)/cli/vdeskctl: $(patsubst %.c,$(BUILD)/%.o,$(wildcard cli/*.c)) $(BUILD)/libvdesk.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# The sysfs emulator is a test tool: only it links libfuse3.
$(BUILD)/tests/vdesk-sysfs-emu: tests/sysfs/sysfs-emu.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $$(pkg-config --cflags fuse3 inih) $(CFLAGS) -o $@ $< $(LDFLAGS) $$(pkg-config --libs fuse3 inih) -lpthread

# Stand-ins for the NVIDIA driver's persistence daemon and NVML library,
# which talk to each other the way the real ones do, about emulated GPUs.
$(BUILD)/tests/nvidia-persistenced: tests/sysfs/nvpd-emu.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -o $@ $< $(LDFLAGS)

$(BUILD)/tests/nvml/libnvidia-ml.so.1: tests/sysfs/nvml-emu.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -shared -Wl,-soname,libnvidia-ml.so.1 -o $@ $< $(LDFLAGS)

$(BUILD)/tests/pcibench: $(BUILD)/tests/sysfs/pcibench.o $(BUILD)/libvdesk.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/bedctl: $(BUILD)/tests/bed/bedctl.o $(BUILD)/libvdesk.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# The migration target choice over simulated nodes (tests/bench/migrate.sh).
$(BUILD)/tests/placebench: $(BUILD)/tests/bench/placebench.o $(BUILD)/libvdesk.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# Snapshot and flatten against the bare libvirt calls (tests/bench.sh).
$(BUILD)/tests/snapbench: $(BUILD)/tests/bench/snapbench.o $(BUILD)/libvdesk.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# The isolation benchmark's job (tests/bench.sh): no library at all.
$(BUILD)/tests/cpuwork: tests/bench/cpuwork.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -o $@ $< $(LDFLAGS)

# The shared memory benchmark's copy loop, on the host (the test guest has
# a static build of the same file: tests/guest/mkguest.sh).
$(BUILD)/tests/shmcopy: tests/guest/shmcopy.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -o $@ $< $(LDFLAGS)

$(BUILD)/tests/test_%: $(BUILD)/tests/unit/test_%.o $(BUILD)/libvdesk.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lcmocka

$(BUILD)/tests/asan/test_%: $(BUILD)/asan/tests/unit/test_%.o $(BUILD)/libvdesk-asan.a
	@mkdir -p $(dir $@)
	$(CC) $(SAN) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lcmocka

# The corpus replay for make check: each fuzz target with replay.c's main,
# built by gcc like the ASan unit tests (tests/fuzz/replay.c).
$(BUILD)/tests/fuzz/fuzz_%: $(BUILD)/asan/tests/fuzz/fuzz_%.o $(BUILD)/asan/tests/fuzz/fuzz.o \
        $(BUILD)/asan/tests/fuzz/replay.o $(BUILD)/libvdesk-asan.a
	@mkdir -p $(dir $@)
	$(CC) $(SAN) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# Shared by all five: kept, not rebuilt for each.
.SECONDARY: $(FUZZ_ALL:%=$(BUILD)/asan/tests/fuzz/fuzz_%.o) $(BUILD)/asan/tests/fuzz/fuzz.o \
            $(BUILD)/asan/tests/fuzz/replay.o

# libFuzzer builds: everything compiled by clang with coverage, into $(BUILD)/fuzz.
$(BUILD)/fuzz/obj/%.o: %.c $(CONFIG_H) $(wildcard lib/*.h lib/base/*.h tests/fuzz/*.h)
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(PKG_CFLAGS) $(CFLAGS) -c $< -o $@

define FUZZ_TARGET
$(BUILD)/fuzz/fuzz_$(1): $(BUILD)/fuzz/obj/tests/fuzz/fuzz_$(1).o $(BUILD)/fuzz/obj/tests/fuzz/fuzz.o \
        $(FUZZ_LIB_$(1):%=$(BUILD)/fuzz/obj/lib/%.o)
	$$(CLANG) $$(FUZZ_SAN) -fsanitize=fuzzer $$(LDFLAGS) -o $$@ $$^ $$(PKG_LIBS)
endef
$(foreach t,$(FUZZ_ALL),$(eval $(call FUZZ_TARGET,$(t))))

# The test guest's kernel and initramfs, cached between runs.
guest:
	tests/guest/mkguest.sh $(BUILD)/cache/guest

# Installs only what is missing; needs root only when something is.
deps: DEPS_WANT = $(DEPS_BUILD) $(DEPS_RUN) $(DEPS_LOCKD_$(HOST_SUITE)) $(DEPS_DEB)
fuzz-deps: DEPS_WANT = $(DEPS_FUZZ)
deb-deps: DEPS_WANT = $(DEPS_DEB)
bench-deps: DEPS_WANT = $(DEPS_BENCH)
deps fuzz-deps deb-deps bench-deps:
	@missing=$$(for p in $(DEPS_WANT); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "$@: all Debian packages present"; exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
	    echo "$@: missing Debian packages:" $$missing "- run 'make $@' as root" >&2; exit 1; fi; \
	echo "$@: installing" $$missing; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update -q && apt-get install -y -q --no-install-recommends $$missing

check: deps
	tests/platforms.sh $(BUILD) $(ROOT_SUITE) "$(DEPS_BUILD) $(DEPS_RUN) $(DEPS_LOCKD_$(ROOT_SUITE)) $(DEPS_DEB)"

check-here: deps
	$(MAKE) all guest
	tests/check.sh $(BUILD)

check-root:
	tests/root.sh $(ROOT_SUITE) $(BUILD)/cache/$(ROOT_SUITE) "$(DEPS_BUILD) $(DEPS_RUN) $(DEPS_LOCKD_$(ROOT_SUITE)) $(DEPS_DEB)" -- \
	    make --no-print-directory check-here BUILD=/build

unit: all
	tests/check.sh --unit-only $(BUILD)

integration: all guest
	tests/check.sh --integration-only $(BUILD)

demo: deps
	$(MAKE) all guest
	tests/demo.sh $(BUILD)

# Like make check, on both platforms: here, then in the Debian $(ROOT_SUITE)
# root. Each writes its BUILD/bench/ (bench.txt, curve.tsv, curve.svg; the
# root's in $(BUILD)/cache/$(ROOT_SUITE)/build/bench) and copies its curve
# to docs/benchmarks-curve-CODENAME.svg, which docs/benchmarks.md shows.
bench: bench-here bench-root

bench-here: deps bench-deps
	$(MAKE) all guest
	tests/bench.sh $(BUILD)

bench-root:
	tests/root.sh $(ROOT_SUITE) $(BUILD)/cache/$(ROOT_SUITE) "$(DEPS_BUILD) $(DEPS_RUN) $(DEPS_LOCKD_$(ROOT_SUITE)) $(DEPS_DEB) $(DEPS_BENCH)" -- \
	    make --no-print-directory bench-here BUILD=/build

# Each target FUZZ_SECONDS in turn, on a corpus in $(BUILD)/fuzz/corpus
# seeded from tests/fuzz/corpus (tests/fuzz/run.sh); FUZZ_TARGETS="conf gres"
# for some of them, FUZZ_FLAGS for more libFuzzer flags.
fuzz: fuzz-deps
	$(MAKE) $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz_%)
	FUZZ_FLAGS="$(FUZZ_FLAGS)" tests/fuzz/run.sh $(BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# The kill soak's long run; make check runs 6 cycles of it (t_soak.sh).
SOAK_CYCLES ?= 60
soak: deps
	$(MAKE) all guest
	SOAK_CYCLES=$(SOAK_CYCLES) T_BUILD=$(abspath $(BUILD)) VDESK_BUILD=$(abspath $(BUILD)) \
	    VDESK_SRC=$(CURDIR) bash tests/integration/t_soak.sh

testbed-up: all guest
	tests/bed/bed up $(BUILD)/bed

testbed-down:
	tests/bed/bed down $(BUILD)/bed

DOCDIR ?= $(PREFIX)/share/doc/vdesk

LIBEXECDIR ?= $(PREFIX)/libexec/vdesk
SBINDIR    ?= $(PREFIX)/sbin
# systemd reads units from /usr/lib/systemd/system and
# /usr/local/lib/systemd/system (systemd.unit(5)).
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
UNITS      := vdesk-boot.service vdesk-boot-wait.service vdesk-snapshot.service vdesk-snapshot.timer \
              vdesk-metrics.service vdesk-metrics.timer
# The kiosk session: display managers list the sessions of share/xsessions.
XSESSIONDIR ?= $(PREFIX)/share/xsessions
# lib/conf.c's default state_dir (config.h), which etc/logrotate.d/vdesk
# names too: LOCALSTATEDIR, /var whatever the PREFIX unless told.
STATEDIR   := $(LOCALSTATEDIR)/lib/vdesk
# logrotate reads /etc/logrotate.d alone: another PREFIX gets the file as
# an example.
LOGROTATEDIR = $(if $(filter /usr,$(PREFIX)),$(SYSCONFDIR)/logrotate.d,$(DOCDIR)/examples/logrotate.d)
# vdesk refuses a state directory its user (root) does not own; an install
# into a staging DESTDIR by another user leaves the owner to the packager.
STATE_OWNER = $(if $(filter 0,$(shell id -u)),-o root -g root)
# What install puts into DOCDIR.
DOC_FILES  := design.md admin.md examples/vdesk.conf.example \
              examples/plugstack.conf.d/vdesk.conf examples/slurm/vdesk-slurm.conf \
              examples/profiles/example.profile
# The examples name the paths of the default install; an install elsewhere
# gets them with its own.
EXAMPLE_SED = sed -e 's|/usr/local/libexec/vdesk|$(LIBEXECDIR)|g' \
                  -e 's|/usr/lib/x86_64-linux-gnu/slurm-wlm|$(SLURM_PLUGINDIR)|g'

.PHONY: programs uninstall deb

# The plugin and the programs without the tests (what debian/rules builds).
programs: $(PLUGIN) $(PROGS)

install: $(PLUGIN) $(PROGS)
	install -d $(DESTDIR)$(SLURM_PLUGINDIR) $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(SBINDIR) \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(DOCDIR)/examples/plugstack.conf.d $(DESTDIR)$(DOCDIR)/examples/slurm \
	    $(DESTDIR)$(DOCDIR)/examples/profiles $(DESTDIR)$(SYSCONFDIR)/vdesk $(DESTDIR)$(LOGROTATEDIR) $(DESTDIR)$(SYSTEMDUNITDIR) \
	    $(DESTDIR)$(XSESSIONDIR)
	install -m 0755 $(PLUGIN) $(DESTDIR)$(SLURM_PLUGINDIR)/vdesk.so
	install -m 0755 $(BUILD)/prolog/vdesk-prolog $(BUILD)/prolog/vdesk-epilog \
	    $(BUILD)/jobcomp/vdesk-jobcomp $(DESTDIR)$(LIBEXECDIR)/
	install -m 0755 $(BUILD)/cli/vdeskctl $(DESTDIR)$(SBINDIR)/
	install -m 0644 docs/vdesk.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 docs/vdesk.conf.5 docs/vdesk-profile.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 docs/vdeskctl.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 docs/design.md docs/admin.md $(DESTDIR)$(DOCDIR)/
	install -m 0644 etc/vdesk.conf.example $(DESTDIR)$(DOCDIR)/examples/
	install -m 0644 etc/profiles/example.profile $(DESTDIR)$(DOCDIR)/examples/profiles/
	$(EXAMPLE_SED) etc/plugstack.conf.d/vdesk.conf >$(DESTDIR)$(DOCDIR)/examples/plugstack.conf.d/vdesk.conf
	$(EXAMPLE_SED) etc/slurm/vdesk-slurm.conf >$(DESTDIR)$(DOCDIR)/examples/slurm/vdesk-slurm.conf
	chmod 0644 $(DESTDIR)$(DOCDIR)/examples/plugstack.conf.d/vdesk.conf \
	    $(DESTDIR)$(DOCDIR)/examples/slurm/vdesk-slurm.conf
	sed 's|/usr/local/sbin/vdeskctl|$(SBINDIR)/vdeskctl|g' etc/kiosk/vdesk-kiosk >$(DESTDIR)$(LIBEXECDIR)/vdesk-kiosk
	chmod 0755 $(DESTDIR)$(LIBEXECDIR)/vdesk-kiosk
	sed 's|/usr/local/libexec/vdesk|$(LIBEXECDIR)|g' etc/kiosk/vdesk-kiosk.desktop >$(DESTDIR)$(XSESSIONDIR)/vdesk-kiosk.desktop
	chmod 0644 $(DESTDIR)$(XSESSIONDIR)/vdesk-kiosk.desktop
	for u in $(UNITS); do \
	    sed 's|/usr/local/sbin/vdeskctl|$(SBINDIR)/vdeskctl|g' etc/systemd/$$u >$(DESTDIR)$(SYSTEMDUNITDIR)/$$u && \
	    chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$u || exit 1; done
	sed 's|/var/lib/vdesk|$(STATEDIR)|g' etc/logrotate.d/vdesk >$(DESTDIR)$(LOGROTATEDIR)/vdesk
	chmod 0644 $(DESTDIR)$(LOGROTATEDIR)/vdesk
	@# The admin's vdesk.conf is never replaced, even by the example.
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/vdesk/vdesk.conf ]; then \
	    echo "install: kept $(DESTDIR)$(SYSCONFDIR)/vdesk/vdesk.conf (the example is $(DOCDIR)/examples/vdesk.conf.example)"; \
	else install -m 0644 etc/vdesk.conf.example $(DESTDIR)$(SYSCONFDIR)/vdesk/vdesk.conf; fi
	install -d -m 0700 $(STATE_OWNER) $(DESTDIR)$(STATEDIR)

# Removes what install put there and nothing else; says what it keeps: a
# vdesk.conf that is not the example any more (the admin's), a state
# directory with anything in it (journal, records, a saved desktop), and
# directories that hold other files.
uninstall:
	@conf=$(DESTDIR)$(SYSCONFDIR)/vdesk/vdesk.conf; \
	if [ ! -e "$$conf" ]; then :; \
	elif cmp -s "$$conf" etc/vdesk.conf.example || \
	     cmp -s "$$conf" $(DESTDIR)$(DOCDIR)/examples/vdesk.conf.example; then \
	    rm -f "$$conf"; \
	else echo "uninstall: kept $$conf (changed from the example)"; fi
	rm -f $(DESTDIR)$(SLURM_PLUGINDIR)/vdesk.so \
	    $(DESTDIR)$(LIBEXECDIR)/vdesk-prolog $(DESTDIR)$(LIBEXECDIR)/vdesk-epilog $(DESTDIR)$(LIBEXECDIR)/vdesk-jobcomp \
	    $(DESTDIR)$(SBINDIR)/vdeskctl $(DESTDIR)$(MANDIR)/man1/vdesk.1 \
	    $(DESTDIR)$(MANDIR)/man5/vdesk.conf.5 $(DESTDIR)$(MANDIR)/man5/vdesk-profile.5 \
	    $(DESTDIR)$(MANDIR)/man8/vdeskctl.8 \
	    $(DESTDIR)$(LOGROTATEDIR)/vdesk $(DOC_FILES:%=$(DESTDIR)$(DOCDIR)/%) \
	    $(UNITS:%=$(DESTDIR)$(SYSTEMDUNITDIR)/%) $(DESTDIR)$(LIBEXECDIR)/vdesk-kiosk \
	    $(DESTDIR)$(XSESSIONDIR)/vdesk-kiosk.desktop
	@# vdesk's own directories only (not sbin, man8, Slurm's plugin dir...),
	@# deepest first.
	@for d in $(DESTDIR)$(DOCDIR)/examples/logrotate.d $(DESTDIR)$(DOCDIR)/examples/plugstack.conf.d \
	        $(DESTDIR)$(DOCDIR)/examples/profiles \
	        $(DESTDIR)$(DOCDIR)/examples/slurm $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) \
	        $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(SYSCONFDIR)/vdesk $(DESTDIR)$(STATEDIR); do \
	    [ -d "$$d" ] || continue; \
	    rmdir "$$d" 2>/dev/null || echo "uninstall: kept $$d (not empty: $$(ls -A "$$d" | head -5 | paste -sd ' '))"; \
	done

# make deb: the Debian packages vdesk-plugin and vdesk-node (debian/),
# built from a copy of the source in $(DEB_DIR), so that the packages and
# debian/build do not land in the checkout; lintian must find nothing.
DEB_DIR  := $(BUILD)/deb
DEB_SRC  := $(DEB_DIR)/vdesk-$(VERSION)
# $(BUILD) inside the checkout and not ignored by git must not be copied
# into itself.
DEB_SKIP := $(patsubst $(CURDIR)/%,%,$(abspath $(BUILD)))/

deb: deb-deps
	@v=$$(dpkg-parsechangelog -l debian/changelog -S Version); \
	case $$v in $(VERSION)-*) ;; *) echo "deb: debian/changelog is at $$v, the Makefile at" \
	    "$(VERSION): add an entry (dch -v $(VERSION)-1)" >&2; exit 1;; esac
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_SRC)
	@# The checkout's files as they are now, committed or not (git's ignore
	@# rules keep build output out); a tree without git: all of it but the
	@# build directories.
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	    git ls-files -z --cached --others --exclude-standard | \
	        xargs -0 sh -c 'for f; do case $$f in $(DEB_SKIP)*) continue;; esac; \
	            if [ -e "$$f" ] || [ -L "$$f" ]; then printf "%s\0" "$$f"; fi; done' sh | \
	        tar --null --verbatim-files-from -T - -cf - | tar -C $(DEB_SRC) -xf -; \
	else \
	    tar --exclude-vcs --exclude=./build --exclude=./$(DEB_SKIP:%/=%) --exclude=./debian/build \
	        --exclude=./debian/tmp --exclude=./debian/.debhelper --exclude=./debian/vdesk-node \
	        --exclude=./debian/vdesk-plugin -cf - . | tar -C $(DEB_SRC) -xf -; \
	fi
	cd $(DEB_SRC) && dpkg-buildpackage -b -us -uc
	@# Run as root it warns that it should not be; that is not a finding.
	lintian --fail-on error,warning $(DEB_DIR)/vdesk_*.changes
	@echo "deb: lintian found no errors or warnings; the packages:"
	@ls -1 $(abspath $(DEB_DIR))/*.deb

clean:
	rm -rf $(BUILD)/lib $(BUILD)/asan $(BUILD)/tests $(BUILD)/spank $(BUILD)/prolog $(BUILD)/cli $(BUILD)/jobcomp $(BUILD)/*.a \
	    $(BUILD)/fuzz/obj $(BUILD)/fuzz/fuzz_*
