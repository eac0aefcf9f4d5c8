#!/usr/bin/env python3
"""Builds golden/*.jsonl: the Go-computed reference records, plus derived records.

The derived records come from this file, an oracle written in Python straight from the
behavioural spec (shared/spec/flyte-secret-service.md), independently of the Rust code under test.
It is deterministic (fixed seed), so CI re-runs it and fails if golden/ differs from its output.

Usage: derive_vectors.py SHARED_GOLDEN_GO_DIR OUT_DIR
"""
import hashlib
import json
import os
import random
import sys
import unicodedata

GO_COMMIT = "6fadb90d4c99"
SEED = 20261129

# ---------------------------------------------------------------------------------------------
# The oracle: one function per rule, written from the spec.


def encode(org, domain, project, name):
    return f"u__org__{org}__domain__{domain}__project__{project}__key__{name}"


def prefix(org, domain, project):
    if project:
        return f"u__org__{org}__domain__{domain}__project__{project}"
    if domain:
        return f"u__org__{org}__domain__{domain}"
    return f"u__org__{org}"


def decode(encoded):
    parts = encoded.split("__")  # non-overlapping, left to right, like Go's strings.Split
    if len(parts) < 9:
        raise ValueError("secret name has an invalid format: not enough parts")
    if (parts[0], parts[1], parts[3], parts[5], parts[7]) != ("u", "org", "domain", "project", "key"):
        raise ValueError("secret name has an invalid format: unexpected parts")
    return {"org": parts[2], "domain": parts[4], "project": parts[6], "name": "__".join(parts[8:])}


def k8s_name(s):
    return hashlib.md5(s.encode("utf-8")).hexdigest()


def image_pull_name(org, domain, project, name):
    joined = ":".join([org, domain, project, name]).encode("utf-8")
    return "img-pull-" + hashlib.sha256(joined).hexdigest()[:16]


def _label_alnum(c):
    return c.isascii() and c.isalnum()


def sanitize_label_value(value):
    """The webhook's label-value cleaner: every code point outside [a-zA-Z0-9._-] becomes `-`,
    a non-alphanumeric first or last character becomes `x`, then at most 63 characters, whose last
    is again forced alphanumeric. Empty is `none`."""
    if value == "":
        return "none"
    s = "".join(c if _label_alnum(c) or c in "._-" else "-" for c in value)
    if not _label_alnum(s[0]):
        s = "x" + s[1:]
    if not _label_alnum(s[-1]):
        s = s[:-1] + "x"
    if len(s) > 63:
        s = s[:63]
        if not _label_alnum(s[-1]):
            s = s[:-1] + "x"
    return s


def go_is_print(c):
    return c == " " or unicodedata.category(c)[0] in "LMNPS"


GO_QUOTE_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(s):
    out = ['"']
    for c in s:
        o = ord(c)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif go_is_print(c):
            out.append(c)
        elif c in GO_QUOTE_ESCAPES:
            out.append(GO_QUOTE_ESCAPES[c])
        elif o < 0x20 or o == 0x7F:
            out.append("\\x%02x" % o)
        elif o < 0x10000:
            out.append("\\u%04x" % o)
        else:
            out.append("\\U%08x" % o)
    out.append('"')
    return "".join(out)


def scope_error(domain, project):
    if domain == "" and project != "":
        raise ValueError(f'project-scoped secrets must also specify a domain, got project={go_quote(project)} domain=""')
    return None


GO_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def go_json_string(s):
    out = ['"']
    for c in s:
        o = ord(c)
        if c in GO_JSON_ESCAPES:
            out.append(GO_JSON_ESCAPES[c])
        elif c in "<>&\u2028\u2029" or o < 0x20:
            out.append("\\u%04x" % o)
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def invalidate_body(domain, project, name):
    fields = [("org", "flyte"), ("domain", domain), ("project", project), ("name", name)]
    return "{" + ",".join(f"{go_json_string(k)}:{go_json_string(v)}" for k, v in fields) + "}"


def go_simple_upper(c):
    full = c.upper()
    if len(full) == 1:
        return full
    o = ord(c)  # expanding full mappings: UnicodeData's simple mapping instead
    if 0x1F80 <= o <= 0x1F87 or 0x1F90 <= o <= 0x1F97 or 0x1FA0 <= o <= 0x1FA7:
        return chr(o + 8)
    if o in (0x1FB3, 0x1FC3, 0x1FF3):
        return chr(o + 9)
    return c


