"""The terminal's control channel to a running controller: ``codeline line start L1``.

A Unix socket beside the database (mode 0660: the controller's user and group) takes one
JSON request per connection and gives one JSON answer. The kernel names the caller's uid
(``SO_PEERCRED``), which the audit records beside the operator name the caller gives. The
commands are the PLC's PackML commands, applied to the same state machine; the config's
``terminal_control`` says whether the terminal may command a line at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.daemon.errors import StartRefused
from edge.daemon.packml import Command, CommandRefused
from edge.domain import audit
from edge.domain.errors import DomainError
from edge.store.database import Store

if TYPE_CHECKING:
    from edge.daemon.dbworker import DbWorker
    from edge.daemon.line import LineRuntime

log = logging.getLogger("codeline.control")

SOCKET_MODE = 0o660
REQUEST_LIMIT = 4096
SETTLE_TIMEOUT_S = 60.0
ANSWER_TIMEOUT_S = SETTLE_TIMEOUT_S + 10.0
# sun_path holds 108 bytes; a longer path is reached through the folder's descriptor.
_SUN_PATH_MAX = 100

COMMANDS = {c.name.lower(): c for c in Command}


def control_path(db_path: Path) -> Path:
    """Where the running controller of ``db_path`` listens for the terminal."""
    return db_path.with_name(db_path.name + ".control.sock")


@contextlib.contextmanager
def _reachable(path: Path) -> Iterator[str]:
    """A name of ``path`` short enough for a Unix socket address."""
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


class ControlUnavailable(DomainError):
    """No controller answers on this database's control socket."""


def send(db_path: Path, request: dict[str, Any], timeout: float = ANSWER_TIMEOUT_S
         ) -> dict[str, Any]:
    """One request to the controller running on ``db_path``; its answer."""
    path = control_path(db_path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            with _reachable(path) as address:
                sock.connect(address)
        except (FileNotFoundError, ConnectionRefusedError):
            raise ControlUnavailable(
                "no controller is running on {db_path} (no answer at {path}): start it with "
                "`codeline run`", db_path=db_path, path=path) from None
        except PermissionError:
            raise ControlUnavailable(
                "not allowed to command the controller at {path}: the terminal user must be "
                "the controller's user or in its group", path=path) from None
        sock.sendall(json.dumps(request).encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    try:
        answer = json.loads(data)
    except ValueError:
        raise ControlUnavailable("the controller at {path} gave no answer", path=path) from None
    if not isinstance(answer, dict):
        raise ControlUnavailable("the controller at {path} gave no answer", path=path)
    return answer


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return None
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    _, uid, _ = struct.unpack("3i", creds)
    return int(uid)


def _record(store: Store, operator: str, action: str, target: str, **detail: Any) -> None:
    with store.transaction() as conn:
        audit.record(conn, operator, action, target, **detail)


class ControlServer:
    """Answers the terminal's line commands for the site's lines."""

    def __init__(self, db_path: Path, lines: dict[str, LineRuntime], db: DbWorker) -> None:
        self.path = control_path(db_path)
        self.lines = lines
        self.db = db
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            if self.path.is_socket():
                self.path.unlink()  # left by a controller that was killed
        old = os.umask(0o117)
        try:
            with _reachable(self.path) as address:
                self._server = await asyncio.start_unix_server(
                    self._serve, address, limit=REQUEST_LIMIT)
        except OSError as exc:
            raise StartRefused("cannot listen for the terminal at {path}: {problem} (remove what "
                               "is there)", path=self.path, problem=exc.strerror or exc) from None
        finally:
            os.umask(old)
        os.chmod(self.path, SOCKET_MODE)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(5):
                    raw = await reader.readline()
                request = json.loads(raw)
                if not isinstance(request, dict):
                    raise ValueError
            except (ValueError, TimeoutError, asyncio.LimitOverrunError):
                answer: dict[str, Any] = {"ok": False, "error": "not a control request"}
            else:
                answer = await self.answer(request, _peer_uid(writer))
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def answer(self, request: dict[str, Any], uid: int | None) -> dict[str, Any]:
        """Apply one request: ``{"line", "command", "operator", "wait"}``; the command
        ``state`` only asks for the line's state."""
        line_id = request.get("line")
        line = self.lines.get(line_id) if isinstance(line_id, str) else None
        if line is None:
            return {"ok": False, "error": f"no line {line_id!r} in this controller; lines: "
                                          f"{', '.join(self.lines)}"}
        name = request.get("command")
        if name == "state":
            return {"ok": True, **self._state(line)}
        command = COMMANDS.get(name) if isinstance(name, str) else None
        if command is None:
            return {"ok": False, "error": f"unknown command {name!r}; commands: "
                                          f"{', '.join(COMMANDS)}"}
        operator = str(request.get("operator") or f"uid:{uid}")[:64]
        if not line.line.terminal_control:
            return self._refused(line, f"line {line.line.id} takes commands from its PLC "
                                       "only (terminal_control: false in the config)")
        try:
            accepted = await line.command(command, f"{operator} at the terminal")
        except (CommandRefused, DomainError) as exc:
            log.info("terminal command refused: %s", exc,
                     extra={"line": line.line.id, "operator": operator})
            return self._refused(line, str(exc))
        log.info("terminal command %s", command.label,
                 extra={"line": line.line.id, "operator": operator, "uid": uid})
        await self.db.call(_record, operator, f"line.{command.name.lower()}",
                           f"line:{line.line.id}", uid=uid, entered=accepted)
        if request.get("wait"):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SETTLE_TIMEOUT_S):
                    await line.settled()
        return {"ok": True, "accepted": accepted, **self._state(line)}

    def _refused(self, line: LineRuntime, error: str) -> dict[str, Any]:
        return {"ok": False, "error": error, **self._state(line)}

    @staticmethod
    def _state(line: LineRuntime) -> dict[str, Any]:
        return {"state": line.state.label,
                "reason": line.stop_reason,
                "alarms": dict(line.active_alarms),
                "allowed": [c.name.lower() for c in Command if line.packml.allowed(c)]}
