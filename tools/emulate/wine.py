"""Load kernel drivers into Wine 8 (wine64) and collect their DbgPrint output (stdlib only).

Usage as a library:

    with WineSession() as s:
        s.load("st_demo", Path("x.sys"), group="stdemo")          # sc create + sc start
        s.wait_for(lambda recs: any("end" in r.text for r in recs), timeout=10)
        s.stop("st_demo")                                          # sc stop (DriverUnload)
    print(s.records, s.crashes)

Kernel services only live while some non-system Wine process exists, so the session keeps
`cmd.exe /c "set /p x="` running with its stdin on a FIFO whose write end only this Python
process holds (close-on-exec, so no other Wine process inherits it). Closing it ends the
session. Everything is torn down on exit, even after exceptions: services are stopped and
deleted, `wineserver -k`, leftover processes of this prefix are killed, the FIFO removed.

`ensure_wine` installs wine64 (root, apt-get); `ensure_arm64_ntoskrnl` fetches Wine's arm64
ntoskrnl for the ARM64 import check (downloaded and unpacked, not installed).
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, HarnessError, log  # noqa: E402

PREFIX = CACHE / "wineprefix"
WINEDEBUG = "fixme-all,err-winediag,warn+debugstr,+timestamp"
DLLOVERRIDES = "mscoree,mshtml,winemenubuilder.exe="
READY_MARK = ".system-thread-ready"

# `<ts>:<tid>:warn:debugstr:<func> <text>` (the text after the function name's ": ")
_DEBUGSTR = re.compile(r"^\s*(?P<ts>\d+\.\d+):(?P<tid>[0-9a-fA-F]+):warn:debugstr:\S+\s?(?P<text>.*)$")
# vDbgPrintExWithPrefix puts "<component>:<level>: " in front of DbgPrint text.
_DBG_PREFIX = re.compile(r"^[0-9a-fA-F]{8}:[0-9a-fA-F]{8}: ")
_TSLINE = re.compile(r"^\s*(?P<ts>\d+\.\d+):(?P<tid>[0-9a-fA-F]+):(?P<rest>.*)$")
# What Wine prints when a process (here: winedevice.exe) dies of an exception.
CRASH_PATTERNS = [
    re.compile(r"Unhandled (page fault|exception|illegal instruction|stack overflow|"
               r"privileged instruction|breakpoint|division by zero)", re.I),
    re.compile(r"err:seh:", re.I),
    re.compile(r"wine: Call from .* to unimplemented function", re.I),
    re.compile(r"err:ntoskrnl:.*(bugcheck|KeBugCheck)", re.I),
    re.compile(r"err:module:import_dll|err:module:LdrInitializeThunk", re.I),
]


@dataclass
class Record:
    """One DbgPrint line."""
    ts: float
    tid: int
    text: str


@dataclass
class WineInstall:
    loader: Path
    server: Path


@dataclass
class CommandResult:
    args: list[str]
    rc: int
    stdout: str
    stderr: str


# -- installation and prefix ------------------------------------------------------------

def _dpkg_files(pkg: str) -> list[str]:
    res = subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True)
    return res.stdout.splitlines() if res.returncode == 0 else []


def ensure_wine() -> WineInstall:
    files = _dpkg_files("wine64")
    if not files:
        if shutil.which("dpkg") is None:
            raise HarnessError("wine64 is needed and this is not a Debian-like system; install "
                               "Wine 8 (wine64 loader + wineserver) and retry")
        if os.geteuid() != 0:
            raise HarnessError("wine64 is not installed; run: sudo apt-get install -y "
                               "--no-install-recommends wine64")
        log("installing wine64 (apt-get, ~100 MB download) ...")
        cmd = ["apt-get", "install", "-y", "--no-install-recommends", "wine64"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if subprocess.run(cmd, env=env).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env)
            if subprocess.run(cmd, env=env).returncode != 0:
                raise HarnessError("apt-get install wine64 failed")
        files = _dpkg_files("wine64")
    loader = next((Path(f) for f in files if f.endswith("/wine64") and "/bin" not in f), None)
    loader = loader or next((Path(f) for f in files if f.endswith("/wine64")), None)
    server = next((Path(f) for f in files if re.search(r"/wineserver(64)?$", f)), None)
    if server is None:  # the wine64 package may only ship wineserver64; libwine ships others
        for cand in ("/usr/lib/wine/wineserver64", "/usr/lib/wine/wineserver"):
            if Path(cand).exists():
                server = Path(cand)
                break
    if not loader or not loader.exists() or not server or not server.exists():
        raise HarnessError(f"wine64 installed but loader/wineserver not found in `dpkg -L wine64`"
                           f" (loader={loader}, wineserver={server})")
    return WineInstall(loader, server)


# Wine's ARM64 ntoskrnl, for checking the ARM64 driver's imports (nothing runs it). Debian
# builds arm64 Wine 8.0 with ELF builtins: aarch64-windows/ntoskrnl.exe is a placeholder
# without exports, the code and export table are in aarch64-unix/ntoskrnl.exe.so.
ARM64_DIR = CACHE / "wine-arm64"
ARM64_NTOSKRNL = "usr/lib/aarch64-linux-gnu/wine/aarch64-unix/ntoskrnl.exe.so"


def _apt(args: list[str], cwd: Path | None = None) -> int:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(["apt-get", *args], env=env, cwd=cwd).returncode


def ensure_arm64_ntoskrnl() -> Path:
    """Downloads (does not install) Debian's libwine:arm64 of the installed wine64 version
    and extracts it under target/emulate/wine-arm64; returns its ntoskrnl.exe.so. Needs
    arm64 as a dpkg foreign architecture, which it adds (root only) when missing."""
    ensure_wine()
    version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "wine64"],
                             capture_output=True, text=True).stdout.strip()
    path = ARM64_DIR / ARM64_NTOSKRNL
    mark = ARM64_DIR / ".version"
    if path.is_file() and mark.is_file() and mark.read_text().strip() == version:
        return path
    if os.geteuid() != 0:
        raise HarnessError("Wine's ARM64 ntoskrnl is needed for the ARM64 import check; as "
                           "root run: dpkg --add-architecture arm64 && apt-get update && "
                           f"apt-get download libwine:arm64={version} (or rerun as root)")
    foreign = subprocess.run(["dpkg", "--print-foreign-architectures"], capture_output=True,
                             text=True).stdout.split()
    if "arm64" not in foreign:
        log("adding arm64 as a dpkg foreign architecture (to download libwine:arm64)")
        if subprocess.run(["dpkg", "--add-architecture", "arm64"]).returncode != 0:
            raise HarnessError("dpkg --add-architecture arm64 failed")
        _apt(["update", "-qq"])
    log(f"downloading libwine:arm64={version} (~27 MB; extracted, not installed)")
    tmp = Path(tempfile.mkdtemp(prefix="st-wine-arm64-"))
    try:
        pkg = f"libwine:arm64={version}"
        if _apt(["download", "-q", pkg], cwd=tmp) != 0:
            _apt(["update", "-qq"])
            if _apt(["download", "-q", pkg], cwd=tmp) != 0:
                raise HarnessError(f"apt-get download {pkg} failed")
        debs = list(tmp.glob("libwine_*_arm64.deb"))
        if len(debs) != 1:
            raise HarnessError(f"apt-get download {pkg} left {debs}")
        if ARM64_DIR.exists():
            shutil.rmtree(ARM64_DIR)
        ARM64_DIR.mkdir(parents=True)
        if subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(ARM64_DIR)]).returncode != 0:
            raise HarnessError(f"dpkg-deb -x {debs[0]} failed")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not path.is_file():
        raise HarnessError(f"libwine:arm64 {version} has no {ARM64_NTOSKRNL}")
    mark.write_text(version + "\n")
    return path


def wine_env(prefix: Path = PREFIX, debug: str = WINEDEBUG) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "WINEDEBUG", "WINEPREFIX")}
    env.update(WINEPREFIX=str(prefix), WINEDEBUG=debug, WINEDLLOVERRIDES=DLLOVERRIDES,
               WINEARCH="win64")
    return env


PREFIX_VERSION = "2"   # bump when _configure_prefix changes


def ensure_prefix(wine: WineInstall, prefix: Path = PREFIX) -> bool:
    """Creates the prefix once (~10 s, ~700 MB); returns True if it was (re)configured."""
    mark = prefix / READY_MARK
    if (prefix / "system.reg").exists() and mark.exists() and mark.read_text().strip() == PREFIX_VERSION:
        return False
    env = wine_env(prefix, "-all")
    if not (prefix / "system.reg").exists():
        log(f"creating Wine prefix {prefix} (one time, ~10-20 s, ~700 MB)")
        if prefix.exists():
            shutil.rmtree(prefix)
        prefix.parent.mkdir(parents=True, exist_ok=True)
        res = subprocess.run([str(wine.loader), "wineboot", "-i"], env=env, capture_output=True,
                             text=True, timeout=300, stdin=subprocess.DEVNULL)
        subprocess.run([str(wine.server), "-w"], env=env, timeout=120)
        if res.returncode != 0 or not (prefix / "system.reg").exists():
            raise HarnessError(f"wineboot -i failed (rc={res.returncode}):\n{res.stderr[-3000:]}")
    _configure_prefix(wine, env)
    mark.write_text(PREFIX_VERSION + "\n")
    return True


def _configure_prefix(wine: WineInstall, env: dict[str, str]) -> None:
    # No debugger when a process faults: Wine then prints "Unhandled page fault ..." and the
    # process (winedevice.exe) just dies, instead of winedbg/crash-dialog start-up.
    key = r"HKLM\Software\Microsoft\Windows NT\CurrentVersion\AeDebug"
    subprocess.run([str(wine.loader), "reg", "delete", key, "/v", "Debugger", "/f"], env=env,
                   capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    subprocess.run([str(wine.loader), "reg", "add", key, "/v", "Auto", "/t", "REG_SZ", "/d", "1",
                    "/f"], env=env, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    subprocess.run([str(wine.server), "-w"], env=env, timeout=120)


def build_procinfo() -> Path | None:
    """Compiles procinfo.c (next to this file) with mingw-w64 into the cache, once."""
    src = Path(__file__).resolve().parent / "procinfo.c"
    exe = CACHE / "procinfo.exe"
    if exe.is_file() and exe.stat().st_mtime >= src.stat().st_mtime:
        return exe
    gcc = shutil.which("x86_64-w64-mingw32-gcc")
    if gcc is None:
        return None
    res = subprocess.run([gcc, "-O2", "-Wall", "-o", str(exe), str(src), "-lntdll"],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise HarnessError(f"building procinfo.exe failed:\n{res.stderr[-2000:]}")
    return exe


def linux_figures(pid: int) -> dict | None:
    """What Linux shows of one Wine process: threads (/proc/<pid>/task entries), open file
    descriptors (/proc/<pid>/fd entries) and VmRSS in kB; None once it is gone (a zombie
    is gone: it still has a task entry but no fds)."""
    try:
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX":
            return None
        rss = next((int(line.split()[1]) for line in
                    Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("VmRSS:")), 0)
        return {"tasks": len(os.listdir(f"/proc/{pid}/task")),
                "fds": len(os.listdir(f"/proc/{pid}/fd")), "rss_kb": rss}
    except OSError:
        return None


def winedevice_pids(prefix: Path = PREFIX) -> set[int]:
    """Linux PIDs of the prefix's winedevice.exe processes (one per driver group)."""
    pids = set()
    for pid in prefix_processes(prefix):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"winedevice.exe" in cmd.split(b"\0", 1)[0]:
            pids.add(pid)
    return pids