def go_simple_lower(c):
    if c == "\u0130":
        return "i"
    full = c.lower()
    return full if len(full) == 1 else c


def lookup_cascade(org, domain, project, key):
    if key == "":
        raise ValueError("EmbeddedSecretManager requires key to be set")
    for label, value in (("organization", org), ("project", project), ("domain", domain)):
        if value == "":
            raise ValueError(
                f"[SecretRequirementsError] secret read requirements not met due to empty {label} field in the pod labels"
            )
    steps = []
    for scope, d, p in (("project", domain, project), ("domain", domain, ""), ("org", "", "")):
        data_key = encode(org, d, p, key)
        steps.append(
            {
                "scope": scope,
                "data_key": data_key,
                "object_name": k8s_name(data_key),
                "image_pull_name": image_pull_name(org, d, p, key),
            }
        )
    return steps


def env_var_name(key, env_var, env_prefix):
    return env_var if env_var else env_prefix + "".join(go_simple_upper(c) for c in key)


def file_mount(key):
    return {
        "path": "/etc/flyte/secrets/" + key,
        "env_var_path": "/etc/flyte/secrets/" + "".join(go_simple_lower(c) for c in key),
    }


# ---------------------------------------------------------------------------------------------
# Input generation.

rng = random.Random(SEED)

DELIMS = ["u", "org", "domain", "project", "key", "KEY", "projects", "v", "U"]
UNDERSCORES = ["_", "__", "___", "____", "_____"]
ASCII_WORD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-."
# One or more code points from every plane 0-16, assigned and unassigned, plus awkward ones.
PLANE_SAMPLES = [
    "é", "ß", "İ", "ı", "Σ", "ς", "ﬀ", "ŉ", "ᾳ", "ᾀ", "ǅ", "Ω", "Ж", "א", "ا", "中", "가", "\u00a0",
    "\u00ad", "\u200b", "\u200d", "\u2028", "\u2029", "\ufeff", "\ufffd", "\uffff", "\ue000",
    "😀", "💩", "𐍈", "\U0001f469\u200d\U0001f4bb", "\U00020000", "\U0002a6d6", "\U00030000",
    "\U00040000", "\U00050001", "\U0006fffd", "\U00070000", "\U00080000", "\U0009fffe", "\U000a1234",
    "\U000b0000", "\U000cffff", "\U000d0000", "\U000e0001", "\U000e0100", "\U000f0000", "\U0010fffd",
    "\U0010ffff",
]
CONTROL = ["\x00", "\x01", "\x07", "\x08", "\t", "\n", "\x0b", "\x0c", "\r", "\x1b", "\x1f", "\x7f", "\x85"]
SPECIAL = [" ", '"', "\\", "<", ">", "&", "'", "%", "%s", ":", "/", "=", ",", "@", "#", "?"]


def piece():
    r = rng.random()
    if r < 0.30:
        return "".join(rng.choice(ASCII_WORD) for _ in range(rng.randint(1, 8)))
    if r < 0.45:
        return rng.choice(UNDERSCORES)
    if r < 0.55:
        return rng.choice(DELIMS)
    if r < 0.75:
        return rng.choice(PLANE_SAMPLES)
    if r < 0.85:
        return rng.choice(CONTROL)
    if r < 0.95:
        return rng.choice(SPECIAL)
    return chr(rng.choice([rng.randint(0x80, 0xD7FF), rng.randint(0xE000, 0x10FFFF)]))


def component(max_pieces=6):
    r = rng.random()
    if r < 0.15:
        return ""
    if r < 0.20:
        return "".join(piece() for _ in range(rng.randint(200, 600)))  # long: 1000+ bytes
    return "".join(piece() for _ in range(rng.randint(1, max_pieces)))


def assigned(s):
    """Unicode-category-sensitive ops only get code points assigned in this Python's Unicode
    database, so a newer Unicode version in another implementation cannot change the answer."""
    return "".join(c for c in s if unicodedata.category(c) != "Cn")


def tuple4():
    return component(), component(), component(), component()


# ---------------------------------------------------------------------------------------------


def rec(op, inp, fn):
    try:
        out = fn()
    except ValueError as e:
        return {"op": op, "input": inp, "error": str(e), "source": "derived"}
    return {"op": op, "input": inp, "output": out, "source": "derived"}


