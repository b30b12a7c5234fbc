"""The deployment files parse, agree with each other and with the real CLI.

Static checks only (no container engine or cluster here): the systemd unit,
the Dockerfile, the compose file and the Kubernetes manifests are read, and
every command line they run is fed to `larkfleet`'s own argument parser.
`systemd-analyze verify` and `kubectl kustomize` run when they are installed.
"""

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from supervisor.cli import DEFAULT_PORT, build_parser
from supervisor.settings import SupervisorSettings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
UNIT = DEPLOY / "larkfleet.service"
VENV_BIN = "/opt/larkfleet/.venv/bin/larkfleet"
GRACE = SupervisorSettings().stop_grace


@pytest.fixture(autouse=True)
def _no_larkfleet_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parser reads LARKFLEET_* defaults; the files must not depend on the test's env."""
    for name in [n for n in os.environ if n.startswith("LARKFLEET_")]:
        monkeypatch.delenv(name)


def parse_serve(argv: list[str]):
    """Parse a `larkfleet ...` command line (argv[0] is the program) with the real parser."""
    assert Path(argv[0]).name == "larkfleet", argv
    args = build_parser().parse_args(argv[1:])
    assert args.command == "serve"
    return args


def seconds(text: str) -> float:
    """'20', '20s', '1m30s' -> seconds (the forms systemd and compose use here)."""
    text = str(text).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|min|h)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"unparsed duration {text!r}"
    scale = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600}
    return sum(float(n) * scale[u] for n, u in parts)


# --- systemd ---------------------------------------------------------------------------


def read_unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_unit_has_the_required_settings() -> None:
    service = read_unit()["Service"]
    expected = {
        "Type": "simple",
        "Restart": "on-failure",
        "KillMode": "mixed",
        "User": "larkfleet",
        "StateDirectory": "larkfleet",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
    }
    assert {k: service.get(k) for k in expected} == expected
    assert seconds(service["TimeoutStopSec"]) > GRACE
    assert "/var/lib/larkfleet" in service["ReadWritePaths"].split()
    families = service.get("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6").split()
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= set(families)  # ZeroMQ ipc, HTTPS/WSS
    # W^X protection breaks libffi closures (cffi, ctypes callbacks): keep it off.
    assert service.get("MemoryDenyWriteExecute", "no") == "no"
    assert read_unit()["Install"]["WantedBy"] == "multi-user.target"


def test_unit_execstart_is_accepted_by_the_cli() -> None:
    service = read_unit()["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == VENV_BIN
    args = parse_serve(argv)
    assert args.data_dir == "/var/lib/larkfleet"
    assert args.data_dir in service["ReadWritePaths"].split()
    assert (args.host, args.port) == ("127.0.0.1", DEFAULT_PORT)
    assert service.get("EnvironmentFile", "").startswith("-")  # optional file


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify insists that ExecStart's binary exists; stand in for the venv's entry point.
    text = UNIT.read_text().replace(VENV_BIN, shutil.which("true") or "/bin/true")
    copy = tmp_path / UNIT.name
    copy.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    own = [line for line in result.stderr.splitlines() if UNIT.name in line]
    assert result.returncode == 0 and not own, result.stderr


# --- Dockerfile ------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines = [
        line
        for line in (DEPLOY / "Dockerfile").read_text().splitlines()
        if not line.lstrip().startswith("#")
    ]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in text.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = dockerfile()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def one(steps: list[tuple[str, str]], word: str) -> str:
    found = [rest for w, rest in steps if w == word]
    assert len(found) == 1, f"{word}: {found}"
    return found[0]


def test_dockerfile_cmd_and_entrypoint_match_the_cli() -> None:
    stage = final_stage()
    assert json.loads(one(stage, "ENTRYPOINT")) == ["tini", "--"]
    cmd = json.loads(one(stage, "CMD"))
    args = parse_serve(cmd)
    assert args.data_dir == one(stage, "VOLUME") == "/data"
    assert args.host == "0.0.0.0"
    assert str(args.port) == one(stage, "EXPOSE")
    env = " ".join(rest for w, rest in stage if w == "ENV")
    assert "LARKFLEET_DATA_DIR=/data" in env and "LARKFLEET_HOST=0.0.0.0" in env
    assert "/opt/larkfleet/.venv/bin" in env  # `larkfleet` on PATH


