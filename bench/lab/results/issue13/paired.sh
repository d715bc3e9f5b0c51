#!/bin/bash
# Paired: the commit before issue 13 (69784d6) against the refactor, alternating.
cd /work/main
node scripts/build.mjs
for round in 1 2; do
  for bin in base new; do
    extra=""; [ $bin = base ] && extra="--shoal-bin /work/lab-bins/base/run.mjs"
    timeout 900 node --import tsx bench/lab/run.ts --peers 20 --scenarios shoal $extra --out /tmp/lab13/n20-$bin-$round.json > /tmp/lab13/n20-$bin-$round.log 2>&1
    timeout 1200 node --import tsx bench/lab/run.ts --peers 40 --peer-rate 50mbit --scenarios shoal $extra --out /tmp/lab13/n40-$bin-$round.json > /tmp/lab13/n40-$bin-$round.log 2>&1
  done
done
echo ALLDONE
