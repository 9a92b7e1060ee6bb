"""Installing the CNI plugin and its network config on a host (``install-cni``, ``node-init``,
``node-run``).

Two plugins speak the same protocol to the daemon: the static Go binary built from
``plugin-static/`` (shipped in the image at ``/usr/lib/vpccni/vpccni-cni``; needs nothing on the
host) and the single-file Python plugin ``vpccni/plugin/cni.py`` (needs Python >= 3.8 on the
host). :func:`choose_plugin` picks one (``auto``: the static binary when there is one) and says
why; :func:`install` writes it and runs it once for VERSION. Every file is written atomically
(temp file, fsync, rename, directory fsync).

Python never caches the bytecode of a script it runs, and compiling ``cni.py`` costs more than
half the plugin's start. So the Python plugin is installed as one unit of three files:
``vpccni-cni``, a small launcher behind ``#!INTERPRETER -IS``; ``vpccni-cni.d/cni.py``, the
source verbatim; and ``vpccni-cni.d/__pycache__/cni.<tag>.pyc``, its bytecode compiled at
install time *by the plugin's own interpreter* (so the tag and magic number are the host's),
hash-checked. The launcher resolves its own symlinks, loads the code with the interpreter's
``SourceFileLoader`` (the pyc when its magic number and source hash match, else the source:
another interpreter, or a half-finished reinstall, still runs the right code), runs it as a
module of its own and calls its ``main`` from the launcher's top level - so the stack is as deep
as the verbatim script's (Python's recursion limit is what bounds JSON nesting, which the static
plugin mirrors). It writes nothing at run time. Installing the static plugin removes
``vpccni-cni.d``.

The conflist is written separately, only once the daemon answers a ``status`` request
(:func:`wait_for_daemon`): its appearance is what tells the runtime that the node's network is
ready. The runtime uses only the first configuration in the conf dir by name, and upstream's
``10-aws.conflist`` sorts before ``10-vpccni.conflist``: :func:`retire_upstream_conflists` moves
upstream's aside once ours is in place, and says so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from vpccni.errors import InvalidInput, VpccniError
from vpccni.plugin import cni

PLUGIN_NAME = "vpccni-cni"
PLUGIN_DIR = PLUGIN_NAME + ".d"  # the Python plugin's module and bytecode, beside the launcher
MODULE_FILE = "cni.py"
PYCACHE = "__pycache__"
CONFLIST_NAME = "10-vpccni.conflist"
UPSTREAM_CONFLIST = "10-aws.conflist"  # what upstream's aws-node entrypoint writes
UPSTREAM_PLUGIN = "aws-cni"  # upstream's plugin type
REPLACED_SUFFIX = ".vpccni-replaced"  # an extension no runtime loads
CONF_EXTENSIONS = (".conf", ".conflist", ".json")  # what runtimes load (libcni's ConfFiles)
STATIC_PLUGIN = Path("/usr/lib/vpccni/vpccni-cni")
DEBIAN_PYTHON = "/usr/bin/python3"
INTERPRETER_FLAGS = "-IS"  # isolated (no env, no user site, no script dir on sys.path), no site
_FLOOR: tuple[int, ...] = tuple(getattr(cni, "MIN_PYTHON", (3, 8)))
PYTHON_FLOOR = _FLOOR[:2]
"""The Python plugin's floor (``cni.MIN_PYTHON`` when the plugin states it)."""
CONFLIST_VERSION = "1.0.0"
CONFLIST_VERSIONS = ["1.0.0", "1.1.0"]
POLL_SECONDS = 0.5
KINDS = ("auto", "static", "python")
ELF_MAGIC = b"\x7fELF"


@dataclass(frozen=True)
class PluginChoice:
    """Which plugin goes to the host: ``static`` (``binary``) or ``python`` (``interpreter``)."""

    kind: str
    why: str
    binary: Path | None = None
    interpreter: str | None = None


