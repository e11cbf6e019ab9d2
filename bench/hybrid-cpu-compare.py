#!/usr/bin/env python3
"""Medians and ratios of bench/hybrid-cpu-compare.sh's runs: a markdown table on stdout, and JSON (the
runs, the machine, the command) to the file given second.

    python3 bench/hybrid-cpu-compare.py runs.log bench/results/hybrid-cpu-compare-<date>.json "<the .sh command>"
"""
import json, os, platform, re, statistics, sys

log, out = sys.argv[1], sys.argv[2]
command = sys.argv[3] if len(sys.argv) > 3 else ''
runs, loads, raw = {}, [], []
for line in open(log):
    m = re.match(r'round=(\d+) side=(\w+) cfg=(\S+) load=(\S+) (\{.*\})', line.strip())
    if not m:
        continue
    r, side, cfg, load, js = m.groups()
    s = json.loads(js)['summary'][0]
    loads.append(float(load))
    raw.append({'round': int(r), 'side': side, 'config': cfg, 'load1': float(load), **s})
    runs.setdefault(cfg, {}).setdefault(side, []).append(s)
rows = []
lines = ['| model / layers / dtype / threads | rounds | prefill tok/s base / head | ratio | prefill CPU s base / head | ratio |'
         ' decode tok/s base / head | ratio | decode CPU ms/token base / head | ratio |',
         '| --- | ---: | --- | ---: | --- | ---: | --- | ---: | --- | ---: |']
for cfg, sides in runs.items():
    n = min(len(sides.get('base', [])), len(sides.get('head', [])))
    if n == 0:
        continue
    med = lambda side, k: statistics.median([x[k] for x in sides[side][:n]])
    v = {k: (med('base', k), med('head', k)) for k in ('prefillTokS', 'prefillCpuMs', 'decodeTokS', 'decodeCpuMsPerToken')}
    rows.append({'config': cfg, 'rounds': n, 'medians': v})
    (pb, ph), (cb, ch), (db, dh), (ub, uh) = v.values()
    lines.append(f'| {cfg.replace(":", " / ")} | {n} | {pb:.1f} / {ph:.1f} | {ph / pb:.2f} | {cb / 1000:.2f} / {ch / 1000:.2f} | '
                 f'{cb / ch:.2f} | {db:.2f} / {dh:.2f} | {dh / db:.2f} | {ub:.1f} / {uh:.1f} | {ub / uh:.2f} |')
lines.append(f'\nratios: head / base for tok/s, base / head for CPU time (above 1: head faster); '
             f'load average (1 min) at the runs {min(loads):.1f}-{max(loads):.1f}')
print('\n'.join(lines))
machine = {'host': platform.node(), 'cpu': next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), None),
           'cores': os.cpu_count()}
json.dump({'command': command, 'machine': machine, 'rows': rows, 'runs': raw}, open(out, 'w'), indent=1)
print(f'\nwrote {out}')