# -- process hygiene -------------------------------------------------------------------

def _become_subreaper() -> None:
    """Orphaned Wine processes (wineserver, services, winedevice) re-parent to us, so we
    can reap them instead of leaving zombies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def prefix_processes(prefix: Path) -> list[int]:
    """PIDs of processes running with WINEPREFIX=prefix (needs /proc)."""
    want = f"WINEPREFIX={prefix}".encode()
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            env = (d / "environ").read_bytes()
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and want in env.split(b"\0"):
            pids.append(int(d.name))
    return pids


# -- the session ------------------------------------------------------------------------

class WineSession:
    def __init__(self, prefix: Path = PREFIX, log_dir: Path | None = None, verbose: bool = False):
        self.prefix = prefix
        self.wine = ensure_wine()
        self.verbose = verbose
        self.log_dir = log_dir or (CACHE / "wine-logs")
        self.env = wine_env(prefix)
        self.services: list[str] = []      # created in this session (deleted on exit)
        self.started: list[str] = []
        self.commands: list[CommandResult] = []
        self.records: list[Record] = []
        self.crashes: list[str] = []        # lines that indicate a crashed host process
        self.stderr_lines: list[str] = []
        self._keeper: subprocess.Popen | None = None
        self._fifo_dir: str | None = None
        self._fifo_w: int | None = None
        self._logs: list[Path] = []
        self._offsets: dict[Path, int] = {}
        self.t_start = 0.0

    # context manager
    def __enter__(self) -> "WineSession":
        _become_subreaper()
        ensure_prefix(self.wine, self.prefix)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for f in self.log_dir.glob("*.log"):
            f.unlink()
        self._kill_prefix()  # a previous run may have left a wineserver behind
        try:
            self._start_keeper()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start_keeper(self) -> None:
        self.t_start = time.monotonic()
        self._fifo_dir = tempfile.mkdtemp(prefix="st-wine-")
        fifo = os.path.join(self._fifo_dir, "keepalive")
        os.mkfifo(fifo)
        # O_RDWR never blocks on a FIFO; this fd is close-on-exec (Python default), so only
        # this process holds a write end and closing it gives the keeper EOF.
        self._fifo_w = os.open(fifo, os.O_RDWR)
        rd = os.open(fifo, os.O_RDONLY)
        err = self._new_log("keeper")
        try:
            with open(err, "wb") as ef:
                self._keeper = subprocess.Popen(
                    [str(self.wine.loader), "cmd.exe", "/c", "set /p x="],
                    stdin=rd, stdout=subprocess.DEVNULL, stderr=ef, env=self.env,
                    start_new_session=True, close_fds=True)
        finally:
            os.close(rd)
        # The services and winedevice hosts inherit the keeper's stderr: DbgPrint lands there.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            r = self.run(["sc", "query", "PlugPlay"], timeout=60, check=False, quiet=True)
            if r.rc == 0:
                return
            time.sleep(0.2)
        raise HarnessError("Wine session did not come up (sc query failed for 60 s)")

    def _new_log(self, name: str) -> Path:
        p = self.log_dir / f"{len(self._logs):02d}-{name}.log"
        self._logs.append(p)
        return p

    # running Wine commands
    def run(self, args: list[str], timeout: float = 60, check: bool = True,
            quiet: bool = False) -> CommandResult:
        errp = self._new_log(args[0].replace("\\", "_"))
        with open(errp, "wb") as ef:
            try:
                res = subprocess.run([str(self.wine.loader), *args], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=ef, env=self.env,
                                     timeout=timeout, close_fds=True)
                rc, out = res.returncode, res.stdout.decode("utf-8", "replace")
            except subprocess.TimeoutExpired as e:
                rc, out = -9, (e.stdout or b"").decode("utf-8", "replace")
        cr = CommandResult(args, rc, out, errp.read_text("utf-8", "replace"))
        self.commands.append(cr)
        if self.verbose and not quiet:
            log(f"wine {' '.join(args)} -> rc={rc}")
        self.poll()
        if check and rc != 0:
            raise HarnessError(f"`wine {' '.join(args)}` failed rc={rc}\n{out[-1500:]}\n"
                               f"{cr.stderr[-1500:]}")
        return cr

    # output collection
    def poll(self) -> None:
        """Reads new stderr output from every log into records/crashes."""
        for p in self._logs:
            try:
                with open(p, "rb") as f:
                    f.seek(self._offsets.get(p, 0))
                    data = f.read()
            except FileNotFoundError:
                continue
            end = data.rfind(b"\n") + 1
            if end == 0:
                continue
            self._offsets[p] = self._offsets.get(p, 0) + end
            for line in data[:end].decode("utf-8", "replace").splitlines():
                self._line(line)

    def _line(self, line: str) -> None:
        self.stderr_lines.append(line)
        m = _DEBUGSTR.match(line)
        if m:
            text = m.group("text")
            # The text is printed as a debugstr: quoted with C escapes ("...\n").
            if text.startswith('"'):
                text = text[1:]
                text = re.sub(r'(\\n)?"\s*$', "", text)
                text = text.replace('\\"', '"').replace("\\\\", "\\")
            text = _DBG_PREFIX.sub("", text, count=1)
            self.records.append(Record(float(m.group("ts")), int(m.group("tid"), 16),
                                       text.rstrip("\n")))
            return
        if any(p.search(line) for p in CRASH_PATTERNS):
            self.crashes.append(line)

    def wait_for(self, cond: Callable[[list[Record]], bool] | None, timeout: float,
                 interval: float = 0.05) -> bool:
        """Polls until cond(records) is true (True) or timeout passes (False)."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            if cond is not None and cond(self.records):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)

    # driver services
    def load(self, name: str, sys_file: Path, group: str | None = None,
             start: bool = True) -> CommandResult | None:
        drivers = self.prefix / "drive_c" / "windows" / "system32" / "drivers"
        shutil.copyfile(sys_file, drivers / f"{name}.sys")
        self.run(["sc", "delete", name], check=False, quiet=True)   # stale from a crash
        args = ["sc", "create", name, "type=", "kernel", "start=", "demand",
                "binPath=", f"C:\\windows\\system32\\drivers\\{name}.sys"]
        if group:
            args += ["group=", group]
        self.run(args)
        self.services.append(name)
        return self.start(name) if start else None

    def start(self, name: str, timeout: float = 60) -> CommandResult:
        """sc start (runs DriverEntry). rc 1053 usually means winedevice died."""
        r = self.run(["sc", "start", name], timeout=timeout, check=False)
        if r.rc == 0:
            self.started.append(name)
        return r

    def stop(self, name: str, timeout: float = 60) -> CommandResult:
        """sc stop (runs DriverUnload)."""
        r = self.run(["sc", "stop", name], timeout=timeout, check=False)
        if name in self.started:
            self.started.remove(name)
        return r

    def query(self, name: str) -> CommandResult:
        return self.run(["sc", "query", name], check=False, quiet=True)

    def processes(self) -> list[dict] | None:
        """Wine's own view of the session's processes (procinfo.exe, run inside Wine): per
        process pid, threads, open handles, image name and thread ids. None when mingw-w64
        (`x86_64-w64-mingw32-gcc`) is missing to build the helper."""
        exe = build_procinfo()
        if exe is None:
            return None
        shutil.copyfile(exe, self.prefix / "drive_c" / "procinfo.exe")
        r = self.run(["C:\\procinfo.exe"], timeout=60, quiet=True)
        procs = []
        for line in r.stdout.splitlines():
            f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            if "pid" in f:
                procs.append({"pid": int(f["pid"], 16), "threads": int(f["threads"]),
                              "handles": int(f["handles"]), "name": f.get("name", ""),
                              "tids": [int(t, 16) for t in f.get("tids", "").split(",") if t]})
        return procs

    def elapsed(self) -> float:
        return time.monotonic() - self.t_start

    # teardown
    def _kill_prefix(self) -> None:
        env = wine_env(self.prefix, "-all")
        try:
            subprocess.run([str(self.wine.server), "-k"], env=env, timeout=30,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pids = prefix_processes(self.prefix)
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL if time.monotonic() > deadline - 8 else
                            signal.SIGTERM)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
            _reap()
        _reap()

    def close(self) -> None:
        """Idempotent teardown; safe after partial start-up and after exceptions."""
        try:
            if self._keeper is not None and self._keeper.poll() is None:
                for name in list(self.started):
                    try:
                        self.stop(name, timeout=20)
                    except Exception as e:  # noqa: BLE001
                        log(f"sc stop {name} during cleanup failed: {e}")
                for name in list(self.services):
                    try:
                        self.run(["sc", "delete", name], timeout=20, check=False, quiet=True)
                    except Exception:  # noqa: BLE001
                        pass
                self.services.clear()
        finally:
            if self._fifo_w is not None:
                os.close(self._fifo_w)
                self._fifo_w = None
            if self._keeper is not None:
                try:
                    self._keeper.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(self._keeper.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    self._keeper.wait(timeout=10)
                self._keeper = None
            self._kill_prefix()
            if self._fifo_dir:
                shutil.rmtree(self._fifo_dir, ignore_errors=True)
                self._fifo_dir = None
            self.poll()


def debugstr_texts(records: list[Record], prefix: str = "") -> list[str]:
    return [r.text for r in records if r.text.startswith(prefix)]