def choose_plugin(
    kind: str = "auto", binary: Path | None = None, interpreter: str | None = None
) -> PluginChoice:
    """The plugin for this host: ``static`` needs the binary (``binary``, default
    :data:`STATIC_PLUGIN`); ``python`` a usable interpreter; ``auto`` takes the static binary when
    ``binary`` is given or the default exists (and no ``interpreter`` was asked for), else the
    Python plugin."""
    if kind not in KINDS:
        raise InvalidInput(f"--plugin {kind!r}: choose auto, static or python")
    if kind == "static" and interpreter is not None:
        raise InvalidInput("--interpreter is for the Python plugin; drop it or use --plugin python")
    if kind == "python" and binary is not None:
        raise InvalidInput(
            "--plugin-binary is for the static plugin; drop it or use --plugin static"
        )
    auto = kind == "auto"
    if auto:
        if binary is not None and interpreter is not None:
            raise InvalidInput(
                "--plugin-binary and --interpreter choose different plugins; give one of them"
            )
        static = binary is not None or (interpreter is None and STATIC_PLUGIN.exists())
        kind = "static" if static else "python"
    if kind == "static":
        path = check_static_binary(binary or STATIC_PLUGIN, given=binary is not None)
        return PluginChoice("static", "static plugin (no interpreter needed)", binary=path)
    chosen = choose_interpreter(interpreter)
    version = python_version(chosen)
    if version < PYTHON_FLOOR:
        floor = ".".join(map(str, PYTHON_FLOOR))
        raise InvalidInput(
            f"{chosen} is Python {'.'.join(map(str, version))}; the Python plugin needs "
            f"{floor} or later: give --interpreter a newer Python, or install the static "
            f"plugin (--plugin static --plugin-binary PATH)"
        )
    why = f"Python plugin with {chosen} {version[0]}.{version[1]}"
    if auto and interpreter is None:
        why += f" (no static plugin at {STATIC_PLUGIN})"
    return PluginChoice("python", why, interpreter=chosen)


def check_static_binary(path: Path, *, given: bool) -> Path:
    """``path`` if it is an executable ELF file, else a one-line InvalidInput."""
    if not path.is_file():
        what = f"--plugin-binary {path}" if given else f"the static plugin {path}"
        raise InvalidInput(
            f"{what} does not exist or is not a file; build it with scripts/build-plugin.sh "
            "(and pass --plugin-binary), or use --plugin python"
        )
    try:
        with path.open("rb") as stream:
            magic = stream.read(4)
    except OSError as error:
        raise InvalidInput(f"cannot read {path}: {error.strerror or error}") from None
    if magic != ELF_MAGIC:
        raise InvalidInput(
            f"{path} is not an ELF executable (the static plugin is a Go binary built by "
            "scripts/build-plugin.sh)"
        )
    return path


def choose_interpreter(given: str | None) -> str:
    """The interpreter for the shebang: given, else Debian's python3, else this one."""
    if given is None:
        given = DEBIAN_PYTHON if os.access(DEBIAN_PYTHON, os.X_OK) else sys.executable
    if not given.startswith("/") or any(character.isspace() for character in given):
        raise InvalidInput(f"--interpreter {given!r} must be an absolute path without spaces")
    if not os.path.isfile(given) or not os.access(given, os.X_OK):
        raise InvalidInput(f"--interpreter {given} is not an executable file")
    with open(given, "rb") as stream:
        if stream.read(2) == b"#!":
            raise InvalidInput(
                f"--interpreter {given} is a script (a shim such as pyenv's costs ~200 ms per "
                "pod); give the real interpreter binary, e.g. /usr/bin/python3"
            )
    return given


