"""Compares our compiled protos with the upstream flyteidl2 descriptors shipped in the PyPI
`flyteidl2` package, field by field. Prints every difference; exits 1 if there is any.

Usage: compare_descriptors.py OUR_FILE_DESCRIPTOR_SET.bin
Messages we declare as deliberate subsets (listed in SUBSETS) may lack upstream fields; every
field they do declare must still match exactly.
"""
import sys

from google.protobuf import descriptor_pb2, descriptor_pool

import flyteidl2.cluster.service_pb2  # noqa: F401 - registers the upstream files
import flyteidl2.common.identifier_pb2  # noqa: F401
import flyteidl2.secret.secret_pb2  # noqa: F401

PACKAGES = ("flyteidl2.secret", "flyteidl2.common", "flyteidl2.cluster")
# Ours on purpose carries only what the service reads; unknown fields are skipped on decode.
SUBSETS = {"flyteidl2.cluster.SelectClusterRequest", "flyteidl2.cluster.ClusterService"}

upstream = descriptor_pool.Default()
problems = []


def is_repeated(f):
    # protobuf 6+ has `is_repeated`; older versions only `label`.
    return f.is_repeated if hasattr(f, "is_repeated") else f.label == f.LABEL_REPEATED


def field_facts(f):
    return {
        "number": f.number,
        "type": f.type,
        "label": "repeated" if is_repeated(f) else "singular",
        "type_name": (f.message_type.full_name if f.message_type else f.enum_type.full_name if f.enum_type else ""),
        "json_name": f.json_name,
        "oneof": f.containing_oneof.name if f.containing_oneof and not f.containing_oneof.name.startswith("_") else "",
    }


def compare_message(ours, theirs):
    name = ours.full_name
    our_fields = {f.name: f for f in ours.fields}
    their_fields = {f.name: f for f in theirs.fields}
    for fname, f in our_fields.items():
        if fname not in their_fields:
            problems.append(f"{name}.{fname}: not in upstream")
            continue
        a, b = field_facts(f), field_facts(their_fields[fname])
        for k in a:
            if a[k] != b[k]:
                problems.append(f"{name}.{fname}: {k} is {a[k]!r}, upstream {b[k]!r}")
    if name not in SUBSETS:
        for fname in their_fields.keys() - our_fields.keys():
            problems.append(f"{name}.{fname}: upstream field missing here")
    for nested in ours.nested_types:
        if nested.GetOptions().map_entry:
            continue
        compare_message(nested, theirs.nested_types_by_name[nested.name])
    for e in ours.enum_types:
        compare_enum(e, theirs.enum_types_by_name[e.name])


def compare_enum(ours, theirs):
    a = [(v.name, v.number) for v in ours.values]
    b = [(v.name, v.number) for v in theirs.values]
    if a != b:
        problems.append(f"{ours.full_name}: values {a} != upstream {b}")


def compare_service(ours, theirs):
    for m in ours.methods:
        t = theirs.methods_by_name.get(m.name)
        if t is None:
            problems.append(f"{ours.full_name}.{m.name}: not in upstream")
            continue
        for attr in ("input_type", "output_type"):
            if getattr(m, attr).full_name != getattr(t, attr).full_name:
                problems.append(f"{ours.full_name}.{m.name}: {attr} differs")
        a = (m.client_streaming if hasattr(m, "client_streaming") else False, m.server_streaming if hasattr(m, "server_streaming") else False)
        b = (t.client_streaming if hasattr(t, "client_streaming") else False, t.server_streaming if hasattr(t, "server_streaming") else False)
        if a != b:
            problems.append(f"{ours.full_name}.{m.name}: streaming {a} != upstream {b}")
    if ours.full_name not in SUBSETS:
        for mname in {m.name for m in theirs.methods} - {m.name for m in ours.methods}:
            problems.append(f"{ours.full_name}.{mname}: upstream method missing here")


def main():
    fds = descriptor_pb2.FileDescriptorSet.FromString(open(sys.argv[1], "rb").read())
    ours = descriptor_pool.DescriptorPool()
    for f in fds.file:
        ours.Add(f)
    checked = 0
    for f in fds.file:
        if not f.package.startswith(PACKAGES):
            continue
        fd = ours.FindFileByName(f.name)
        for m in fd.message_types_by_name.values():
            compare_message(m, upstream.FindMessageTypeByName(m.full_name))
            checked += 1
        for e in fd.enum_types_by_name.values():
            compare_enum(e, upstream.FindEnumTypeByName(e.full_name))
            checked += 1
        for s in fd.services_by_name.values():
            compare_service(s, upstream.FindServiceByName(s.full_name))
            checked += 1
    for p in problems:
        print(p)
    print(f"compared {checked} definitions: {len(problems)} differences")
    sys.exit(1 if problems or checked < 20 else 0)


if __name__ == "__main__":
    main()
