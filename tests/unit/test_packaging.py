"""pyproject.toml, uv.lock, the Dockerfile and .dockerignore agree: DNS plugin extras at certbot's
release, every imported library declared, the image's labels, the build context."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from docker.utils.build import exclude_paths

import sidecar

ROOT = Path(__file__).resolve().parents[2]


def _locked() -> dict[str, str]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {p["name"]: p["version"] for p in lock["package"]}


def _extras() -> dict[str, list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras: dict[str, list[str]] = project["optional-dependencies"]
    return extras


def test_every_dns_extra_is_one_certbot_plugin_named_after_it():
    dns = {name: reqs for name, reqs in _extras().items() if name.startswith("dns-")}
    assert "dns-rfc2136" in dns
    for name, reqs in dns.items():
        assert len(reqs) == 1, name
        assert reqs[0].startswith(f"certbot-{name}>="), (name, reqs)


def test_dns_plugins_are_locked_at_certbots_release():
    locked = _locked()
    plugins = {n: v for n, v in locked.items() if n.startswith("certbot-dns-")}
    assert {f"certbot-{extra}" for extra in _extras() if extra.startswith("dns-")} <= set(plugins)
    assert set(plugins.values()) == {locked["certbot"]}, plugins


def test_the_dns_plugin_for_unit_tests_is_in_the_dev_group():
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]
    assert any(req.startswith("certbot-dns-rfc2136") for req in groups["dev"])
    import certbot_dns_rfc2136  # noqa: PLC0415  (installed by `uv sync --all-groups`)

    assert certbot_dns_rfc2136.__name__


def test_the_dns_plugin_table_knows_every_dns_extra():
    """DNS_PLUGIN's table and the image extras name the same plugins."""
    from sidecar.certbot.challenges import DNS_PLUGINS  # noqa: PLC0415

    extras = {name.removeprefix("dns-") for name in _extras() if name.startswith("dns-")}
    assert set(DNS_PLUGINS) == extras


def _dockerfile_values() -> dict[str, str]:
    """The Dockerfile's ARG defaults and LABEL values, by name."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    values = dict(re.findall(r"^ARG (\w+)=(\S*)", text, re.MULTILINE))
    values.update(re.findall(r'(org\.opencontainers\.image\.\w+)="([^"]*)"', text))
    return values


def test_the_image_labels_say_what_pyproject_says():
    """OCI title, description, licenses and version from the project; revision and source
    from the build."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    values = _dockerfile_values()
    oci = "org.opencontainers.image."
    assert values[oci + "title"] == project["name"]
    assert values[oci + "description"] == project["description"]
    assert values[oci + "licenses"] == project["license"]
    assert values["VERSION"] == project["version"] == sidecar.__version__
    assert values[oci + "version"] == "${VERSION}"
    assert values[oci + "revision"] == "${REVISION}"
    assert values[oci + "source"] == "${SOURCE}"


def test_the_build_context_holds_what_the_images_copy_and_nothing_else():
    """.dockerignore is an allow-list: the sidecar's and the demo app's COPY sources only."""
    patterns = [
        line for line in (ROOT / ".dockerignore").read_text().splitlines() if line[:1] != "#"
    ]
    sent = {p for p in exclude_paths(str(ROOT), patterns, "Dockerfile") if Path(ROOT, p).is_file()}
    package = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "sidecar").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    copied = {"pyproject.toml", "uv.lock", "README.md", "config/demo-app/app.py"}
    assert sent == package | copied | {"Dockerfile", "config/demo-app/Dockerfile", ".dockerignore"}
    for dockerfile in ("Dockerfile", "config/demo-app/Dockerfile"):
        for sources in re.findall(
            r"^COPY (?!--from)(.+) \S+$", (ROOT / dockerfile).read_text(), re.MULTILINE
        ):
            for source in sources.split():
                assert any(s == source or s.startswith(source.rstrip("/") + "/") for s in sent)


# A certbot plugin works with certbot's own libraries, at the versions certbot pins.
VIA_CERTBOT = {"acme", "josepy", "configobj"}


def test_every_library_the_package_imports_is_declared():
    """An import the project does not declare works only while another package brings it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"].values()
    requirements = [*project["dependencies"], *(r for reqs in extras for r in reqs)]
    declared = {_normal(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]) for r in requirements}
    distributions = packages_distributions()
    for module in sorted(_imported_modules() - VIA_CERTBOT):
        names = {_normal(d) for d in distributions.get(module, [])}
        assert names & declared, f"sidecar imports {module} ({names}), not in pyproject.toml"


def _normal(name: str) -> str:
    """A distribution's name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_modules() -> set[str]:
    found = set()
    for path in (ROOT / "sidecar").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"sidecar", "__future__"}