def python_version(interpreter: str) -> tuple[int, ...]:
    """``interpreter``'s version (major, minor, micro), asked the way the plugin will run."""
    script = "import sys; print('%d.%d.%d' % sys.version_info[:3])"
    try:
        done = subprocess.run(
            [interpreter, INTERPRETER_FLAGS, "-c", script],
            env={"PATH": os.defpath},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return tuple(int(part) for part in done.stdout.strip().split("."))
    except (OSError, subprocess.TimeoutExpired, ValueError) as error:
        raise InvalidInput(f"--interpreter {interpreter} does not run as Python: {error}") from None


def plugin_source() -> bytes:
    """The plugin module's source, exactly as shipped."""
    return resources.files("vpccni.plugin").joinpath("cni.py").read_bytes()


def install(choice: PluginChoice, bin_dir: Path) -> Path:
    """Write the chosen plugin into ``bin_dir`` as ``vpccni-cni``, then run it for VERSION."""
    if choice.kind == "static":
        assert choice.binary is not None
        try:
            data = choice.binary.read_bytes()
        except OSError as error:
            raise VpccniError(f"cannot read {choice.binary}: {error.strerror}") from None
        path = _write_and_check(bin_dir, data, "the static plugin")
        remove_python_plugin(bin_dir)
        return path
    assert choice.interpreter is not None
    return install_plugin(bin_dir, choice.interpreter)


LAUNCHER_BODY = f'''\
"""vpccni-cni, vpccni's CNI plugin: runs {PLUGIN_DIR}/{MODULE_FILE} beside this file
(beside its target if this is a symlink) from the bytecode `vpccni install-cni` compiled for
this interpreter, checked against the source (from the source when they differ). Written by
`vpccni install-cni`: reinstall it rather than edit it."""
import sys

if __name__ == "__main__":
    sys.dont_write_bytecode = True  # the plugin never writes into the CNI bin dir


def _load(here):
    import posix

    for _ in range(40):
        try:
            target = posix.readlink(here)
        except OSError:  # not a symlink: the module is beside it
            break
        here = target if target[:1] == "/" else here[: here.rfind("/") + 1] + target
    source = (here[: here.rfind("/") + 1] or "./") + "{PLUGIN_DIR}/{MODULE_FILE}"
    machinery = sys.modules.get("_frozen_importlib_external")  # importlib.machinery's, loaded
    if machinery is None:
        import importlib.machinery as machinery
    module = type(sys)("vpccni_cni")
    module.__file__ = source
    exec(machinery.SourceFileLoader("vpccni_cni", source).get_code("vpccni_cni"), module.__dict__)
    return module


try:
    main = _load(__file__).main
except Exception as error:  # never a traceback: a CNI error naming the fix
    import json

    _text = json.dumps(
        {{
            "cniVersion": "1.1.0",
            "code": 11,
            "msg": "vpccni-cni cannot load its code",
            "details": f"{{type(error).__name__}}: {{error}}; reinstall it: vpccni install-cni",
        }}
    )
    try:
        print(_text, file=sys.stdout or sys.stderr)
    except OSError:
        pass
    sys.exit(1)
if __name__ == "__main__":
    sys.exit(main())  # from the top level: as deep a stack as cni.py run as a script has
'''
"""The Python plugin's launcher after its shebang line (the same for every interpreter)."""

COMPILE_SCRIPT = """\
import importlib.util, py_compile, sys
try:
    cached = importlib.util.cache_from_source(sys.argv[3])
except NotImplementedError:  # an implementation without a bytecode cache
    sys.exit(0)
py_compile.compile(sys.argv[1], cfile=sys.argv[2], dfile=sys.argv[3], doraise=True,
                   invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
print(cached)
"""
"""Run by the plugin's interpreter: compile argv[1] into argv[2] as a hash-checked pyc; print
where that interpreter's loader looks for the bytecode of a module file named argv[3]."""


def launcher(interpreter: str) -> bytes:
    """The launcher ``vpccni-cni`` for ``interpreter``."""
    return f"#!{interpreter} {INTERPRETER_FLAGS}\n{LAUNCHER_BODY}".encode()


@dataclass(frozen=True)
class Bytecode:
    """``cni.py`` compiled by the plugin's interpreter: where its loader looks, and the pyc."""

    relative_path: str  # e.g. __pycache__/cni.cpython-311.pyc
    data: bytes


def compile_plugin(interpreter: str, source: bytes, scratch_parent: Path) -> Bytecode | None:
    """``source`` compiled by ``interpreter`` itself into a hash-checked pyc (so the magic number
    and cache tag are the plugin's, whatever Python runs this installer); None when that
    interpreter keeps no bytecode cache (its loader then compiles the source each start). Works
    in a scratch directory under ``scratch_parent`` (the bin dir: writable, where /tmp may not
    be in a container with a read-only root), removed afterwards."""
    try:
        scratch_dir = tempfile.TemporaryDirectory(prefix=".vpccni-compile-", dir=scratch_parent)
    except OSError as error:
        raise VpccniError(f"cannot compile the plugin in {scratch_parent}: {error}") from None
    with scratch_dir as scratch:
        source_path, pyc_path = Path(scratch, MODULE_FILE), Path(scratch, "cni.pyc")
        source_path.write_bytes(source)
        arguments = [str(source_path), str(pyc_path), MODULE_FILE]
        try:
            done = subprocess.run(
                [interpreter, INTERPRETER_FLAGS, "-c", COMPILE_SCRIPT, *arguments],
                env={"PATH": os.defpath},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise VpccniError(f"{interpreter} could not compile the plugin: {error}") from None
        if done.returncode != 0:
            detail = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
            raise VpccniError(
                f"{interpreter} could not compile the plugin ({detail[0]}); give --interpreter "
                f"a Python {'.'.join(map(str, PYTHON_FLOOR))} or later, or use --plugin static"
            )
        relative = done.stdout.strip()
        parts = relative.split("/")
        if not relative or len(parts) != 2 or parts[0] != PYCACHE or not parts[1].endswith(".pyc"):
            return None  # no cache, or one outside the module's directory (pycache_prefix)
        return Bytecode(relative, pyc_path.read_bytes())


def install_plugin(bin_dir: Path, interpreter: str) -> Path:
    """Install the Python plugin for ``interpreter`` into ``bin_dir``: ``vpccni-cni.d/cni.py``
    (the source), its bytecode as that interpreter compiles it, then the launcher
    ``vpccni-cni`` (last: a crash before it leaves the previous plugin working, and the hash
    check keeps any mix of old and new files running the source beside it); stale bytecode of
    other interpreters is removed. Runs the plugin once for VERSION; returns the launcher."""
    source = plugin_source()
    bytecode = compile_plugin(interpreter, source, bin_dir)  # before anything is touched
    directory = _make_directory(bin_dir / PLUGIN_DIR)
    write_atomically(directory / MODULE_FILE, source, 0o644)
    cache = directory / PYCACHE
    keep = None
    if bytecode is not None:
        keep = directory / bytecode.relative_path
        write_atomically(_make_directory(cache) / keep.name, bytecode.data, 0o644)
    _remove_stale_bytecode(cache, keep)
    return _write_and_check(bin_dir, launcher(interpreter), interpreter)


def installed_bytecode(bin_dir: Path) -> Path | None:
    """The bytecode the installed Python plugin carries (None: none, or no Python plugin)."""
    found = sorted((bin_dir / PLUGIN_DIR / PYCACHE).glob("cni.*.pyc"))
    return found[0] if found else None


def is_shipped_python_plugin(bin_dir: Path, launcher_data: bytes) -> bool:
    """Whether ``launcher_data`` (``vpccni-cni``'s bytes) and ``vpccni-cni.d/cni.py`` in
    ``bin_dir`` are what this vpccni installs (for any interpreter)."""
    if not launcher_data.startswith(b"#!"):
        return False
    body = launcher_data.split(b"\n", 1)[1] if b"\n" in launcher_data else b""
    try:
        module = (bin_dir / PLUGIN_DIR / MODULE_FILE).read_bytes()
    except OSError:
        return False
    return body == LAUNCHER_BODY.encode() and module == plugin_source()


def describe_plugin(path: Path, choice: PluginChoice) -> str:
    """One line saying what was installed and why, e.g. ``installed /opt/cni/bin/vpccni-cni:
    static plugin (no interpreter needed)``."""
    if choice.interpreter is None:
        return f"installed {path}: {choice.why}"
    directory = path.parent / PLUGIN_DIR
    bytecode = installed_bytecode(path.parent)
    cached = (
        f"and its bytecode {bytecode.relative_to(directory)}"
        if bytecode is not None
        else f"(no bytecode: {choice.interpreter} keeps no cache, so it compiles at each start)"
    )
    return (
        f"installed {path}: {choice.why} (launcher #!{choice.interpreter} {INTERPRETER_FLAGS}; "
        f"{MODULE_FILE} {cached} in {directory})"
    )


def remove_python_plugin(bin_dir: Path) -> None:
    """Remove ``vpccni-cni.d`` (once the static plugin has replaced the launcher)."""
    directory = bin_dir / PLUGIN_DIR
    if directory.is_symlink() or not directory.is_dir():
        return
    try:
        shutil.rmtree(directory)
    except OSError as error:
        raise VpccniError(
            f"cannot remove the Python plugin's {directory}: {error.strerror or error}"
        ) from None
    _fsync_directory(bin_dir)


def _make_directory(path: Path) -> Path:
    """``path`` as a directory (0755), created durably if missing."""
    if path.is_dir() and not path.is_symlink():
        return path
    if path.exists() or path.is_symlink():
        raise VpccniError(f"{path} is in the way (not a directory); remove it and reinstall")
    try:
        path.mkdir(mode=0o755)
    except OSError as error:
        raise VpccniError(f"cannot create {path}: {error.strerror or error}") from None
    _fsync_directory(path.parent)
    return path


def _remove_stale_bytecode(cache: Path, keep: Path | None) -> None:
    """Bytecode of other interpreters (a previous install for another Python)."""
    stale = [path for path in cache.glob("cni.*.pyc") if path != keep] if cache.is_dir() else []
    for path in stale:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as error:
            raise VpccniError(f"cannot remove {path}: {error.strerror or error}") from None
    if stale:
        _fsync_directory(cache)


def _write_and_check(bin_dir: Path, data: bytes, runner: str) -> Path:
    path = bin_dir / PLUGIN_NAME
    write_atomically(path, data, 0o755)
    try:
        done = subprocess.run(
            [str(path)],
            env={"CNI_COMMAND": "VERSION", "PATH": os.defpath},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            check=False,
        )
        answer = json.loads(done.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError) as error:
        raise VpccniError(f"the installed plugin {path} does not run: {error}") from None
    versions = answer.get("supportedVersions") if isinstance(answer, dict) else None
    if done.returncode != 0 or versions != list(cni.SUPPORTED_VERSIONS):
        detail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        floor = ".".join(map(str, PYTHON_FLOOR))
        raise VpccniError(
            f"the installed plugin {path} did not answer VERSION with {runner} "
            f"(exit {done.returncode}; {detail[0]}); try --interpreter with Python {floor} or "
            "later, or the static plugin (--plugin static)"
        )
    return path


def status_reason(socket_path: str, network: str) -> str | None:
    """Ask the daemon once: None when it answers ready, else why not."""
    call = cni.Call("STATUS", cni.SPEC_VERSION, {"cniVersion": cni.SPEC_VERSION, "name": network})
    call.cni = {"container_id": "", "netns": "", "ifname": "", "args": "", "path": ""}
    try:
        line = cni.exchange(socket_path, cni.request_bytes(call), cni.TIMEOUTS["STATUS"])
        if cni.parse_reply(line).get("ready") is True:
            return None
        return "the daemon says it is not ready"
    except cni.DaemonUnreachable as error:
        return f"unreachable: {error}"
    except cni.CniError as error:
        return f"{error.msg} (code {error.code})"


def wait_for_daemon(
    socket_path: str,
    network: str,
    wait_seconds: float | None,
    keep_waiting: Callable[[], str | None] = lambda: None,
) -> None:
    """Poll the daemon with ``status`` until it answers ready; fail after ``wait_seconds``
    (None: never), or as soon as ``keep_waiting()`` names a reason to stop (the daemon died)."""
    deadline = time.monotonic() + (wait_seconds or 0.0)
    while True:
        last = status_reason(socket_path, network)
        if last is None:
            return
        if (stop := keep_waiting()) is not None:
            raise VpccniError(stop)
        if wait_seconds is not None and time.monotonic() + POLL_SECONDS > deadline:
            raise VpccniError(
                f"the daemon at {socket_path} did not answer ready within {wait_seconds:g} s "
                f"({last}); start `vpccni ipamd`, or pass --no-wait to write the conflist anyway"
            )
        time.sleep(POLL_SECONDS)


def render_conflist(
    network: str,
    socket_path: str,
    spool_dir: str,
    mtu: int,
    *,
    bandwidth: bool,
    log_file: str | None = None,
    log_level: str | None = None,
) -> str:
    """The network configuration list: vpccni-cni, then portmap (and bandwidth)."""
    first: dict[str, Any] = {
        "type": PLUGIN_NAME,
        "mtu": mtu,
        "socket": socket_path,
        "spoolDir": spool_dir,
    }
    if log_file:
        first["pluginLogFile"] = log_file
    if log_level:
        first["pluginLogLevel"] = log_level
    plugins: list[dict[str, Any]] = [
        first,
        {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
    ]
    if bandwidth:
        plugins.append({"type": "bandwidth", "capabilities": {"bandwidth": True}})
    document = {
        "cniVersion": CONFLIST_VERSION,
        "cniVersions": CONFLIST_VERSIONS,
        "name": network,
        "plugins": plugins,
    }
    return json.dumps(document, indent=2) + "\n"


def install_conflist(conf_dir: Path, conflist: str) -> Path:
    """Write ``10-vpccni.conflist`` into ``conf_dir`` atomically (0644)."""
    path = conf_dir / CONFLIST_NAME
    write_atomically(path, conflist.encode(), 0o644)
    return path


def is_upstream_conf(path: Path) -> bool:
    """``path`` is upstream's configuration: named ``10-aws.conflist``, or one whose plugin (or
    one of whose plugins) has type ``aws-cni``."""
    if path.name == UPSTREAM_CONFLIST:
        return True
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    if not isinstance(document, dict):
        return False
    plugins = document.get("plugins")
    entries = plugins if isinstance(plugins, list) else [document]
    return any(
        isinstance(entry, dict) and entry.get("type") == UPSTREAM_PLUGIN for entry in entries
    )


def retire_upstream_conflists(conf_dir: Path) -> list[str]:
    """Move upstream's configurations that sort before ours aside (``NAME.vpccni-replaced``: no
    runtime loads that extension; rename and directory fsync, so it survives a crash); one line
    per file moved, and a warning for any other configuration that still sorts first. A file that
    cannot be moved is a VpccniError naming it."""
    lines: list[str] = []
    try:
        names = sorted(entry.name for entry in os.scandir(conf_dir))
    except OSError as error:
        raise VpccniError(f"cannot list {conf_dir}: {error.strerror or error}") from None
    moved = False
    for name in names:
        path = conf_dir / name
        if name >= CONFLIST_NAME or not name.endswith(CONF_EXTENSIONS) or not path.is_file():
            continue
        if not is_upstream_conf(path):
            lines.append(
                f"warning: {path} sorts before {CONFLIST_NAME} and the runtime uses only the "
                "first: new pods get its network, not vpccni's; remove it if it is left over"
            )
            continue
        target = path.with_name(name + REPLACED_SUFFIX)
        try:
            os.replace(path, target)
        except OSError as error:
            raise VpccniError(
                f"cannot move upstream's {path} aside to {target}: {error.strerror or error}; "
                f"it sorts before {CONFLIST_NAME}, so the runtime uses it: remove it by hand"
            ) from None
        moved = True
        lines.append(
            f"moved upstream's {path} aside to {target}: it sorts before {CONFLIST_NAME}, and "
            "the runtime uses only the first (to go back to aws-node, delete "
            f"{CONFLIST_NAME}; aws-node writes {UPSTREAM_CONFLIST} again when it starts)"
        )
    if moved:
        _fsync_directory(conf_dir)
    return lines


def _fsync_directory(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as error:
        raise VpccniError(f"cannot sync {directory}: {error.strerror or error}") from None


def describe_conflist(path: Path, conflist: str, socket_path: str) -> str:
    """One line saying what the conflist chains."""
    document = json.loads(conflist)
    chain = " -> ".join(plugin["type"] for plugin in document["plugins"])
    return f"installed {path} (network {document['name']}: {chain}; socket {socket_path})"


def existing_directory(path: Path, flag: str) -> Path:
    """``path`` if it is a writable directory, else a one-line InvalidInput."""
    if not path.exists():
        raise InvalidInput(f"{flag} {path} does not exist; create it or pass the right directory")
    if not path.is_dir():
        raise InvalidInput(f"{flag} {path} is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise InvalidInput(f"{flag} {path} is not writable by this user; run as root")
    return path


def write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data``: temp file, fsync, rename, directory fsync."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view) :]
            os.fchmod(descriptor, mode)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
        directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise VpccniError(f"cannot write {path}: {error.strerror or error}") from None
