#!/usr/bin/python3
"""prov_check.py DOC.json DOC.ttl [PROV_XSD_DIR XML_XSD]
   prov_check.py --xmllint DOC.xml PROV_XSD_DIR XML_XSD

Check a provfs W3C PROV export offline, with Debian's python3-prov and
python3-rdflib (and xmllint, when the W3C PROV XML Schema is given):
  - the PROV-CONSTRAINTS that apply to provfs documents: an activity starts
    no later than it ends; usage and generation lie within their activity;
    an entity is generated at most once; generation precedes usage;
  - every time is an xsd:dateTime with an explicit offset;
  - every identifier, declared or referred to, is an xs:QName (PROV-XML's
    type for ids: prefix and local part are XML NCNames);
  - python3-prov reads the PROV-JSON and writes PROV-N and PROV-XML, and
    reads the PROV-XML back with as many records;
    (--xmllint: only that, for a PROV-XML document given);
  - the Turtle parses with rdflib and says the same (as many activities,
    entities, usages, generations) as the PROV-JSON.
Prints each problem and "counts: ..." on stderr; exit 1 if any problem.
"""
import collections
import datetime
import io
import json
import os
import re
import subprocess
import sys
import tempfile

import prov.model
import rdflib

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$")
# An ASCII NCName (provfs writes no other bytes in identifiers).
NCNAME = re.compile(r"[A-Za-z_][A-Za-z0-9._-]*$")


def is_qname(text):
    prefix, colon, local = text.partition(":")
    return bool(colon and NCNAME.match(prefix) and NCNAME.match(local))


def xmllint_problems(xml, xsd_dir, xml_xsd):
    """xmllint's complaints about xml against W3C's PROV XML Schema in xsd_dir."""
    with tempfile.TemporaryDirectory() as scratch:
        catalog = os.path.join(scratch, "catalog.xml")
        with open(catalog, "w") as out:
            out.write('<?xml version="1.0"?>\n'
                      '<catalog xmlns="urn:oasis:names:tc:entity:xmlns:xml:catalog">\n'
                      '  <uri name="http://www.w3.org/2001/xml.xsd" uri="file://%s"/>\n'
                      '  <system systemId="http://www.w3.org/2001/xml.xsd" uri="file://%s"/>\n'
                      '</catalog>\n' % (os.path.abspath(xml_xsd), os.path.abspath(xml_xsd)))
        document = os.path.join(scratch, "doc.xml")
        with open(document, "w") as out:
            out.write(xml)
        lint = subprocess.run(["xmllint", "--nonet", "--noout", "--schema",
                               os.path.join(xsd_dir, "prov.xsd"), document],
                              env={**os.environ, "XML_CATALOG_FILES": catalog},
                              capture_output=True, text=True)
    if lint.returncode == 0:
        return []
    return ["PROV-XML does not validate against the W3C PROV XSD (xmllint exit %d): %s"
            % (lint.returncode, line) for line in lint.stderr.splitlines()] or \
        ["PROV-XML: xmllint exit %d" % lint.returncode]


def main():
    if sys.argv[1] == "--xmllint":
        problems = xmllint_problems(open(sys.argv[2]).read(), sys.argv[3], sys.argv[4])
        for problem in problems:
            print(problem)
        return 1 if problems else 0
    json_path, ttl_path = sys.argv[1:3]
    doc = json.load(open(json_path))
    problems = []

    def when(text, where):
        if not isinstance(text, str) or not TIME.match(text):
            problems.append(f"{where}: time {text!r} is not xsd:dateTime with an offset")
            return None
        return datetime.datetime.fromisoformat(text)

    activities = {}
    for aid, attrs in doc.get("activity", {}).items():
        start = when(attrs.get("prov:startTime"), aid) if "prov:startTime" in attrs else None
        end = when(attrs.get("prov:endTime"), aid) if "prov:endTime" in attrs else None
        if start and end and start > end:
            problems.append(f"{aid}: starts {start} after it ends {end}")
        activities[aid] = (start, end)

    def within(aid, t, what):
        if aid not in activities:
            problems.append(f"{what}: activity {aid} is not declared")
            return
        start, end = activities[aid]
        if t and start and t < start:
            problems.append(f"{what}: at {t}, before {aid} started ({start})")
        if t and end and t > end:
            problems.append(f"{what}: at {t}, after {aid} ended ({end})")

    generated = collections.defaultdict(list)
    for rid, r in doc.get("wasGeneratedBy", {}).items():
        t = when(r.get("prov:time"), rid)
        within(r["prov:activity"], t, f"generation of {r['prov:entity']}")
        generated[r["prov:entity"]].append(t)
    for entity, times in generated.items():
        if len(times) > 1:
            problems.append(f"{entity}: generated {len(times)} times")
    for rid, r in doc.get("used", {}).items():
        t = when(r.get("prov:time"), rid)
        within(r["prov:activity"], t, f"usage of {r['prov:entity']}")
        for g in generated.get(r["prov:entity"], []):
            if g and t and g > t:
                problems.append(f"{r['prov:entity']}: used at {t} before it was generated at {g}")
    entities = doc.get("entity", {})
    for section, records in doc.items():
        if section == "prefix":
            continue
        for rid, r in records.items():
            if section in ("entity", "activity", "agent") and not is_qname(rid):
                problems.append(f"{section} {rid!r}: identifier is not an xs:QName")
            for key, value in r.items():
                if key.startswith("prov:") and isinstance(value, str) and value.startswith("pfd:") \
                        and not is_qname(value):
                    problems.append(f"{section} {rid}: {key} {value!r} is not an xs:QName")
    for section in ("used", "wasGeneratedBy"):
        for rid, r in doc.get(section, {}).items():
            if r["prov:entity"] not in entities:
                problems.append(f"{section} {rid}: entity {r['prov:entity']} is not declared")

    # python3-prov: PROV-JSON in, PROV-N and PROV-XML out, PROV-XML back in.
    document = prov.model.ProvDocument.deserialize(source=json_path, format="json")
    provn = document.get_provn()
    xml = document.serialize(format="xml")
    again = prov.model.ProvDocument.deserialize(content=xml, format="xml")
    if len(again.get_records()) != len(document.get_records()):
        problems.append(f"PROV-XML round trip: {len(again.get_records())} records, "
                        f"not {len(document.get_records())}")
    if "document" not in provn:
        problems.append("PROV-N output is not a document")
    if len(sys.argv) > 4:
        problems += xmllint_problems(xml, sys.argv[3], sys.argv[4])

    # rdflib: the Turtle says what the JSON says.
    graph = rdflib.Graph()
    graph.parse(ttl_path, format="turtle")
    PROV = rdflib.Namespace("http://www.w3.org/ns/prov#")
    counts = {
        "activities": (len(list(graph.subjects(rdflib.RDF.type, PROV.Activity))), len(activities)),
        "entities": (len(list(graph.subjects(rdflib.RDF.type, PROV.Entity))), len(entities)),
        "usages": (len(list(graph.subjects(rdflib.RDF.type, PROV.Usage))), len(doc.get("used", {}))),
        "generations": (len(list(graph.subjects(rdflib.RDF.type, PROV.Generation))),
                        len(doc.get("wasGeneratedBy", {}))),
    }
    for name, (ttl, js) in counts.items():
        if ttl != js:
            problems.append(f"Turtle has {ttl} {name}, PROV-JSON {js}")
    for problem in problems:
        print(problem)
    print("counts: " + ", ".join(f"{k}={v[1]}" for k, v in counts.items()) +
          f", xml={len(xml)} bytes, provn={len(provn)} bytes, triples={len(graph)}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
