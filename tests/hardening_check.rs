//! Issue 18, item 3: `switchyard check` accepts exactly what `switchyard
//! run` accepts. What `run` reads besides the file — the admin token from
//! its variable or file, the certificates, the access log — is checked by
//! both, and a failure is exit 64 with the key named, from both. A file
//! both accept, `run` serves.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::cli::{outcome, BIN};

/// A proxy on loopback ports of the kernel's choosing; the admin on
/// `admin` with `admin_keys`, and `server_keys` in `[server]`.
fn config(admin: &str, admin_keys: &str, server_keys: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n{server_keys}\n\
         [admin]\nlisten = \"{admin}\"\n{admin_keys}\n[health]\nenabled = false\n\
         [pools.blue]\nbackends = [\"127.0.0.1:1\"]\n\
         [[routes]]\nname = \"r\"\nsplit = {{ blue = 1 }}\n"
    )
}

/// `check FILE`: exit code and stderr. The token variable is set only
/// when asked for.
fn check(path: &std::path::Path, token: Option<&str>) -> (i32, String) {
    let mut c = Command::new(BIN);
    c.arg("check").arg(path).env_remove("SY_TEST_TOKEN");
    if let Some(t) = token {
        c.env("SY_TEST_TOKEN", t);
    }
    let (code, _, stderr) = outcome(&c.output().unwrap());
    (code, stderr)
}

/// `run --config FILE` until it exits or says it listens (then it is
/// killed): `Err(code, stderr)` for an exit, `Ok(())` for listening.
fn run(path: &std::path::Path, token: Option<&str>) -> Result<(), (i32, String)> {
    let mut c = Command::new(BIN);
    c.args(["--log-format", "json", "run", "--config"])
        .arg(path)
        .env_remove("SY_TEST_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(t) = token {
        c.env("SY_TEST_TOKEN", t);
    }
    let mut child = c.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut all = String::new();
    let mut line = String::new();
    // The child ends its stderr by exiting (or says it listens): the read
    // returns in either case, without any deadline of ours.
    let listened = loop {
        line.clear();
        if stderr.read_line(&mut line).unwrap_or(0) == 0 {
            break false;
        }
        all.push_str(&line);
        if line.contains("switchyard listening") {
            break true;
        }
    };
    if listened {
        let _ = child.kill();
    }
    // Bounded: stderr is closed, so the process has exited or is exiting.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("run neither listened nor exited");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if listened {
        Ok(())
    } else {
        Err((status.code().unwrap_or(-1), all))
    }
}

#[test]
fn check_and_run_refuse_the_same_files_with_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.token");
    std::fs::write(&empty, "  \n").unwrap();
    let missing = dir.path().join("missing.token");
    let no_dir = dir.path().join("no-such-dir").join("access.log");
    let cases = [
        (
            "non-loopback admin, token_env unset",
            config("0.0.0.0:0", "token_env = \"SY_TEST_TOKEN\"", ""),
            None,
            "SY_TEST_TOKEN",
        ),
        (
            "non-loopback admin, token_env empty",
            config("0.0.0.0:0", "token_env = \"SY_TEST_TOKEN\"", ""),
            Some(" "),
            "SY_TEST_TOKEN",
        ),
        (
            "loopback admin, token_env unset",
            config("127.0.0.1:0", "token_env = \"SY_TEST_TOKEN\"", ""),
            None,
            "admin.token_env",
        ),
        (
            "token_file empty",
            config("0.0.0.0:0", &format!("token_file = {:?}", empty), ""),
            None,
            "admin.token_file",
        ),
        (
            "token_file missing",
            config("0.0.0.0:0", &format!("token_file = {:?}", missing), ""),
            None,
            "admin.token_file",
        ),
        (
            "access log in a missing directory",
            config("127.0.0.1:0", "", &format!("access_log = {:?}", no_dir)),
            None,
            "server.access_log",
        ),
    ];
    for (what, text, token, key) in cases {
        let path = dir.path().join("c.toml");
        std::fs::write(&path, &text).unwrap();
        let (code, stderr) = check(&path, token);
        assert_eq!(code, 64, "check, {what}: {stderr}\n{text}");
        assert!(stderr.contains(key), "check, {what}: {stderr}");
        assert!(stderr.contains("c.toml"), "check, {what}: {stderr}");
        match run(&path, token) {
            Ok(()) => panic!("run started although check refused ({what})\n{text}"),
            Err((code, stderr)) => {
                assert_eq!(code, 64, "run, {what}: {stderr}");
                assert!(stderr.contains(key), "run, {what}: {stderr}");
            }
        }
    }
}

#[test]
fn a_file_check_accepts_is_one_run_serves() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("admin.token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let log = dir.path().join("access.log");
    let cases = [
        (
            "token from the environment",
            config("0.0.0.0:0", "token_env = \"SY_TEST_TOKEN\"", ""),
            Some("s3cret"),
        ),
        (
            "token from a file",
            config("0.0.0.0:0", &format!("token_file = {:?}", token), ""),
            None,
        ),
        (
            "an access log file",
            config("127.0.0.1:0", "", &format!("access_log = {:?}", log)),
            None,
        ),
    ];
    for (what, text, env) in cases {
        let path = dir.path().join("c.toml");
        std::fs::write(&path, &text).unwrap();
        let (code, stderr) = check(&path, env);
        assert_eq!(code, 0, "check, {what}: {stderr}");
        if let Err((code, stderr)) = run(&path, env) {
            panic!("run exited {code} although check accepted ({what}): {stderr}");
        }
    }
}
