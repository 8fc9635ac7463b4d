# vdesk - preemptible desktop VMs on Slurm nodes.
#
#   make            build everything into $(BUILD)
#   make check      install missing Debian packages, build, run every test
#   make demo       install missing Debian packages, build, run the demo
#   make bench      benchmarks (ratios measured side by side)
#   make install    PREFIX=/usr/local DESTDIR= (the plugin goes where Slurm
#                   looks on this distribution: $(SLURM_PLUGINDIR))
#   make testbed-up / testbed-down   a test bed to poke at by hand (docs/HACKING.md)

PREFIX         ?= /usr/local
DESTDIR        ?=
BUILD          ?= build
CC             ?= cc
MULTIARCH      := $(shell $(CC) -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
SLURM_PLUGINDIR ?= /usr/lib/$(MULTIARCH)/slurm-wlm
SLURM_INCDIR   ?= /usr/include/slurm
SYSCONFDIR     ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
MANDIR         ?= $(PREFIX)/share/man

# Debian packages: to build, and to run the tests and the demo.
DEPS_BUILD := gcc make pkg-config libc6-dev libslurm-dev libvirt-dev libxml2-dev \
              libcmocka-dev libhwloc-dev libinih-dev libjson-c-dev libfuse3-dev libibverbs-dev
DEPS_RUN   := slurmctld slurmd slurm-client munge libvirt-daemon \
              libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils busybox-static \
              tini cpio gzip util-linux procps iproute2 valgrind bc fuse3

PKGS       := libvirt libxml-2.0 hwloc inih json-c libibverbs
WARN       := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wformat=2
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O2 -fPIC $(WARN) -Ilib
PKG_CFLAGS  = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS    = $(shell pkg-config --libs $(PKGS)) -lslurm -lpthread
SAN         := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

LIB_SRC   := $(wildcard lib/*.c)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
UNIT_ASAN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/asan/%)
TOOLS     := $(BUILD)/tests/bedctl $(BUILD)/tests/vdesk-sysfs-emu $(BUILD)/tests/pcibench \
             $(BUILD)/tests/nvidia-persistenced $(BUILD)/tests/nvml/libnvidia-ml.so.1
PROGS     := $(BUILD)/prolog/vdesk-prolog $(BUILD)/prolog/vdesk-epilog $(BUILD)/cli/vdeskctl
PLUGIN    := $(BUILD)/spank/vdesk.so
# The plugin runs inside every srun: only the dependency-free parts of lib/.
PLUGIN_OBJ := $(BUILD)/spank/vdesk.o $(BUILD)/lib/mode.o $(BUILD)/lib/err.o

.PHONY: all deps check unit integration demo bench install clean testbed-up testbed-down guest
all: $(BUILD)/libvdesk.a $(PLUGIN) $(PROGS) $(TOOLS) $(UNIT_BIN) $(UNIT_ASAN)

$(BUILD)/%.o: %.c $(wildcard lib/*.h prolog/*.h cli/*.h tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Iprolog $(PKG_CFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/asan/%.o: %.c $(wildcard lib/*.h tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(SAN) $(PKG_CFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/libvdesk.a: $(LIB_OBJ)
	$(AR) rcs $@ $^

$(BUILD)/libvdesk-asan.a: $(LIB_SRC:%.c=$(BUILD)/asan/%.o)
	$(AR) rcs $@ $^

$(BUILD)/spank/vdesk.o: spank/vdesk.c $(wildcard lib/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -I$(SLURM_INCDIR)/.. $(CFLAGS) -c $< -o $@

$(PLUGIN): $(PLUGIN_OBJ) spank/vdesk.map
	$(CC) -shared $(LDFLAGS) -Wl,--version-script=spank/vdesk.map -o $@ $(PLUGIN_OBJ)

$(BUILD)/prolog/vdesk-%: $(BUILD)/prolog/%.o $(BUILD)/prolog/common.o $(BUILD)/libvdesk.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/cli/vdeskctl: $(BUILD)/cli/vdeskctl.o $(BUILD)/cli/inventory.o $(BUILD)/libvdesk.a
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

$(BUILD)/tests/test_%: $(BUILD)/tests/unit/test_%.o $(BUILD)/libvdesk.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lcmocka

$(BUILD)/tests/asan/test_%: $(BUILD)/asan/tests/unit/test_%.o $(BUILD)/libvdesk-asan.a
	@mkdir -p $(dir $@)
	$(CC) $(SAN) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lcmocka

# The test guest's kernel and initramfs, cached between runs.
guest:
	tests/guest/mkguest.sh $(BUILD)/cache/guest

# Installs only what is missing; needs root only when something is.
deps:
	@missing=$$(for p in $(DEPS_BUILD) $(DEPS_RUN); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "deps: all Debian packages present"; exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
	    echo "deps: missing Debian packages:" $$missing "- run 'make deps' as root" >&2; exit 1; fi; \
	echo "deps: installing" $$missing; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update -q && apt-get install -y -q --no-install-recommends $$missing

check: deps
	$(MAKE) all guest
	tests/check.sh $(BUILD)

unit: all
	tests/check.sh --unit-only $(BUILD)

integration: all guest
	tests/check.sh --integration-only $(BUILD)

demo: deps
	$(MAKE) all guest
	tests/demo.sh $(BUILD)

bench: deps
	$(MAKE) all guest
	tests/bench.sh $(BUILD)

testbed-up: all guest
	tests/bed/bed up $(BUILD)/bed

testbed-down:
	tests/bed/bed down $(BUILD)/bed

DOCDIR ?= $(PREFIX)/share/doc/vdesk

LIBEXECDIR ?= $(PREFIX)/libexec/vdesk
SBINDIR    ?= $(PREFIX)/sbin

install: $(PLUGIN) $(PROGS)
	install -d $(DESTDIR)$(SLURM_PLUGINDIR) $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(SBINDIR) \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(DOCDIR)/examples/plugstack.conf.d $(DESTDIR)$(DOCDIR)/examples/slurm
	install -m 0755 $(PLUGIN) $(DESTDIR)$(SLURM_PLUGINDIR)/vdesk.so
	install -m 0755 $(BUILD)/prolog/vdesk-prolog $(BUILD)/prolog/vdesk-epilog $(DESTDIR)$(LIBEXECDIR)/
	install -m 0755 $(BUILD)/cli/vdeskctl $(DESTDIR)$(SBINDIR)/
	install -m 0644 docs/vdesk.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 docs/vdesk.conf.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 docs/vdeskctl.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 etc/vdesk.conf.example $(DESTDIR)$(DOCDIR)/examples/
	install -m 0644 etc/plugstack.conf.d/vdesk.conf $(DESTDIR)$(DOCDIR)/examples/plugstack.conf.d/
	install -m 0644 etc/slurm/vdesk-slurm.conf $(DESTDIR)$(DOCDIR)/examples/slurm/

clean:
	rm -rf $(BUILD)/lib $(BUILD)/asan $(BUILD)/tests $(BUILD)/spank $(BUILD)/prolog $(BUILD)/cli $(BUILD)/*.a
