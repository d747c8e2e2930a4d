"""The functions of one executable that ran, from a callgrind dump made with --demangle=no.

    python3 benches/idle_symbols.py CALLGRIND_OUT EXECUTABLE

Prints their (mangled) names, the most instructions first, each once. Used by
benches/idle-symbols.sh.
"""

import os
import re
import sys

# "fn=(12) name" names id 12; "fn=(12)" reuses it. Likewise ob= (object), cfn=/cob= (callee).
NAME = re.compile(r"^(ob|fn|cob|cfn|fl|fi|fe|cfi|cfl)=\((\d+)\)(?: (.*))?$")


def executed(dump, exe):
    names = {"ob": {}, "fn": {}}
    cost = {}
    ob = fn = None
    after_calls = False
    with open(dump, errors="replace") as f:
        for line in f:
            m = NAME.match(line.rstrip("\n"))
            if m:
                kind, ident, name = m.groups()
                table = names.get(kind.lstrip("c"))
                if table is not None and name is not None:
                    table[ident] = name
                if kind == "ob":
                    ob = names["ob"].get(ident)
                elif kind == "fn":
                    fn = names["fn"].get(ident) if ob == exe else None
                    after_calls = False
                continue
            if line.startswith("calls="):
                after_calls = True  # the next cost line is the callee's, not this function's
                continue
            if fn is None or not line[:1] or line[0] not in "0123456789+-*":
                continue
            if after_calls:
                after_calls = False
                continue
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                cost[fn] = cost.get(fn, 0) + int(fields[1])
    return cost


def main():
    dump, exe = sys.argv[1], os.path.realpath(sys.argv[2])
    cost = {}
    for name, n in executed(dump, exe).items():
        # callgrind marks recursion levels as name'2; the symbol is the same.
        base = re.sub(r"'\d+$", "", name)
        cost[base] = cost.get(base, 0) + n
    for name, n in sorted(cost.items(), key=lambda kv: (-kv[1], kv[0])):
        if n > 0:
            print(name)


if __name__ == "__main__":
    main()