def derived():
    out = {}

    def add(r):
        out.setdefault(r["op"], []).append(r)

    # encode / decode / k8s_name over random tuples, including long and every-plane components.
    for _ in range(2500):
        o, d, p, n = tuple4()
        inp = {"org": o, "domain": d, "project": p, "name": n}
        add(rec("encode", inp, lambda: encode(o, d, p, n)))
        if rng.random() < 0.5:
            e = encode(o, d, p, n)
            add(rec("decode", {"encoded": e}, lambda: decode(e)))
            add(rec("k8s_name", {"secret_name": e}, lambda: k8s_name(e)))

    # `_` and `__` inserted at every position of typical ids, and every character removed.
    bases = [
        encode("flyte", "development", "flytesnacks", "my-secret"),
        encode("flyte", "d", "", "k"),
        encode("flyte", "", "", ""),
    ]
    for base in bases:
        for i in range(len(base) + 1):
            for ins in ("_", "__"):
                s = base[:i] + ins + base[i:]
                add(rec("decode", {"encoded": s}, lambda: decode(s)))
            if i < len(base):
                s = base[:i] + base[i + 1:]
                add(rec("decode", {"encoded": s}, lambda: decode(s)))
    for i in range(0, 41):
        name = "_" * (i % 6) + "n" + "_" * (i // 6)
        for comp in range(3):
            parts = ["flyte", "d", "p"]
            parts[comp] = parts[comp][: i % 2] + "_" * (i % 5) + parts[comp][i % 2:]
            e = encode(*parts, name)
            add(rec("encode", {"org": parts[0], "domain": parts[1], "project": parts[2], "name": name},
                    lambda: e))
            add(rec("decode", {"encoded": e}, lambda: decode(e)))

    # docs/go-service.md §3.5: distinct ids that share one encoded id (and so one Secret).
    for _ in range(300):
        d, p, x, n = (rng.choice(["d", "dev", "a_b", "x-y"]), rng.choice(["p", "proj", "p1"]),
                      rng.choice(["x", "key", "k_"]), rng.choice(["n", "my-secret", "_n", "n__"]))
        for inp in (
            {"org": "flyte", "domain": d, "project": f"{p}__key__{x}", "name": n},
            {"org": "flyte", "domain": d, "project": p, "name": f"{x}__key__{n}"},
            {"org": "flyte", "domain": f"{d}__project__{p}", "project": x, "name": n},
            {"org": "flyte", "domain": d, "project": f"{p}__project__{x}", "name": n},
        ):
            e = encode(**inp)
            add(rec("encode", inp, lambda: e))
            add(rec("decode", {"encoded": e}, lambda: decode(e)))

    # Truncations and extensions of valid ids.
    for _ in range(500):
        e = encode(*tuple4())
        cut = rng.randint(0, len(e))
        for s in (e[:cut], e + rng.choice(["__", "___x", "__key__", "_"])):
            add(rec("decode", {"encoded": s}, lambda: decode(s)))

    for _ in range(800):
        o, d, p = component(), component(), component()
        add(rec("prefix", {"org": o, "domain": d, "project": p}, lambda: prefix(o, d, p)))
    for _ in range(700):
        s = component(12)
        add(rec("k8s_name", {"secret_name": s}, lambda: k8s_name(s)))
    for _ in range(1000):
        o, d, p, n = tuple4()
        add(rec("image_pull_name", {"org": o, "domain": d, "project": p, "name": n},
                lambda: image_pull_name(o, d, p, n)))

    for _ in range(1500):
        d = assigned(component()) if rng.random() < 0.3 else ""
        p = assigned(component(10))
        add(rec("scope_error", {"domain": d, "project": p}, lambda: scope_error(d, p)))
    for _ in range(1500):
        d, p, n = assigned(component()), assigned(component()), assigned(component())
        add(rec("invalidate_body", {"domain": d, "project": p, "name": n}, lambda: invalidate_body(d, p, n)))

    for _ in range(1500):
        o = rng.choice(["flyte", "flyte", "", assigned(component())])
        d = rng.choice(["development", "staging", "", assigned(component())])
        p = rng.choice(["flytesnacks", "", assigned(component())])
        k = rng.choice(["my-secret", "", assigned(component())])
        add(rec("lookup_cascade", {"org": o, "domain": d, "project": p, "key": k},
                lambda: lookup_cascade(o, d, p, k)))

    # Every code point whose full upper-case mapping expands, then random keys.
    expanding = [chr(c) for c in range(0x110000)
                 if not 0xD800 <= c <= 0xDFFF and unicodedata.category(chr(c)) != "Cn" and len(chr(c).upper()) > 1]
    for c in expanding:
        add(rec("env_var_name", {"key": "k" + c}, lambda: env_var_name("k" + c, "", "_UNION_")))
    for _ in range(1400):
        k = assigned(component())
        inp = {"key": k}
        ev, pre = "", "_UNION_"
        if rng.random() < 0.2:
            ev = inp["env_var"] = rng.choice(["MY_VAR", "x", assigned(component())])
        if rng.random() < 0.2:
            pre = inp["prefix"] = rng.choice(["", "_x_", "FLYTE_"])
        add(rec("env_var_name", inp, lambda: env_var_name(k, ev, pre)))
    for c in ["\u0130", "\u03a3", "\u1e9e", "\u2c6f", "A", "Z"]:
        add(rec("file_mount", {"key": "Key" + c}, lambda: file_mount("Key" + c)))
    for _ in range(900):
        k = assigned(component())
        add(rec("file_mount", {"key": k}, lambda: file_mount(k)))
    # Drawn last, so adding this op left every earlier record unchanged.
    for _ in range(400):
        v = component(rng.choice([4, 30, 90]))
        add(rec("sanitize_label_value", {"value": v}, lambda: sanitize_label_value(v)))
    return out


def go_records(shared):
    out = {}
    for fname, source in (("vectors.json", "go"), ("extra_vectors.json", "go"), ("spec_examples.json", "go:spec-example")):
        with open(os.path.join(shared, fname), encoding="utf-8") as f:
            for r in json.load(f):
                r = dict(r)
                r["source"] = source
                if r["op"] == "invalidation_targets" and "error" in r:
                    r["error_match"] = "any"  # only "an error occurs" is normative (Go only logs it)
                out.setdefault(r["op"], []).append(r)
    return out


# Ops whose Go-computed records live in golden/ itself (computed after shared/golden-go was made,
# see golden/README.md): the oracle reads back their `go` records, checks itself against them and
# writes them out again with its derived records.
LOCAL_GO_OPS = ["sanitize_label_value"]
GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "golden")


