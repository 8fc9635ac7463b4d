# curve.gp - the eviction/restore curve of `make bench` (tests/bench.sh).
#   gnuplot -e "evict='E.dat'; restore='R.dat'; out='curve.svg'; note='...'; xmin=N; xmax=N" curve.gp
# E.dat and R.dat: one row per guest size, columns (seconds, NaN where not
# measured): 1 RAM MiB, 2-3 suspend vdesk/bare, 4-5 shrink, 6-7 save,
# 8-9 shutdown, 10 plain virDomainSave/Restore (flags 0), 11 dd.
set terminal svg size 1200,720 dynamic enhanced font "sans,11" background rgb "white"
set output out
set datafile separator "\t"
set multiplot layout 1,2 title note
set logscale xy
set xrange [xmin:xmax]
set xtics (256, 512, 1024, 2048, 4096, 8192, 16384)
set format y "%g"
set xlabel "guest RAM (MiB, log scale)"
set ylabel "seconds (log scale)"
set grid xtics ytics mytics lc rgb "#dddddd"
set key outside below left Left reverse maxrows 5 font "sans,9" spacing 0.9 width -6
set style line 1 lc rgb "#1f77b4" lw 2 pt 7
set style line 2 lc rgb "#2ca02c" lw 2 pt 5
set style line 3 lc rgb "#d62728" lw 2 pt 9
set style line 4 lc rgb "#ff7f0e" lw 2 pt 11
# vdesk solid, bare libvirt dashed in the same colour.
set title "eviction: the job waits (vdeskctl evict MODE)"
plot evict u 1:2 w lp ls 1 t "suspend, vdesk", '' u 1:3 w lp ls 1 dt 2 pt 6 t "suspend, bare libvirt", \
     '' u 1:4 w lp ls 2 t "shrink, vdesk", '' u 1:5 w lp ls 2 dt 2 pt 4 t "shrink, bare libvirt", \
     '' u 1:6 w lp ls 3 t "save, vdesk", '' u 1:7 w lp ls 3 dt 2 pt 8 t "save, bare libvirt", \
     '' u 1:8 w lp ls 4 t "shutdown, vdesk", '' u 1:9 w lp ls 4 dt 2 pt 10 t "shutdown, bare libvirt", \
     '' u 1:10 w lp lc rgb "#7f7f7f" lw 1.5 dt 4 pt 3 t "save, plain virDomainSaveFlags(0)", \
     '' u 1:11 w lp lc rgb "black" lw 1.5 dt 3 pt 2 t "dd bs=1M conv=fsync, same size (the disk)"
set title "restore: the student waits (vdeskctl restore)"
plot restore u 1:2 w lp ls 1 t "suspend, vdesk", '' u 1:3 w lp ls 1 dt 2 pt 6 t "suspend, bare libvirt", \
     '' u 1:4 w lp ls 2 t "shrink, vdesk", '' u 1:5 w lp ls 2 dt 2 pt 4 t "shrink, bare libvirt", \
     '' u 1:6 w lp ls 3 t "save, vdesk", '' u 1:7 w lp ls 3 dt 2 pt 8 t "save, bare libvirt", \
     '' u 1:8 w lp ls 4 t "shutdown (boot starts), vdesk", '' u 1:9 w lp ls 4 dt 2 pt 10 t "shutdown (boot starts), bare libvirt", \
     '' u 1:10 w lp lc rgb "#7f7f7f" lw 1.5 dt 4 pt 3 t "save, plain virDomainRestoreFlags(0)", \
     '' u 1:11 w lp lc rgb "black" lw 1.5 dt 3 pt 2 t "dd iflag=direct, read back (the disk)"
unset multiplot
