"""Structure of runtime-image/Dockerfile, checked without building (tests/integration/images builds
the images with podman and checks their contents; tests/e2e runs them where Docker exists): pinned
bases, multi-stage with compilers only in builder stages, non-root final images with a health
check, the right extras per target, bases with python at /usr/bin or /usr/local/bin, and a build
context (.dockerignore) that carries exactly what the COPY lines need."""

from __future__ import annotations

import dataclasses
import fnmatch
import pathlib
import re
import tomllib

import yaml

REPO = pathlib.Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "runtime-image" / "Dockerfile"
FINAL_TARGETS = {"cpu", "cuda", "operator"}
BUILD_TOOLS = ("build-essential", "gcc", "g++", "cmake", "make", "git", "clang", "ninja", "-dev ", "cargo", "rustc")


@dataclasses.dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def _parse() -> tuple[dict[str, str], dict[str, Stage]]:
    """(global ARG defaults, stages by name) from the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+) AS (\S+)", rest.strip(), flags=re.IGNORECASE)
            assert match, f"every stage is named: FROM {rest}"
            current = Stage(match.group(2), match.group(1))
            stages[current.name] = current
        elif current is None:
            assert keyword == "ARG", f"{keyword} before the first FROM"
            name, _, default = rest.partition("=")
            args[name] = default
        else:
            current.instructions.append((keyword, rest))
    return args, stages


ARGS, STAGES = _parse()


def _resolve(base: str) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: ARGS[m.group(1)], base)


def _ancestry(stage: Stage) -> list[Stage]:
    chain = [stage]
    while chain[-1].base in STAGES:
        chain.append(STAGES[chain[-1].base])
    return chain


def test_final_targets_exist_and_bases_are_pinned() -> None:
    assert FINAL_TARGETS <= set(STAGES)
    for stage in STAGES.values():
        if stage.base in STAGES:
            continue
        image = _resolve(stage.base)
        _, _, tag = image.partition(":")
        assert "@sha256:" in image or re.search(r"\d+\.\d+\.\d+", tag), f"{stage.name}: base {image} is not pinned"
        assert tag and not tag.startswith("latest"), f"{stage.name}: base {image} floats"


def test_python_base_satisfies_requires_python() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    minimum = tuple(int(p) for p in re.search(r">=\s*(\d+)\.(\d+)", project["requires-python"]).groups())
    version = re.search(r"python:(\d+)\.(\d+)", ARGS["PYTHON_IMAGE"]).groups()
    assert tuple(int(p) for p in version) >= minimum


def test_final_stages_are_slim_non_root_and_healthy() -> None:
    for target in FINAL_TARGETS:
        chain = _ancestry(STAGES[target])
        assert all(not s.name.startswith("builder") for s in chain), f"{target} descends from a builder"
        users = [arg for s in reversed(chain) for arg in s.all("USER")]
        assert users and users[-1] == "10001:10001", f"{target} must end as the non-root user 10001"
        runs = " ".join(arg for s in chain for arg in s.all("RUN")) + " "
        for tool in BUILD_TOOLS:
            assert tool not in runs, f"{target} installs build tool {tool.strip()}"
        assert "rm -rf /var/lib/apt/lists/*" in runs or "apt-get" not in runs, f"{target} keeps apt lists"
        # Bases without the official images' docker-clean hook keep downloaded .debs otherwise.
        assert "apt-get clean" in runs or "apt-get" not in runs, f"{target} keeps downloaded packages"
        copies = [arg for s in chain for arg in s.all("COPY")]
        assert copies and all(arg.startswith("--from=builder-") and arg.endswith("/opt/venv /opt/venv")
                              for arg in copies), f"{target} copies more than the built virtualenv: {copies}"
        assert STAGES[target].all("HEALTHCHECK"), f"{target} has no HEALTHCHECK"
        assert STAGES[target].all("ENTRYPOINT") or STAGES[target].all("CMD"), f"{target} has no command"
    assert any("useradd --uid 10001" in run and "--shell /usr/sbin/nologin" in run
               for run in STAGES["final-base"].all("RUN"))


def _installed_extras(builder: Stage) -> set[str] | None:
    """The project's extras that a builder installs (every `pip install "/src[...]"`), None if none."""
    found = re.findall(r'pip install [^&]*?"?/src(?:\[([^\]]*)\])?', " ".join(builder.all("RUN")))
    return {extra for group in found for extra in group.split(",") if extra} if found else None


