# bench/plots/map-populate.gp - axes and style of the map-bench populate
# plot; bench/map/plot.sh loads it before each panel's plot command.
set logscale xy 2
set xlabel 'plug size (GiB), 128 MiB requests'
set ylabel 'populate wall time (s), median'
set key top left
set grid
set style data linespoints
set datafile missing 'NaN'
