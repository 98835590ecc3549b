#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# PNG plots (gnuplot, pngcairo) from results/scaling-series.dat and results/scaling-conns.dat:
# bench/scaling-series.png (latency and RSS against series, log-log, with a linear reference)
# and bench/scaling-conns.png (latency and RSS against connections, beside nginx).
set -euo pipefail
B=$(cd "$(dirname "$0")" && pwd)
R=${RESULTS:-$B/results}
command -v gnuplot >/dev/null || { echo "gnuplot missing: apt-get install gnuplot-nox" >&2; exit 1; }

gnuplot <<GP
set terminal pngcairo size 1200,480 font ",10"
set output "$B/scaling-series.png"
set multiplot layout 1,2 title "scalemetrics: cost against the number of series (Redis lists; 2 cores)"
set logscale xy
set grid
set key top left
set xlabel "series"
set ylabel "latency (ms), 10 keep-alive connections"
plot "$R/scaling-series.dat" using 1:7 with linespoints title "ext1 p50 (labelSelector, 1 of N)", \
     "" using 1:8 with linespoints title "ext1 p99", \
     "" using 1:10 with linespoints title "obj1 p50 (one object, 1 of N)", \
     "" using 1:11 with linespoints title "obj1 p99", \
     "" using 1:14 with linespoints title "ext1, a new URL each time (never cached) p50", \
     "" using 1:15 with linespoints title "ext1, new URL each time, p99", \
     "" using 1:(\$1 * 0.00017) with lines dt 2 lc rgb "gray" title "linear in N (reference)"
set ylabel "KiB / ms"
plot "$R/scaling-series.dat" using 1:3 with linespoints title "RSS idle (KiB)", \
     "" using 1:4 with linespoints title "RssAnon idle (KiB)", \
     "" using 1:(\$5 > 0 ? \$5 : 1/0) with linespoints title "CPU per collector round (ms)", \
     "" using 1:(\$2 > 0 ? \$2 : 1/0) with linespoints title "start-up to ready (ms)"
unset multiplot

set output "$B/scaling-conns.png"
set multiplot layout 1,2 title "scalemetrics beside nginx: keep-alive connections (ext1, TLS 1.3; 2 cores)"
set logscale xy
set xlabel "concurrent connections"
set ylabel "latency (ms)"
plot "$R/scaling-conns.dat" using 1:3 with linespoints title "scalemetrics p50", \
     "" using 1:4 with linespoints title "scalemetrics p99", \
     "" using 1:7 with linespoints title "nginx p50", \
     "" using 1:8 with linespoints title "nginx p99"
unset logscale y
set logscale x
set ylabel "requests/s  |  RSS (KiB)"
plot "$R/scaling-conns.dat" using 1:2 with linespoints title "scalemetrics req/s", \
     "" using 1:6 with linespoints title "nginx req/s", \
     "" using 1:5 with linespoints title "scalemetrics RSS mid-run (KiB)"
unset multiplot
GP
echo "wrote $B/scaling-series.png $B/scaling-conns.png"
