#!/bin/bash
# `vdeskctl inventory` on the emulated machines (tests/sysfs), with hwloc
# synthetic topologies numbered as the real machines are (SMT siblings N and
# N+cores): GPUs, HCAs, VFs, IOMMU groups, drivers, locality; JSON; the
# gres.conf lines and the desktop's cores for Slurm.
. "$(dirname "$0")/../lib.sh"

EMU=$T_BUILD/tests/vdesk-sysfs-emu
VDESKCTL=$T_BUILD/cli/vdeskctl

# mount_machine NAME: mounts the emulated machine at $MNT; prints nothing.
mount_machine() {
    MNT=$(mktemp -d /tmp/vdesk-inv.XXXXXX)
    "$EMU" "$T_ROOT/tests/sysfs/$1.ini" "$MNT" -o max_threads=16 || return 1
    TOPO="synthetic:$(cat "$T_ROOT/tests/sysfs/$1.topo")"
}
unmount_machine() { fusermount3 -u "$MNT" && rmdir "$MNT"; }
inventory() { "$VDESKCTL" --conf /nonexistent inventory --sysfs "$MNT/sys" --dev "$MNT/dev" --proc "$MNT/proc" --topology "$TOPO" "$@"; }

test_workstation_lists_the_gpu_group_and_the_hca_vfs() {
    local out
    mount_machine workstation
    echo 2 >"$MNT/sys/bus/pci/devices/0000:02:00.0/sriov_numvfs"
    out=$(inventory)
    unmount_machine
    assert_match "$out" "^node: 8 cores, 16 CPUs"
    assert_match "$out" "GPU 0000:01:00.0 10de:2684  driver nvidia +IOMMU group 12 +NUMA -1 +cores 0-7"
    assert_match "$out" "group member 0000:01:00.1 10de:22ba  driver snd_hda_intel"
    assert_match "$out" "group member 0000:01:00.3 10de:1adb  driver nvidia-gpu"
    assert_match "$out" "HCA 0000:02:00.0 15b3:101b  driver mlx5_core"
    assert_match "$out" "SR-IOV: 2 of 4 VFs"
    assert_match "$out" "VF 0000:02:00.2  driver mlx5_core +IOMMU group [0-9]+"
    assert_match "$out" "device node /dev/nvidia0"
    # The kernel's RDMA devices, which verbs cannot open here: from sysfs,
    # with the PF/VF relation and the advice.
    assert_match "$out" "^RDMA mlx5_0  PCI 0000:02:00.0  node GUID 0c42a10300000004  firmware \?  SR-IOV 2 of 4 VFs$"
    assert_match "$out" "^RDMA mlx5_2  PCI 0000:02:00.2 .*  VF of mlx5_0 \(0000:02:00.0\)$"
    assert_match "$out" "from sysfs: libibverbs cannot open it; is rdma-core's ibverbs-providers installed"
    assert_match "$out" "port 1  ACTIVE  InfiniBand  LID 1"
}

test_no_rdma_is_said_plainly() {
    local out
    out=$("$VDESKCTL" --conf /nonexistent inventory --sysfs /nonexistent --dev /nonexistent \
        --topology "synthetic:core:2 pu:1" 2>&1) && t_fail "a missing sysfs was accepted"
    assert_match "$out" "/nonexistent/bus/pci/devices"
    mount_machine workstation
    echo 0000:02:00.0 >"$MNT/sys/bus/pci/drivers/mlx5_core/unbind"
    out=$(inventory)
    unmount_machine
    assert_match "$out" "^RDMA: (no devices|verbs unavailable \(no rdma-core provider\))$"
}