def test_each_target_installs_its_engines() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    wanted = {"cpu": {"llama-cpp", "transformers"}, "cuda": {"vllm", "transformers", "llama-cpp"},
              "operator": {"s3"}}  # the operator image runs the download Jobs, S3 sources included
    for target, engine_extras in wanted.items():
        builder = STAGES[STAGES[target].all("COPY")[0].split()[0].removeprefix("--from=")]
        chosen = _installed_extras(builder)
        assert chosen is not None, f"{builder.name} does not install the project"
        assert chosen == engine_extras, f"{target}: extras {chosen}"
        assert chosen <= set(extras)
    # CPU torch, never CUDA: from the PyTorch CPU index unless the builder names another source,
    # and pinned again when the engines install so no dependency can swap it.
    cpu_args = dict(arg.partition("=")[::2] for arg in STAGES["builder-cpu"].all("ARG"))
    assert cpu_args["TORCH_SOURCE"] == '"--index-url ${TORCH_INDEX}"'
    assert ARGS["TORCH_INDEX"].endswith("/whl/cpu")
    cpu_build = " ".join(STAGES["builder-cpu"].all("RUN"))
    assert cpu_build.count('"torch==${TORCH_VERSION}"') == 2
    assert 'pip install ${TORCH_SOURCE} "torch==${TORCH_VERSION}"' in cpu_build
    assert STAGES["operator"].all("CMD") == ['["python", "-m", "llmserver_operator"]']
    assert STAGES["cpu"].all("ENTRYPOINT") == STAGES["cuda"].all("ENTRYPOINT") == ['["llmserver-runtime"]']


def test_build_context_carries_what_copy_needs() -> None:
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    def included(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            pattern = pattern.lstrip("!")
            if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, pattern.replace("/**", "/*")):
                keep = negated
        return keep

    sources = []
    for stage in STAGES.values():
        for arg in stage.all("COPY"):
            if not arg.startswith("--from"):
                sources += arg.split()[:-1]
    assert sources
    for source in sources:
        path = REPO / source
        assert path.exists(), f"COPY {source}: missing"
        files = [path] if path.is_file() else [p for p in path.rglob("*.py")]
        for file in files:
            assert included(str(file.relative_to(REPO))), f"{file} is excluded from the build context"
    for excluded in ("tests/conftest.py", "bench/README.md", ".git/HEAD", "charts/llmserver/Chart.yaml"):
        assert not included(excluded), f"{excluded} would be sent to the builder"


def test_kind_config_and_e2e_agree() -> None:
    config = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    roles = [node["role"] for node in config["nodes"]]
    assert roles == ["control-plane", "worker"]
    mapping = config["nodes"][1]["extraPortMappings"][0]
    script = (REPO / "tests" / "e2e" / "run-kind-e2e.sh").read_text()
    assert f"gateway.service.nodePort={mapping['containerPort']}" in script
    assert f"127.0.0.1:{mapping['hostPort']}/v1" in script
    assert "scripts/build-images.sh operator cpu" in script  # the images the chart install uses
    assert 'LLMSERVER_IMAGE_TAG="$tag"' in script and "image.tag=\"$tag\"" in script


def test_builders_work_on_any_debian_python_base() -> None:
    """scripts/build-images.sh builds `builder-<target>` first (with its pip mounts), then the target;
    a debootstrap base has python3 at /usr/bin and no `python` until the venv exists."""
    for target in FINAL_TARGETS:
        assert f"builder-{target}" in STAGES, f"{target} has no builder-{target} stage"
        assert STAGES[target].all("COPY")[0].startswith(f"--from=builder-{target} ")
    first_runs = STAGES["builder-base"].all("RUN")
    assert first_runs[0] == "python3 -m venv /opt/venv"
    assert "/usr/local/bin" not in DOCKERFILE.read_text().split("FROM", 1)[1]
    env = " ".join(STAGES["builder-base"].all("ENV"))
    assert "PIP_NO_CACHE_DIR" not in env  # the mounted host cache must be usable in builders


def test_dependencies_install_before_our_code_arrives() -> None:
    """A code change must re-run only the cheap `--no-deps` install, not torch/llama.cpp/vLLM."""
    for target in FINAL_TARGETS:
        builder = STAGES[f"builder-{target}"]
        deps = [i for i, (kw, arg) in enumerate(builder.instructions)
                if kw == "RUN" and re.search(r'pip install [^&]*"?/src', arg)]
        code = builder.instructions.index(("COPY", "--from=source /src /src"))
        copies = [i for i, (kw, _) in enumerate(builder.instructions) if kw == "COPY"]
        assert copies[-1] == code, f"{builder.name} copies something after our code"
        assert deps and deps[0] < code, f"{builder.name} installs its dependencies after copying the code"
        after = " ".join(arg for kw, arg in builder.instructions[code:] if kw == "RUN")
        assert "pip install --no-deps --force-reinstall /src" in after
    source_copies = STAGES["source"].all("COPY")
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert sorted(arg.split()[0] for arg in source_copies) == sorted(packages)
    stubs = " ".join(STAGES["builder-base"].all("RUN"))
    assert all(package in stubs for package in packages), "every package needs a stand-in for the dependency install"