def test_dockerfile_base_user_tini_and_healthcheck() -> None:
    steps = dockerfile()
    assert all(rest.split()[0] == "python:3.12-slim" for w, rest in steps if w == "FROM")
    stage = final_stage()
    assert one(stage, "USER") not in {"root", "0"}
    assert any(w == "RUN" and "apt-get install" in r and "tini" in r for w, r in stage)
    health = one(stage, "HEALTHCHECK")
    probe = json.loads(health[health.index("CMD") + 3 :])
    assert probe[0] == "python" and f"127.0.0.1:{DEFAULT_PORT}/healthz" in probe[-1]
    assert re.search(r"--start-period=\d+s", health)


def test_dockerfile_installs_every_package_into_its_own_venv() -> None:
    steps = dockerfile()
    runs = " ".join(rest for w, rest in steps if w == "RUN")
    assert "venv /opt/larkfleet/.venv" in runs
    assert "/opt/larkfleet/.venv/bin/pip install ." in runs
    copied = {
        rest.split()[0].rstrip("/") for w, rest in steps if w == "COPY" and "--from" not in rest
    }
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    assert packages <= copied, packages - copied
    ignored = {
        line.strip().rstrip("/")
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert not (packages & ignored), f"copied but excluded from the context: {packages & ignored}"
    assert {"pyproject.toml", pyproject["project"]["readme"]} <= {
        name for w, rest in steps if w == "COPY" for name in rest.split()[:-1]
    }


# --- compose ---------------------------------------------------------------------------


def test_compose_service_ports_volume_grace_healthcheck() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    (service,) = compose["services"].values()
    assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == (
        DEPLOY / "Dockerfile"
    )
    assert service["ports"] == [f"127.0.0.1:{DEFAULT_PORT}:{DEFAULT_PORT}"]
    args = parse_serve(service["command"])
    volume, target = service["volumes"][0].split(":")[:2]
    assert target == args.data_dir == "/data"
    assert volume in compose["volumes"]  # a named volume, not a bind mount
    assert seconds(service["stop_grace_period"]) > GRACE
    assert "/healthz" in " ".join(service["healthcheck"]["test"])
    assert service["env_file"]
    example = (DEPLOY / "larkfleet.env.example").read_text()
    assert re.search(r"^LARKFLEET_ADMIN_TOKEN=", example, re.MULTILINE)


# --- Kubernetes ------------------------------------------------------------------------


def k8s_docs(folder: Path = K8S) -> dict[str, dict]:
    """Kind -> document of the kustomization in `folder`, which must list every file."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    listed = kustomization["resources"]
    on_disk = {p.name for p in folder.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(listed) == on_disk
    docs = {}
    for name in listed:
        for doc in yaml.safe_load_all((folder / name).read_text()):
            assert "namespace" not in doc["metadata"], f"{name} pins a namespace"
            docs[doc["kind"]] = doc
    return docs


def test_k8s_statefulset_probes_volume_grace_security() -> None:
    docs = k8s_docs()
    assert set(docs) == {"StatefulSet", "Service", "Secret"}
    sts = docs["StatefulSet"]["spec"]
    assert sts["replicas"] == 1
    pod = sts["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > GRACE
    assert pod["enableServiceLinks"] is False  # else LARKFLEET_PORT=tcp://... is injected
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["command"] == ["tini", "--"]
    args = parse_serve(container["args"])
    assert (args.host, args.port) == ("0.0.0.0", DEFAULT_PORT)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert ports.get(get["port"], get["port"]) == DEFAULT_PORT
    (claim,) = sts["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == args.data_dir
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_k8s_service_and_secret_match_the_pod() -> None:
    docs = k8s_docs()
    pod = docs["StatefulSet"]["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    service = docs["Service"]["spec"]
    assert service["type"] == "ClusterIP"
    assert service["selector"].items() <= pod["metadata"]["labels"].items()
    (port,) = service["ports"]
    assert port["port"] == DEFAULT_PORT
    assert port["targetPort"] in {p["name"] for p in container["ports"]}
    env = {e["name"]: e for e in container["env"]}
    ref = env["LARKFLEET_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]
    secret = docs["Secret"]
    assert ref["name"] == secret["metadata"]["name"]
    assert ref["key"] in secret["stringData"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl missing")
def test_kustomize_builds() -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=20, check=False
    )
    assert result.returncode == 0, result.stderr
    kinds = sorted(doc["kind"] for doc in yaml.safe_load_all(result.stdout))
    assert kinds == ["Secret", "Service", "StatefulSet"]


# --- cluster mode ------------------------------------------------------------------------

CLUSTER = K8S / "cluster"


def test_k8s_cluster_statefulset_secret_pdb_prestop_readiness() -> None:
    docs = k8s_docs(CLUSTER)
    assert set(docs) == {"StatefulSet", "Service", "Secret", "PodDisruptionBudget"}
    sts = docs["StatefulSet"]["spec"]
    assert sts["replicas"] >= 2
    pod = sts["template"]
    (container,) = pod["spec"]["containers"]
    parse_serve(container["args"])
    env = {e["name"]: e for e in container["env"]}
    secret = docs["Secret"]
    for name, key in (("LARKFLEET_DATABASE_URL", "database-url"),
                      ("LARKFLEET_SECRET_KEY", "secret-key"),
                      ("LARKFLEET_ADMIN_TOKEN", "admin-token")):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == (secret["metadata"]["name"], key)
        assert "optional" not in ref, f"{name} must be the same on every pod"
        assert key in secret["stringData"]
    assert env["LARKFLEET_NODE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert "$(POD_IP)" in env["LARKFLEET_NODE_ADDRESS"]["value"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    pre_stop = " ".join(container["lifecycle"]["preStop"]["exec"]["command"])
    assert "kill -TERM 1" in pre_stop  # SIGTERM is the handover
    assert pod["spec"]["terminationGracePeriodSeconds"] > 2 * GRACE
    pdb = docs["PodDisruptionBudget"]["spec"]
    assert pdb["maxUnavailable"] == 1
    assert pdb["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert docs["Service"]["spec"]["selector"].items() <= pod["metadata"]["labels"].items()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl missing")
def test_kustomize_builds_the_cluster_variant() -> None:
    result = subprocess.run(["kubectl", "kustomize", str(CLUSTER)], capture_output=True,
                            text=True, timeout=20, check=False)
    assert result.returncode == 0, result.stderr
    kinds = sorted(doc["kind"] for doc in yaml.safe_load_all(result.stdout))
    assert kinds == ["PodDisruptionBudget", "Secret", "Service", "StatefulSet"]


def test_compose_cluster_runs_two_nodes_and_postgresql() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.cluster.yaml").read_text())
    services = compose["services"]
    nodes = {name: s for name, s in services.items() if name != "postgres"}
    assert len(nodes) == 2 and "postgres" in services
    ids, published = set(), set()
    for service in nodes.values():
        args = parse_serve(service["command"])
        env = service["environment"]
        assert env["LARKFLEET_DATABASE_URL"].startswith("postgresql://")
        assert "${POSTGRES_PASSWORD" in env["LARKFLEET_DATABASE_URL"]  # never in the file
        ids.add(env["LARKFLEET_NODE_ID"])
        published.add(service["ports"][0].split(":")[1])
        assert service["volumes"][0].split(":")[1] == args.data_dir
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert seconds(service["stop_grace_period"]) > 2 * GRACE
    assert len(ids) == 2 and len(published) == 2