test_server_json_has_every_device_with_locality() {
    local out
    mount_machine server
    out=$(inventory --json)
    unmount_machine
    assert_eq "$(grep -c '"bdf":"0000:[0-9a-f:.]*"' <<<"$out")" 12 "bdf entries (6 devices, each also its group's member)"
    assert_match "$(tr -d ' \n' <<<"$out")" '"gpus":\[\{"bdf":"0000:31:00.0","id":"10de:20b0","driver":"nvidia","iommu_group":31,"numa_node":0,"local_cpulist":"0-15,32-47","cores":"0-15"'
    assert_match "$(tr -d ' \n' <<<"$out")" '"bdf":"0000:e3:00.0","id":"10de:20b0","driver":"nvidia","iommu_group":62,"numa_node":1,"local_cpulist":"16-31,48-63","cores":"16-31"'
    assert_match "$(tr -d ' \n' <<<"$out")" '"hcas":\[\{"bdf":"0000:17:00.0".*"sriov_totalvfs":8,"vfs":\[\]'
    assert_match "$(tr -d ' \n' <<<"$out")" '"rdma":\{"verbs_available":(true|false),"devices":\[\{"name":"mlx5_0","verbs":false,"pci":"0000:17:00.0",.*"sriov_numvfs":0,"sriov_totalvfs":8,"ports":\[\{"port":1,"state":"ACTIVE","link_layer":"InfiniBand","lid":1\}\]\},\{"name":"mlx5_1",.*"pci":"0000:b1:00.0"'
}

test_server_slurm_lines() {
    local out
    mount_machine server
    out=$(inventory --slurm --desktop-cores 2)
    unmount_machine
    assert_match "$out" "Name=gpu File=/dev/nvidia0 Cores=0-15   # 0000:31:00.0"
    assert_match "$out" "Name=gpu File=/dev/nvidia3 Cores=16-31   # 0000:e3:00.0$"
    # Devices on both sockets: the last two cores; OS and Slurm numbers differ.
    assert_match "$out" "CpuSpecList=60-63"
    assert_match "$out" "desktop_cores = 30-31,62-63"
}

# A GPU the desktop holds (vfio-pci) has no /dev/nvidiaN: its line says so.
test_server_gpu_on_vfio_gets_a_caveat() {
    local out f
    mount_machine server
    f=$MNT/sys/bus/pci/devices/0000:4b:00.0
    echo vfio-pci >"$f/driver_override" && echo 0000:4b:00.0 >"$MNT/sys/bus/pci/drivers/nvidia/unbind" &&
        echo 0000:4b:00.0 >"$MNT/sys/bus/pci/drivers_probe"
    out=$(inventory --slurm)
    unmount_machine
    assert_match "$out" "Name=gpu File=/dev/nvidia0 Cores=0-15   # 0000:31:00.0$"
    assert_match "$out" "Name=gpu File=/dev/nvidia1 Cores=0-15   # 0000:4b:00.0: on vfio-pci now, so its minor is assumed from PCI order"
}

