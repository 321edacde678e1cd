#!/usr/bin/env python3
"""Turn store/schema.sql into a C header holding it as a string constant."""
import sys

source, target = sys.argv[1], sys.argv[2]
with open(source, encoding="utf-8") as f:
    text = f.read()
with open(target, "w", encoding="utf-8") as out:
    out.write("/* Generated from store/schema.sql; do not edit. */\n")
    out.write("static const char store_schema_sql[] =\n")
    for line in text.splitlines():
        escaped = line.replace("\\", "\\\\").replace('"', '\\"')
        out.write(f'\t"{escaped}\\n"\n')
    out.write(";\n")
