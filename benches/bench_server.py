"""What the Python benchmark scripts share: start `flytesecret serve` on free ports with the
embedded engine and its kube-api face, and create the one secret they read.

Imported by `callgrind_per_request.py` and `h2load_side_by_side.py` (Python puts a script's own
directory on the import path).
"""
import http.client
import json
import os
import re
import subprocess
import sys
import time

IDENT = {"name": "load_bench", "domain": "development", "project": "flytesnacks"}


def start(command: list) -> tuple:
    """Runs `command + ["serve", ...]` and returns (process, service address, kube-api address).

    `command` is the binary, or a wrapper and the binary (valgrind). Logs at the default level
    (RUST_LOG unset) and never a real cluster's in-cluster configuration.
    """
    env = dict(os.environ)
    env.pop("KUBERNETES_SERVICE_HOST", None)
    env.pop("RUST_LOG", None)
    server = subprocess.Popen(
        command + ["serve", "--secret.server.port", "0", "--kube-api-listen", "127.0.0.1:0",
                   "--secret.webhookURL", "", "--ephemeral"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True, cwd="/tmp")
    service = kube_api = None
    while service is None or kube_api is None:
        line = server.stdout.readline()
        if not line:
            sys.exit("the server exited")
        if m := re.search(r"embedded Kubernetes API on http://(\S+)", line):
            kube_api = m.group(1)
        if m := re.search(r"SecretService on http://(\S+)", line):
            service = m.group(1)
    return server, service, kube_api


def connect(addr: str) -> http.client.HTTPConnection:
    host, port = addr.rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port))


def create_secret(svc: http.client.HTTPConnection, kube: http.client.HTTPConnection) -> str:
    """Creates the secret `IDENT` (value "v") through Connect JSON and returns the name of its
    Kubernetes Secret, read back from the kube-api face."""
    create = json.dumps({"id": IDENT, "secretSpec": {"stringValue": "v"}})
    for _ in range(100):  # the namespace is created at startup, shortly after the port opens
        svc.request("POST", "/flyteidl2.secret.SecretService/CreateSecret", create,
                    {"content-type": "application/json"})
        r = svc.getresponse()
        r.read()
        if r.status == 200:
            break
        time.sleep(0.2)
    else:
        sys.exit("could not create the secret")
    kube.request("GET", "/api/v1/namespaces/flyte/secrets", headers={"accept": "application/json"})
    return json.loads(kube.getresponse().read())["items"][0]["metadata"]["name"]
