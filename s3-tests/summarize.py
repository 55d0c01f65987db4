#!/usr/bin/env python3
"""Reads a pytest junit XML and the core test list; prints the core pass count and writes
passed/failed lists next to the XML."""
import pathlib, sys, xml.etree.ElementTree as ET

junit, core_file = pathlib.Path(sys.argv[1]), sys.argv[2]
core = [l.strip() for l in open(core_file) if l.strip() and not l.startswith('#')]
core_names = {c.split('::')[-1] for c in core}
results = {}
for case in ET.parse(junit).getroot().iter('testcase'):
    name = case.get('name')
    failed = any(child.tag in ('failure', 'error') for child in case)
    skipped = any(child.tag == 'skipped' for child in case)
    results[name] = 'skipped' if skipped else ('failed' if failed else 'passed')
passed = sorted(n for n, r in results.items() if r == 'passed')
failed = sorted(n for n, r in results.items() if r != 'passed')
(junit.parent / 'passed.txt').write_text(''.join(p + '\n' for p in passed))
(junit.parent / 'failed.txt').write_text(''.join(f + '\n' for f in failed))
core_passed = sum(1 for n in core_names if results.get(n) == 'passed')
print(f"core subset: {core_passed}/{len(core_names)} passed ({100 * core_passed / len(core_names):.1f}%); "
      f"all run: {len(passed)}/{len(results)} passed")
