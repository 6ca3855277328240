"""age encryption of opsplay's PostgreSQL backups (database host only): the identity (private
key) as a 0600 temporary file, refusing unusable recipients, encrypting pg_dump's output while it
is read whole on the way, decrypting into pg_restore, and what can be checked without the key
(the age structure). The plaintext never touches the disk."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile

from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_files import (
    BackupError,
    remove,
)
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_tools import (
    GLOBALS_TRAILER,
    describe_tool_error,
)

AGE = "age"
AGE_MAGIC = b"age-encryption.org/v1\n"
AGE_CHUNK = 64 * 1024 + 16  # STREAM chunk: 64 KiB of plaintext + 16-byte tag


def age_message(stderr):
    """age's error line without its prefix and its 'report unexpected errors' footer."""
    lines = [
        line.strip()
        for line in (stderr or "").splitlines()
        if line.strip() and "report unexpected" not in line
    ]
    first = lines[0] if lines else "failed"
    first = first.split("age: error: ", 1)[-1]
    if "no space left on device" in first.lower():
        return "disk full (No space left on device)"
    return first


def identity_problem(message):
    """True when age failed because of the identity (wrong or unusable key), not the archive."""
    return "no identity matched" in message or message.startswith('reading "')


def age_structure(path):
    """'' when path looks like a complete age file (header, MAC, nonce, whole chunks), else why not.

    Without the private key this is all that can be checked: the payload is authenticated only by
    decrypting it.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        if handle.read(len(AGE_MAGIC)) != AGE_MAGIC:
            return "not an age file (no age-encryption.org/v1 header)"
        stanzas = 0
        while True:
            line = handle.readline(4096)
            if not line.endswith(b"\n"):
                return "incomplete age header"
            if line.startswith(b"-> "):
                stanzas += 1
            elif line.startswith(b"--- "):
                break
        header = handle.tell()
    if stanzas == 0:
        return "age header without recipients"
    payload = size - header - 16  # the 16-byte nonce, then the chunks
    last = payload % AGE_CHUNK
    if payload < 17 or 0 < last <= 16:
        return "incomplete age payload (truncated?)"
    return ""


@contextlib.contextmanager
def pipeline(count):
    """Stderr files for ``count`` processes and the list the caller appends its processes
    to; on the way out, whatever still runs is killed and the files are closed."""
    errors = [tempfile.TemporaryFile() for _ in range(count)]  # noqa: SIM115 (closed on the way out)
    procs = []
    try:
        yield procs, errors
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for handle in errors:
            handle.close()


def outcome(procs, errors):
    """Wait for the processes of a pipeline: their exit codes and stderr texts."""
    codes = [p.wait() for p in procs]
    texts = []
    for handle in errors:
        handle.seek(0)
        texts.append(handle.read().decode("utf-8", "replace"))
    return codes, texts


def tee(source, sinks):
    """Copy source (a pipe) into every sink still reading; the last 400 bytes copied."""
    broken = set()
    tail = b""
    for block in iter(lambda: source.read(1 << 20), b""):
        for sink in sinks:
            if sink in broken:
                continue
            try:
                sink.write(block)
            except BrokenPipeError:
                broken.add(sink)
        tail = (tail + block)[-400:]
    for sink in sinks:
        with contextlib.suppress(BrokenPipeError):
            sink.close()
    return tail


def check_recipients(module, params):
    """Refuse unusable encryption settings before anything is written."""
    if params["encryption"] != "age":
        return
    if params["format"] != "custom":
        raise BackupError(
            "backup refused: encryption age needs pg_backup_format custom "
            "(a directory-format archive is many files); nothing written"
        )
    if not params["recipients"]:
        raise BackupError(
            "backup refused: encryption age needs at least one recipient "
            "(pg_backup_encryption_recipients); nothing written"
        )
    if not shutil.which(AGE):
        if module.check_mode:
            module.warn("age is not installed yet: recipients not checked")
            return
        raise BackupError(
            "backup refused: age is not installed on the host (apt install age); nothing written"
        )
    for recipient in params["recipients"]:
        proc = subprocess.run(
            [AGE, "--encrypt", "--recipient", recipient, "--output", os.devnull],
            input=b"",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        if proc.returncode != 0:
            raise BackupError(
                "backup refused: unusable age recipient %r: %s; nothing written"
                % (recipient, age_message(proc.stderr.decode("utf-8", "replace")))
            )


def encrypt_stream(producer, out_path, recipients, env, reader, where):
    """Run producer (argv), encrypting its output with age into out_path. What is encrypted is
    read whole on the way: by reader (pg_restore to /dev/null, argv reading stdin) or, when
    reader is None, for the globals' end-of-dump marker. The plaintext never touches the disk."""
    argv = [AGE, "--encrypt", "--output", out_path]
    for recipient in recipients:
        argv += ["--recipient", recipient]
    with pipeline(3) as (procs, errors):
        dump = subprocess.Popen(producer, env=env, stdout=subprocess.PIPE, stderr=errors[0])
        procs.append(dump)
        procs.append(
            subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors[1]
            )
        )
        if reader:
            procs.append(
                subprocess.Popen(
                    reader,
                    env=env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=errors[2],
                )
            )
        tail = tee(dump.stdout, [p.stdin for p in procs[1:]])
        codes, texts = outcome(procs, errors)
    if codes[0] != 0:
        raise BackupError(
            describe_tool_error(os.path.basename(producer[0]), texts[0] or "failed", where)
        )
    if codes[1] != 0:
        raise BackupError("age: %s in %s" % (age_message(texts[1]), where))
    if reader and codes[2] != 0:
        lines = (texts[2] or "failed").strip().splitlines()
        raise BackupError(
            "the new archive failed verification: unreadable archive (%s)"
            % lines[0].split("error: ", 1)[-1]
        )
    if not reader and GLOBALS_TRAILER not in tail:
        raise BackupError("the new archive failed verification: incomplete (no end-of-dump marker)")


