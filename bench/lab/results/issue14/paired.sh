#!/bin/bash
# Paired: Shoal with mutual TLS between its components (the lab's default) against --no-tls, alternating.
cd /work/main
node scripts/build.mjs
for round in 1 2 3; do
  for mode in tls plain; do
    extra=""; [ $mode = plain ] && extra="--no-tls"
    timeout 900 node --import tsx bench/lab/run.ts --peers 20 --scenarios shoal $extra --out /tmp/lab14/n20-$mode-$round.json > /tmp/lab14/n20-$mode-$round.log 2>&1
  done
done
echo ALLDONE
