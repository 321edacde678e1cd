#!/usr/bin/python3
"""openlineage_check.py OPENLINEAGE_SCHEMA_DIR PROVFS_SCHEMA_DIR EVENTS.ndjson

Validate newline-delimited OpenLineage RunEvents offline, as OpenLineage's
own checker does: every event against OpenLineage.json (spec 2-0-2), then
every facet, by its key and place, against that facet's own JSON Schema
(provfs's custom facets against the schemas shipped in schemas/).  Also:
one event a line, a facet's _schemaURL names the schema it validates
against, no unknown or unreleased facet (LineageFacet), per run one START
before at most one terminal event.  Prints each problem; exit 1 if any.
Uses Debian's python3-jsonschema (run with /usr/bin/python3).
"""
import json
import os
import re
import sys

import jsonschema
from jsonschema import Draft202012Validator, RefResolver

PLACES = [  # (facet file suffix, where the facets live)
    ("InputDatasetFacet", "inputFacets"),
    ("OutputDatasetFacet", "outputFacets"),
    ("DatasetFacet", "facets"),
    ("RunFacet", "run"),
    ("JobFacet", "job"),
]
UNRELEASED = {"LineageFacet.json"}


def load_schemas(ol_dir, provfs_dir):
    store, facets = {}, {}
    core = json.load(open(os.path.join(ol_dir, "OpenLineage.json")))
    store[core["$id"]] = core
    files = [os.path.join(ol_dir, "facets", f) for f in sorted(os.listdir(os.path.join(ol_dir, "facets")))
             if f not in UNRELEASED]
    files += [os.path.join(provfs_dir, f) for f in sorted(os.listdir(provfs_dir)) if f.endswith(".json")]
    for path in files:
        schema = json.load(open(path))
        store[schema["$id"]] = schema
        defs = list(schema.get("$defs", {}))
        for key in schema.get("properties", {}):
            ref = schema["properties"][key]["$ref"].split("/")[-1]
            place = next((p for suffix, p in PLACES if ref.endswith(suffix)), None)
            if place is None:
                raise SystemExit(f"{path}: cannot tell where facet {key} ({ref}) goes")
            facets[(place, key)] = (schema, ref)
    return core, store, facets


def main():
    ol_dir, provfs_dir, events_path = sys.argv[1:4]
    core, store, facets = load_schemas(ol_dir, provfs_dir)
    resolver = RefResolver.from_schema(core, store=store)
    event_validator = Draft202012Validator(core, resolver=resolver)
    problems = []
    runs = {}
    raw = open(events_path, "rb").read()
    if raw and not raw.endswith(b"\n"):
        problems.append("the last event does not end with a newline")
    lines = raw.decode("utf-8").split("\n")[:-1] if raw else []

    def check_facets(where, place, container, n):
        for key, value in (container or {}).items():
            found = facets.get((place, key))
            if found is None:
                problems.append(f"event {n}: {where}: unknown facet '{key}' in {place}")
                continue
            schema, ref = found
            errors = list(Draft202012Validator(schema, resolver=RefResolver.from_schema(schema, store=store))
                          .iter_errors({key: value}))
            for error in errors:
                problems.append(f"event {n}: {where}: facet {key}: {error.message}")
            expected = schema["$id"] + "#/$defs/" + ref
            if value.get("_schemaURL") != expected:
                problems.append(f"event {n}: {where}: facet {key}: _schemaURL {value.get('_schemaURL')} "
                                f"is not {expected}")

    for n, line in enumerate(lines, 1):
        try:
            event = json.loads(line)
        except ValueError as error:
            problems.append(f"event {n}: not one JSON document a line: {error}")
            continue
        for error in event_validator.iter_errors(event):
            problems.append(f"event {n}: {error.message} at {list(error.absolute_path)}")
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event.get("eventTime", "")):
            problems.append(f"event {n}: eventTime {event.get('eventTime')!r} is not ISO 8601 UTC")
        run_id = event.get("run", {}).get("runId", "")
        if not re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", run_id):
            problems.append(f"event {n}: runId {run_id!r} is not a UUID")
        check_facets("run", "run", event.get("run", {}).get("facets"), n)
        check_facets("job", "job", event.get("job", {}).get("facets"), n)
        for kind in ("inputs", "outputs"):
            for dataset in event.get(kind, []):
                where = f"{kind} {dataset.get('name')}"
                check_facets(where, "facets", dataset.get("facets"), n)
                check_facets(where, "inputFacets", dataset.get("inputFacets"), n)
                check_facets(where, "outputFacets", dataset.get("outputFacets"), n)
        seen = runs.setdefault(run_id, [])
        seen.append(event.get("eventType"))
    for run_id, types in runs.items():
        if types[0] != "START" or types.count("START") != 1 or len(types) > 2:
            problems.append(f"run {run_id}: events {types}: want START, then at most one terminal")
    for problem in problems:
        print(problem)
    print(f"{len(lines)} events, {len(runs)} runs, {len(problems)} problems", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