# GLUE 2.1 entities for information discovery: the node's GPUs by model,
# where each is now (the desktop's on vfio-pci), and over a period of the
# accounting database, the share of the GPUs the desktop and jobs used.
test_server_glue2_publishes_the_gpus_and_their_use() {
    local out d f
    d=$(mktemp -d /tmp/vdesk-glue.XXXXXX)
    printf '[vdesk]\naccounting_db = %s/acct.db\nstate_dir = %s\n[node w1]\nuri = test:///default\ndomain = desk\ndevice = gpu ua-gpu0 0000:31:00.0\n' \
        "$d" "$d" >"$d/vdesk.conf"
    mount_machine server
    f=$MNT/sys/bus/pci/devices/0000:31:00.0
    echo vfio-pci >"$f/driver_override" && echo 0000:31:00.0 >"$MNT/sys/bus/pci/drivers/nvidia/unbind" &&
        echo 0000:31:00.0 >"$MNT/sys/bus/pci/drivers_probe"
    # No accounting database yet: the entities, without the shares.
    out=$(glue2) || t_fail "inventory --glue2: $out"
    assert_match "$out" '"ID":"urn:glue2:ExecutionEnvironment:w1"'
    assert_match "$(tr -d ' \n' <<<"$out")" '"AcceleratorEnvironment":\[\{"ID":"urn:glue2:AcceleratorEnvironment:w1:10de:20b0","Name":"GPUs10de:20b0ofw1","Type":"GPU","PhysicalAccelerators":4,"LogicalAccelerators":4,"Vendor":"NVIDIA","Model":"10de:20b0","OtherInfo":\["vdesk:DesktopAccelerators=1","vdesk:WithDesktopNow=1","vdesk:WithHostNow=3"\]'
    assert_match "$out" '"LogicalCPUs":64'
    assert_no_match "$out" "GPUShare"
    # One day; a job on w1 with 2 GPUs for an hour, which saved the desktop.
    mkdir -p "$d/acct.db.spool"
    printf '%s' '{"schema":1,"cluster":"c1","job":1,"submit":1767225600,"start":1767225600,"end":1767229200,
 "array_job":0,"array_task":4294967295,"het_job":0,"het_offset":4294967295,"uid":1000,"nnodes":1,
 "restarts":0,"name":"j","user":"u","account":"a","partition":"p","qos":"","nodes":"w1",
 "state":"COMPLETED","exit_code":"0:0","gpus":2,"note":"","records":[{"node":"w1","op":"evict",
 "asked":"save","used":"save","devices":"ua-gpu0","total_ms":900,"migrated":"","outcome":"done","cut":0,"phases":[]}]}' \
        >"$d/acct.db.spool/1.json"
    env -i VDESK_CONF="$d/vdesk.conf" JOBID=2 JOBSTATE=COMPLETED START=1767300000 END=1767300010 CLUSTER=c1 \
        "$T_BUILD/jobcomp/vdesk-jobcomp" 2>/dev/null || t_fail "vdesk-jobcomp"
    out=$(glue2 --since 2026-01-01 --until 2026-01-02) || t_fail "inventory --glue2 with the database: $out"
    # The desktop: 1 GPU of 4, not evicted 95.8% of the day; jobs: 7200 GPU-s of 4 x 86400.
    assert_match "$out" '"vdesk:DesktopGPUShare=0.2395"'
    assert_match "$out" '"vdesk:JobGPUShare=0.0208"'
    assert_match "$out" '"vdesk:SharePeriod=2026-01-01T00:00:00Z/2026-01-02T00:00:00Z"'
    # Only the part of the job inside the period: its last half hour, 3600 GPU-s of 4 x 84600.
    out=$(glue2 --since 2026-01-01T00:30 --until 2026-01-02) || t_fail "inventory --glue2 from 00:30: $out"
    assert_match "$out" '"vdesk:JobGPUShare=0.0106"'
    out=$(glue2 --since 2026-01-02 --until 2026-01-01 2>&1) && t_fail "an empty period was accepted"
    assert_match "$out" "the period ends \(2026-01-01\) before it starts \(2026-01-02\)"
    out=$(glue2 --json 2>&1) && t_fail "--glue2 --json was accepted"
    assert_match "$out" "--json and --glue2 are two different outputs; give one"
    out=$("$VDESKCTL" --conf "$d/vdesk.conf" status --glue2 2>&1) && t_fail "--glue2 with status"
    assert_match "$out" "--glue2 goes with inventory"
    # A database it cannot read is said, not taken for one without use.
    rm -f "$d/acct.db-wal" "$d/acct.db-shm"
    printf 'not a database, but long enough to be taken for a file of one' >"$d/acct.db"
    out=$(glue2 2>&1) && t_fail "an unreadable database was accepted"
    assert_match "$out" "accounting database $d/acct.db"
    unmount_machine
    rm -rf "$d"
}
glue2() {
    TZ=UTC0 "$VDESKCTL" --conf "$d/vdesk.conf" --node w1 inventory --glue2 --sysfs "$MNT/sys" --dev "$MNT/dev" \
        --proc "$MNT/proc" --topology "$TOPO" "$@"
}

