"""The official Python `kubernetes` client against the embedded Kubernetes API.

Usage: kube_python.py KUBECONFIG. Exercises Secrets and Namespaces: create (the client's bodies
carry no apiVersion/kind), read, list with paging, replace, patch (strategic merge and JSON
patch), watch from a resourceVersion, delete. Prints "OK" and exits 0 when every check holds.
"""

import base64
import sys
import threading
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def main(kubeconfig):
    config.load_kube_config(config_file=kubeconfig)
    v1 = client.CoreV1Api()
    ns = "py"

    # Namespaces: created without TypeMeta, listed with status.phase.
    created = v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    check(created.status.phase == "Active", f"new namespace phase {created.status.phase}")
    names = [n.metadata.name for n in v1.list_namespace().items]
    check({"default", "kube-system", "kube-public", "kube-node-lease", ns} <= set(names), names)

    # Secrets: create, read.
    for i in range(5):
        v1.create_namespaced_secret(
            ns,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name=f"s{i}", labels={"i": str(i)}),
                string_data={"k": f"value-{i}"},
            ),
        )
    s0 = v1.read_namespaced_secret("s0", ns)
    check(base64.b64decode(s0.data["k"]) == b"value-0", s0.data)
    check(s0.type == "Opaque", s0.type)

    # List with paging.
    seen, token = [], None
    while True:
        page = v1.list_namespaced_secret(ns, limit=2, _continue=token)
        check(len(page.items) <= 2, len(page.items))
        seen += [s.metadata.name for s in page.items]
        token = page.metadata._continue
        if not token:
            break
    check(seen == [f"s{i}" for i in range(5)], seen)
    selected = v1.list_namespaced_secret(ns, label_selector="i in (1,3)")
    check([s.metadata.name for s in selected.items] == ["s1", "s3"], selected.items)

    # Replace.
    s0.data = {"k": base64.b64encode(b"replaced").decode()}
    replaced = v1.replace_namespaced_secret("s0", ns, s0)
    check(base64.b64decode(replaced.data["k"]) == b"replaced", replaced.data)
    stale = s0
    try:
        v1.replace_namespaced_secret("s0", ns, stale)
        raise AssertionError("a stale replace succeeded")
    except ApiException as e:
        check(e.status == 409, e.status)

    # Patch: a dict is a strategic merge patch, a list a JSON patch.
    patched = v1.patch_namespaced_secret("s1", ns, {"metadata": {"labels": {"team": "py"}}})
    check(patched.metadata.labels == {"i": "1", "team": "py"}, patched.metadata.labels)
    patched = v1.patch_namespaced_secret(
        "s1", ns, [{"op": "replace", "path": "/data/k", "value": base64.b64encode(b"jp").decode()}]
    )
    check(base64.b64decode(patched.data["k"]) == b"jp", patched.data)

    # Watch from the current resourceVersion: a change made meanwhile arrives.
    rv = v1.list_namespaced_secret(ns).metadata.resource_version

    def later():
        time.sleep(0.5)
        v1.create_namespaced_secret(
            ns, client.V1Secret(metadata=client.V1ObjectMeta(name="late"), string_data={"a": "b"})
        )
        v1.delete_namespaced_secret("s2", ns)

    threading.Thread(target=later).start()
    events = []
    w = watch.Watch()
    for event in w.stream(v1.list_namespaced_secret, ns, resource_version=rv, timeout_seconds=10):
        events.append((event["type"], event["object"].metadata.name))
        if len(events) == 2:
            w.stop()
    check(events == [("ADDED", "late"), ("DELETED", "s2")], events)

    # Delete a Secret, then the namespace (Terminating, then gone).
    v1.delete_namespaced_secret("s0", ns)
    try:
        v1.read_namespaced_secret("s0", ns)
        raise AssertionError("a deleted secret is still readable")
    except ApiException as e:
        check(e.status == 404, e.status)
    # The server answers the Terminating Namespace; the client types the answer as V1Status, so
    # the namespace's status object arrives as its string form.
    deleted = v1.delete_namespace(ns)
    check("Terminating" in str(deleted.status), deleted.status)
    check(v1.list_namespaced_secret(ns).items == [], "secrets left in a deleted namespace")
    try:
        v1.read_namespace(ns)
        raise AssertionError("the namespace is still there")
    except ApiException as e:
        check(e.status == 404, e.status)
    print("OK")


if __name__ == "__main__":
    main(sys.argv[1])
