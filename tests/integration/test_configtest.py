"""`c2a-worker -t` checks what start needs, not only the file's syntax, and
`-T` prints the configuration in force. Each broken configuration below used
to pass -t and then fail at start (or leave workers that never boot)."""

import os
import pwd
import re

import pytest

from conftest import BIN, base_config, free_port, run

FAILBOOT = os.path.join(os.environ.get("C2A_TEST_APPS", ""), "failboot.so")


def write(tmp_path, name="c.conf", **sections):
    conf = tmp_path / name
    conf.write_text(base_config(tmp_path, free_port(), **sections))
    return conf


def check(conf, *extra):
    r = run([BIN, "-t", "-c", str(conf), *extra])
    return r.returncode, r.stderr


def test_a_good_configuration_passes(tmp_path):
    # The output directory need not exist yet: a worker makes it.
    conf = write(tmp_path, output={"dir": str(tmp_path / "not" / "yet")})
    assert check(conf) == (0, "")
    assert not (tmp_path / "not").exists()  # -t creates nothing


@pytest.mark.parametrize("what,sections,message", [
    ("log file in a missing directory",
     {"master": {"log_file": "/nonexistent/c2a/c2a.log"}},
     "log_file: cannot create /nonexistent/c2a/c2a.log: no directory /nonexistent/c2a"),
    ("log file is a directory", {"master": {"log_file": "/tmp"}},
     "log_file: /tmp is a directory"),
    ("pid file in a missing directory", {"master": {"pidfile": "/nonexistent/c2a.pid"}},
     "pidfile: cannot create /nonexistent/c2a.pid: no directory /nonexistent"),
    ("app object missing", {"workers": {"app": "/nonexistent/app.so:app"}},
     "app /nonexistent/app.so:app: /nonexistent/app.so: cannot open shared object file"),
    ("app symbol missing", {"workers": {"app": FAILBOOT + ":no_such_app"}},
     "undefined symbol: no_such_app"),
    ("app of another ABI", {"workers": {"app": FAILBOOT + ":oldabi_app"}},
     "ABI version"),
    ("unknown default voice", {"speech": {"voice": "xx-nowhere"}},
     "voice: xx-nowhere is not installed"),
    ("output dir under a file", {"output": {"dir": "/etc/hostname/audio"}},
     "dir: /etc/hostname/audio: Not a directory"),
])
def test_what_start_needs_is_checked(tmp_path, what, sections, message):
    code, err = check(write(tmp_path, **sections))
    assert code == 1, what
    conf = tmp_path / "c.conf"
    assert f"{conf}: " in err and message in err, err


def test_the_pidfile_given_on_the_command_line_is_checked(tmp_path):
    code, err = check(write(tmp_path), "-p", "/nonexistent/x.pid")
    assert code == 1 and "pidfile: cannot create /nonexistent/x.pid" in err


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another user needs root")
def test_output_dir_and_tls_files_are_checked_as_the_workers_user(tmp_path):
    """The master is root, the workers are `user`: what root may write or read
    is not what they may."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    ca = private / "ca.pem"
    ca.write_text("not read by -t\n")
    user = pwd.getpwnam("nobody").pw_name
    conf = write(tmp_path, master={"user": user}, output={"dir": str(private / "audio")},
                 broker={"url": "amqps://guest:guest@127.0.0.1:5671/", "tls_ca": str(ca)})
    code, err = check(conf)
    assert code == 1
    # (nobody may not even look into pytest's directories: either message)
    assert re.search(rf"c\.conf: dir: .*{private}.*: Permission denied \(as user {user}\)",
                     err), err
    assert f"tls_ca: cannot read {ca}: Permission denied (as user {user})" in err, err
    # The same as root alone passes.
    conf = write(tmp_path, output={"dir": str(private / "audio")},
                 broker={"url": "amqps://guest:guest@127.0.0.1:5671/", "tls_ca": str(ca)})
    assert check(conf) == (0, "")


def test_dash_T_prints_the_configuration_in_force_with_secrets_masked(tmp_path):
    conf = write(tmp_path, master={"control_token": "s3cret-token"},
                 broker={"url": "amqp://bob:hunter2@127.0.0.1:5672/%2f"},
                 speech={"http_token": "sk-secret"})
    r = run([BIN, "-T", "-c", str(conf), "-w", "7"])
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "test is successful" in out
    assert "s3cret" not in out and "hunter2" not in out and "sk-secret" not in out
    assert "control_token = (set)" in out and "http_token = (set)" in out
    assert re.search(r"^url = amqp://bob:\*+@127\.0\.0\.1:5672/%2f$", out, re.M), out
    # Defaults filled in, the command line applied, every section present.
    assert re.search(r"^count = 7$", out, re.M)
    assert re.search(r"^job_timeout = 300$", out, re.M)
    for section in ("master", "workers", "broker", "speech", "fetch", "output"):
        assert f"[{section}]" in out
    # A bad configuration prints no configuration.
    bad = write(tmp_path, "bad.conf", speech={"voice": "xx-nowhere"})
    r = run([BIN, "-T", "-c", str(bad)])
    assert r.returncode == 1 and "[master]" not in r.stdout