# The BMC's VGA (ASPEED, 0000:02:00.0, before the GPUs) is no GPU to Slurm:
# listing it would make the first GPU's gres index 1.
test_server_bmc_vga_is_no_gpu() {
    local human json slurm f
    mount_machine server
    f=$MNT/sys/bus/pci/devices/0000:31:00.0
    echo vfio-pci >"$f/driver_override" && echo 0000:31:00.0 >"$MNT/sys/bus/pci/drivers/nvidia/unbind" &&
        echo 0000:31:00.0 >"$MNT/sys/bus/pci/drivers_probe"
    human=$(inventory)
    json=$(inventory --json)
    slurm=$(inventory --slurm)
    unmount_machine
    assert_match "$(cat "$T_ROOT/tests/sysfs/server.ini")" "^\[device 0000:02:00.0\]$" "the machine has the BMC"
    assert_no_match "$human" "0000:02:00.0"
    assert_match "$human" "^GPU 0000:31:00.0 10de:20b0  driver vfio-pci"
    assert_eq "$(grep -c '^GPU ' <<<"$human")" 4 "GPUs listed"
    assert_no_match "$json" "0000:02:00.0"
    assert_no_match "$slurm" "0000:02:00.0"
    assert_eq "$(grep -c '^Name=gpu' <<<"$slurm")" 4 "gres lines"
    assert_match "$slurm" "^Name=gpu File=/dev/nvidia0 Cores=0-15   # 0000:31:00.0: on vfio-pci now, so its minor is assumed from PCI order"
    assert_match "$slurm" "^Name=gpu File=/dev/nvidia1 Cores=0-15   # 0000:4b:00.0$"
}

test_workstation_desktop_takes_the_highest_whole_cores() {
    local out
    mount_machine workstation
    out=$(inventory --slurm --desktop-cores 3)
    unmount_machine
    assert_match "$out" "Name=gpu File=/dev/nvidia0 Cores=0-7"
    assert_match "$out" "desktop_cores = 5-7,13-15"
    assert_match "$out" "CpuSpecList=10-15"
}

test_xml_topologies_with_pci_objects_give_the_same_answer() {
    local out m
    for m in server workstation; do
        mount_machine "$m"
        TOPO=$T_ROOT/tests/sysfs/$m.xml
        out=$(inventory --slurm)
        unmount_machine
        case $m in
        server) assert_match "$out" "Name=gpu File=/dev/nvidia2 Cores=16-31   # 0000:ca:00.0"
                assert_match "$out" "desktop_cores = 30-31,62-63" ;;
        *) assert_match "$out" "Name=gpu File=/dev/nvidia0 Cores=0-7   # 0000:01:00.0" ;;
        esac
    done
}

# A node without a GPU (here: none of the vendors vdesk.conf counts) says
# so instead of printing an empty gres.conf section.
test_no_gpu_is_said_plainly() {
    local out conf
    conf=$(mktemp)
    printf '[vdesk]\ngpu_vendors = 1002\n' >"$conf"
    mount_machine workstation
    out=$("$VDESKCTL" --conf "$conf" inventory --sysfs "$MNT/sys" --dev "$MNT/dev" --proc "$MNT/proc" \
          --topology "$TOPO" --slurm)
    unmount_machine
    rm -f "$conf"
    assert_no_match "$out" "^Name=gpu"
    assert_match "$out" "^# gres.conf: no GPU on this node \(gpu_vendors = 1002\): no Name=gpu lines"
    assert_match "$out" "^desktop_cores = "
}

test_bad_requests_say_what_is_wrong() {
    local out
    mount_machine workstation
    out=$(inventory --slurm --desktop-cores 8 2>&1) && t_fail "8 of 8 cores accepted"
    assert_match "$out" "the desktop can have 1 to 7 of the node's 8 cores"
    # The default (2 cores) on a machine too small for it names the option.
    out=$(TOPO="synthetic:pack:1 core:2 pu:1" inventory --slurm 2>&1) && t_fail "2 of 2 cores accepted"
    assert_match "$out" "the desktop can have 1 to 1 of the node's 2 cores .*; choose with --desktop-cores N \(now 2\)$"
    out=$(inventory --slurm --desktop-cores abc 2>&1) && t_fail "--desktop-cores abc accepted"
    assert_eq "$out" "vdeskctl: --desktop-cores 'abc': give a whole number of cores from 1 to 4096"
    out=$(inventory --slurm --desktop-cores 0 2>&1) && t_fail "--desktop-cores 0 accepted"
    assert_match "$out" "'0': give a whole number"
    out=$(inventory --json --slurm 2>&1) && t_fail "--json --slurm accepted"
    assert_eq "$out" "vdeskctl inventory: --json and --slurm are two different outputs; give one"
    out=$("$VDESKCTL" --conf /nonexistent inventory --sysfs /nonexistent 2>&1) && t_fail "missing sysfs accepted"
    unmount_machine
    assert_match "$out" "/nonexistent/bus/pci/devices: No such file or directory"
}

t_main