class Identity:
    """The age identity of the module's identity or identity_file option."""

    def __init__(self, params):
        self.text = params.get("identity") or ""
        self.file = params.get("identity_file") or ""
        self._path = None  # path of the identity (a temporary 0600 file for identity text)
        self._tmp = None

    def given(self):
        return bool(self.text or self.file)

    def path(self):
        """Path of the age identity, or None. Identity text goes to a 0600 temporary file that
        cleanup() removes before the module returns."""
        if self._path is None:
            if self.text:
                # In RAM (tmpfs) when the host has it, so the key never reaches a disk.
                shm = "/dev/shm" if os.access("/dev/shm", os.W_OK | os.X_OK) else None
                fd, path = tempfile.mkstemp(prefix="opsplay-age-identity-", dir=shm)
                self._tmp = path
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(self.text.strip() + "\n")
                self._path = path
            elif self.file:
                if not os.access(self.file, os.R_OK):
                    raise BackupError(
                        "age identity file %s is missing or not readable by %s"
                        % (self.file, os.environ.get("USER") or os.getuid())
                    )
                self._path = self.file
        return self._path

    def cleanup(self):
        if self._tmp:
            remove(self._tmp)
            self._tmp = None

    def decrypt_to(self, path, consumer, env):
        """Decrypt path with the identity into consumer (argv reading stdin), or into a check of
        the globals' end-of-dump marker when consumer is None. Returns the consumer's problem or
        ''; raises when the identity cannot open the archive. An archive that fails to decrypt
        with the right key is a problem ('cannot decrypt (...)')."""
        name = os.path.basename(path)
        identity = self.path()
        if identity is None:
            raise BackupError(
                "backup %s is encrypted (age): give its private key with "
                "pg_backup_encryption_identity or pg_backup_encryption_identity_file" % name
            )
        with pipeline(2) as (procs, errors):
            decrypt = subprocess.Popen(
                [AGE, "--decrypt", "--identity", identity, path],
                stdout=subprocess.PIPE,
                stderr=errors[0],
            )
            procs.append(decrypt)
            if consumer:
                procs.append(
                    subprocess.Popen(
                        consumer,
                        env=env,
                        stdin=decrypt.stdout,
                        stdout=subprocess.DEVNULL,
                        stderr=errors[1],
                    )
                )
                decrypt.stdout.close()
                tail = b""
            else:
                tail = tee(decrypt.stdout, [])
                decrypt.stdout.close()
            codes, texts = outcome(procs, errors)
        return decrypt_outcome(name, codes, texts, consumer, tail)


def decrypt_outcome(name, codes, texts, consumer, tail):
    """decrypt_to's verdict from the exit codes and stderr of age and the consumer."""
    if codes[0] != 0:
        message = age_message(texts[0])
        if identity_problem(message):
            if message.startswith('reading "'):
                message = "unusable identity (%s)" % message.rsplit(": ", 1)[-1]
            raise BackupError("cannot decrypt backup %s: %s" % (name, message))
        return "cannot decrypt (%s)" % message
    if consumer and codes[1] != 0:
        return texts[1] or "failed"
    if not consumer and GLOBALS_TRAILER not in tail:
        return "incomplete (no end-of-dump marker)"
    return ""
