#!/usr/bin/env python3
"""Prints the import cycles between steward's source files (DIR, default src): each strongly
connected component of the file-level import graph, with its edges; nothing when there is none.

An edge is a path a file's non-test code names (`crate::a::b`, `super::x`, `self::y`, a grouped
`use a::{b, c}`, and a parent file's paths into its own child modules); comments are skipped.
Run by tests/imports.rs."""
import os, re, sys
root = sys.argv[1] if len(sys.argv) > 1 else 'src'
files = {}
for d, _, fs in os.walk(root):
    for f in fs:
        if f.endswith('.rs'):
            p = os.path.join(d, f)
            parts = os.path.relpath(p, root)[:-3].split('/')
            if parts[-1] == 'mod': parts = parts[:-1]
            if parts == ['lib']: parts = []
            files[tuple(parts)] = p
def resolve(segs):
    for i in range(len(segs), 0, -1):
        if tuple(segs[:i]) in files: return tuple(segs[:i])
edges = {}
for mod, p in files.items():
    src = re.split(r'#\[cfg\(test\)\]\s*mod \w*tests', open(p).read())[0]
    src = '\n'.join(l for l in src.split('\n') if not l.strip().startswith('//'))
    deps = set()
    # expand one level of brace groups: a::{b, c::d} -> a::b a::c::d
    def expand(m):
        pre = m.group(1)
        items = [i.strip() for i in m.group(2).replace('\n', ' ').split(',') if i.strip()]
        return ' '.join(pre if i == 'self' else pre + '::' + i.split(' as ')[0] for i in items)
    for _ in range(3):
        src = re.sub(r'((?:crate|super|self|\w+)(?:::\w+)*)::\{([^{}]*)\}', expand, src)
    children = set(re.findall(r'^\s*(?:pub(?:\([^)]*\))?\s+)?mod (\w+);', src, re.M))
    for m in re.finditer(r'(?<![\w:])((?:crate|super|self|\w+)(?:::\w+)+)', src):
        segs = m.group(1).split('::')
        if segs[0] == 'crate': base, rest = [], segs[1:]
        elif segs[0] in ('super', 'self'):
            base = list(mod)
            rest = segs
            while rest and rest[0] in ('super', 'self'):
                if rest[0] == 'super': base = base[:-1]
                rest = rest[1:]
        elif segs[0] in children: base, rest = list(mod), segs
        else: continue
        t = resolve(base + rest)
        if t and t != mod: deps.add(t)
    edges[mod] = deps
idx, low, st, on, out, n = {}, {}, [], set(), [], [0]
sys.setrecursionlimit(10000)
def sc(v):
    idx[v] = low[v] = n[0]; n[0] += 1; st.append(v); on.add(v)
    for w in edges.get(v, ()):
        if w not in idx: sc(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], idx[w])
    if low[v] == idx[v]:
        c = []
        while True:
            w = st.pop(); on.discard(w); c.append(w)
            if w == v: break
        if len(c) > 1: out.append(c)
for v in edges:
    if v not in idx: sc(v)
for c in out:
    print(len(c), sorted('::'.join(x) or 'lib' for x in c))
    for a in c:
        for b in sorted(edges[a]):
            if b in c: print('   ', '::'.join(a), '->', '::'.join(b))
