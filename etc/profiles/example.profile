# An example desktop profile (vdesk-profile(5)): copy it to
# /etc/vdesk/profiles/NAME.profile (profile_dir in vdesk.conf), then
#   vdeskctl profile check --live NAME
#   vdeskctl --node NODE bootstrap NAME DESKTOP
[profile]
description = Deep learning course: Debian 12, CUDA, the course's packages
# A cloud image (qcow2 or raw) every desktop of this profile is an overlay on.
base_image = /var/lib/vdesk/images/debian-12-generic-amd64.qcow2
memory = 8192                 # MiB
vcpus = 4
# Host CPUs the vCPUs run on: whole cores (here cores 2 and 3 of a machine
# whose SMT siblings are N and N+8; vdeskctl inventory shows them).
cpus = 2-3,10-11
devices = gpu                 # the node's device = lines of role gpu
display = spice               # on 127.0.0.1, for the kiosk viewer
network = network:default
pool = default
domain_type = kvm
# cloud-init user-data, relative to this directory; checked by
# 'vdeskctl profile check' with cloud-init's own schema.
# user_data = course.yaml
# Another profile whose values this one takes unless it sets them:
# inherit = base