def local_go_records(records):
    for op in LOCAL_GO_OPS:
        with open(os.path.join(GOLDEN_DIR, f"{op}.jsonl"), encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                if r.get("source") == "go":
                    records.setdefault(op, []).append(r)


def self_check(records):
    """The oracle must agree with every Go-computed record it has a function for."""
    fns = {
        "encode": lambda i: encode(i["org"], i["domain"], i["project"], i["name"]),
        "prefix": lambda i: prefix(i["org"], i["domain"], i["project"]),
        "decode": lambda i: decode(i["encoded"]),
        "k8s_name": lambda i: k8s_name(i["secret_name"]),
        "image_pull_name": lambda i: image_pull_name(i["org"], i["domain"], i["project"], i["name"]),
        "scope_error": lambda i: scope_error(i["domain"], i["project"]),
        "invalidate_body": lambda i: invalidate_body(i["domain"], i["project"], i["name"]),
        "sanitize_label_value": lambda i: sanitize_label_value(i["value"]),
    }
    for op, recs in records.items():
        if op not in fns:
            continue
        for r in recs:
            try:
                got = {"output": fns[op](r["input"])}
            except ValueError as e:
                got = {"error": str(e)}
            want = {"error": r["error"]} if "error" in r else {"output": r["output"]}
            if got != want:
                sys.exit(f"oracle disagrees with Go on {op} {r['input']!r}: {got!r} != {want!r}")


def main():
    shared, out_dir = sys.argv[1], sys.argv[2]
    records = go_records(shared)
    local_go_records(records)
    self_check(records)
    for op, recs in derived().items():
        records.setdefault(op, []).extend(recs)
    os.makedirs(out_dir, exist_ok=True)
    total = 0
    for op in sorted(records):
        with open(os.path.join(out_dir, f"{op}.jsonl"), "w", encoding="utf-8", newline="\n") as f:
            for r in records[op]:
                f.write(json.dumps(r, sort_keys=True) + "\n")
        total += len(records[op])
        print(f"{op}: {len(records[op])}")
    print(f"total: {total}")


if __name__ == "__main__":
    main()
