# Shared by the benchmark scripts (sourced, not run): `median` prints the median of the numbers
# on stdin, one per line (the mean of the middle two for an even count; "n/a" for none).
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
